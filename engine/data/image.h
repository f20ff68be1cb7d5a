// Decoded images: 8-bit RGB, row-major, channels interleaved (HWC). JPEG through libjpeg-turbo (baseline,
// progressive, grayscale, CMYK/YCCK) and PNG through libpng (palette, gray, 16-bit, alpha), all to RGB. The
// format comes from the file's signature, not its name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"

namespace tl::data {

// A file that is not a supported image or fails to decode; the message names the file.
class ImageError : public Error {
 public:
  using Error::Error;
};

struct Image {
  std::int64_t width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // height * width * 3

  std::uint8_t at(std::int64_t y, std::int64_t x, int c) const {
    return rgb[static_cast<std::size_t>((y * width + x) * 3 + c)];
  }
};

// Largest accepted image: 2^28 pixels (16384 x 16384), so a hostile header cannot demand gigabytes.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 28;

Image decode_image(const std::string& path);
// Decodes bytes already in memory; `name` is used in messages.
Image decode_image_bytes(const std::vector<std::uint8_t>& bytes, const std::string& name);

}  // namespace tl::data
