#include "engine/data/image.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

// libjpeg's header needs FILE and size_t declared first.
#include <jpeglib.h>
// After jpeglib.h: the message codes (JWRN_JPEG_EOF).
#include <jerror.h>
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

// Warnings are not printed, and most (extraneous bytes before a marker, a bad Huffman code) leave a usable
// image, as PIL accepts them too. But at the end of the data libjpeg only warns and fills the missing rows
// with gray; PIL refuses such a file ("image file is truncated") and so do we, or a half-downloaded photo
// would train as half gray.
void jpeg_warning(j_common_ptr cinfo, int level) {
  if (level >= 0 || cinfo->err->msg_code != JWRN_JPEG_EOF) return;
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  std::snprintf(errors->message, sizeof errors->message,
                "truncated: the JPEG data ends before the image does");
  std::longjmp(errors->jump, 1);
}

constexpr std::int64_t kMaxJpegPixelsPerByte = 4096;

// Returns an empty string on success, else libjpeg's message. Plain C style on purpose: nothing with a
// destructor lives between setjmp and a longjmp.
std::string decode_jpeg(const std::uint8_t* data, std::size_t size, Image& out) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = jpeg_fail;
  errors.base.emit_message = jpeg_warning;
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
  // On corrupt or missing scan data libjpeg warns and decodes gray, so a header alone could make a few bytes
  // cost the work of the largest image. Huffman coding spends at least one bit per 8x8 block per component,
  // so a real JPEG holds at most 512 pixels per byte; 4096 leaves room for arithmetic coding.
  const std::int64_t pixels = static_cast<std::int64_t>(cinfo.image_width) * cinfo.image_height;
  if (pixels > static_cast<std::int64_t>(size) * kMaxJpegPixelsPerByte) {
    std::snprintf(errors.message, sizeof errors.message,
                  "%u x %u pixels cannot be encoded in %zu bytes (damaged header)", cinfo.image_width,
                  cinfo.image_height, size);
    jpeg_destroy_decompress(&cinfo);
    return errors.message;
  }
  jpeg_start_decompress(&cinfo);
  const std::int64_t width = cinfo.output_width, height = cinfo.output_height;
  const int components = cinfo.output_components;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<std::size_t>(width * height * 3));
  // RGB rows are decoded straight into the image; CMYK ones into a row from libjpeg's own pool, which
  // jpeg_destroy_decompress frees (a std::vector here would leak when a longjmp skips its destructor).
  JSAMPARRAY cmyk_row = cmyk ? (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE,
                                                          static_cast<JDIMENSION>(width * components), 1)
                             : nullptr;
  while (cinfo.output_scanline < cinfo.output_height) {
    const std::int64_t y = cinfo.output_scanline;
    std::uint8_t* dst = out.rgb.data() + y * width * 3;
    if (!cmyk) {
      JSAMPROW rows[1] = {dst};
      jpeg_read_scanlines(&cinfo, rows, 1);
      continue;
    }
    jpeg_read_scanlines(&cinfo, cmyk_row, 1);
    // Adobe CMYK JPEGs store inverted ink values, so each channel times K is the RGB intensity.
    for (std::int64_t x = 0; x < width; ++x) {
      const JSAMPLE* p = cmyk_row[0] + x * 4;
      for (int c = 0; c < 3; ++c) dst[x * 3 + c] = static_cast<std::uint8_t>((p[c] * p[3] + 127) / 255);
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return "";
}

// ---- PNG --------------------------------------------------------------------------------------------------

// libpng's simplified API expands palette, gray and 16-bit images; alpha is read and then dropped, as
// PIL's convert("RGB") does. Without a gAMA or sRGB chunk the API takes 16-bit samples to be linear light and
// gamma-encodes them on the way to 8 bits (up to 72 levels too bright on the test's gray ramp); such files
// are sRGB-encoded in practice, as every other reader assumes, so they are just scaled to 8 bits.
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
  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
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
