#include "engine/data/image.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

// libjpeg's header needs FILE and size_t declared first.
#include <jpeglib.h>
#include <png.h>

namespace tl::data {
namespace {

// ---- JPEG -------------------------------------------------------------------------------------------------

// libjpeg reports fatal errors through a callback that must not return: jump back to the decoder with the
// message, which then throws (exceptions must not cross libjpeg's C frames).
struct JpegErrors {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

void jpeg_quiet(j_common_ptr) {}  // warnings (e.g. premature end of data) are not worth printing

// Returns an empty string on success, else libjpeg's message. Plain C style on purpose: nothing with a
// destructor lives between setjmp and a longjmp.
std::string decode_jpeg(const std::uint8_t* data, std::size_t size, Image& out) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = jpeg_fail;
  errors.base.output_message = jpeg_quiet;
  errors.message[0] = '\0';
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return errors.message[0] ? errors.message : "undecodable JPEG data";
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // libjpeg turns grayscale and YCbCr into RGB itself
  if (static_cast<std::int64_t>(cinfo.image_width) * cinfo.image_height > kMaxImagePixels) {
    jpeg_destroy_decompress(&cinfo);
    return "image too large";
  }
  jpeg_start_decompress(&cinfo);
  const std::int64_t width = cinfo.output_width, height = cinfo.output_height;
  const int components = cinfo.output_components;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<std::size_t>(width * height * 3));
  std::vector<JSAMPLE> row(static_cast<std::size_t>(width * components));
  while (cinfo.output_scanline < cinfo.output_height) {
    const std::int64_t y = cinfo.output_scanline;
    JSAMPROW rows[1] = {row.data()};
    jpeg_read_scanlines(&cinfo, rows, 1);
    std::uint8_t* dst = out.rgb.data() + y * width * 3;
    if (!cmyk) {
      std::memcpy(dst, row.data(), static_cast<std::size_t>(width * 3));
      continue;
    }
    // Adobe CMYK JPEGs store inverted ink values, so each channel times K is the RGB intensity.
    for (std::int64_t x = 0; x < width; ++x) {
      const JSAMPLE* p = row.data() + x * 4;
      for (int c = 0; c < 3; ++c) dst[x * 3 + c] = static_cast<std::uint8_t>((p[c] * p[3] + 127) / 255);
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return "";
}

// ---- PNG --------------------------------------------------------------------------------------------------

// libpng's simplified API expands palette, gray and 16-bit images; alpha is read and then dropped, as
// PIL's convert("RGB") does.
std::string decode_png(const std::uint8_t* data, std::size_t size, Image& out) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, data, size)) return image.message;
  if (static_cast<std::int64_t>(image.width) * image.height > kMaxImagePixels) {
    png_image_free(&image);
    return "image too large";
  }
  image.format = PNG_FORMAT_RGBA;
  std::vector<std::uint8_t> rgba(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    return message;
  }
  out.width = image.width;
  out.height = image.height;
  out.rgb.resize(static_cast<std::size_t>(out.width * out.height * 3));
  for (std::int64_t i = 0; i < out.width * out.height; ++i)
    for (int c = 0; c < 3; ++c)
      out.rgb[static_cast<std::size_t>(i * 3 + c)] = rgba[static_cast<std::size_t>(i * 4 + c)];
  return "";
}

bool starts_with(const std::vector<std::uint8_t>& bytes, std::initializer_list<std::uint8_t> prefix) {
  return bytes.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), bytes.begin());
}

}  // namespace

Image decode_image_bytes(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  if (bytes.empty()) throw ImageError(name + ": empty file");
  Image image;
  std::string error;
  if (starts_with(bytes, {0xFF, 0xD8, 0xFF})) {
    error = decode_jpeg(bytes.data(), bytes.size(), image);
  } else if (starts_with(bytes, {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A})) {
    error = decode_png(bytes.data(), bytes.size(), image);
  } else if (starts_with(bytes, {'G', 'I', 'F', '8'})) {
    throw ImageError(name + ": a GIF image; tl reads JPEG and PNG");
  } else {
    throw ImageError(name + ": not a JPEG or PNG image");
  }
  if (!error.empty()) throw ImageError(name + ": cannot decode: " + error);
  if (image.width < 1 || image.height < 1) throw ImageError(name + ": image has no pixels");
  return image;
}

Image decode_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImageError(path + ": cannot open");
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
  return decode_image_bytes(bytes, path);
}

}  // namespace tl::data
