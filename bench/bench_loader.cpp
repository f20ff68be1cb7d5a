// The data pipeline alone, with no model behind it: is decoding the bottleneck of training? Reports images/s
// of the DataLoader at 224 x 224 with training augmentation (RandomResizedCrop + flip + normalise) for 1, 2
// and 4 workers, and the per-image costs of its two parts: decoding (JPEG/PNG to RGB) and the transform (on
// images decoded beforehand), plus the evaluation transform (resize 256, center crop 224, normalise).
//
// The images: $TL_BENCH_DATA (an ImageFolder) when set, else the real hymenoptera photos in
// ../shared/data/hymenoptera/train ($TL_SHARED_DIR overrides ../shared), else 2 x 128 JPEGs of 500 x 375
// written with libjpeg into a temporary folder (the photos' typical size). Files are read from the page cache
// after the first pass, as in training from the second epoch on. Wall-clock time (the loader's work happens
// on its own threads). Results: bench/RESULTS.md.
#include <benchmark/benchmark.h>
#include <jpeglib.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/data/loader.h"
#include "kernels/philox.h"

namespace {

namespace fs = std::filesystem;
using namespace tl::data;

// A photo-like 500 x 375 image: smooth gradients and blobs plus noise (so the JPEG is of typical density).
void write_jpeg(const std::string& path, int width, int height, std::uint64_t seed) {
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(width * height * 3));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const auto noise = tl::kernels::philox4x32(seed, static_cast<std::uint64_t>(y * width + x));
      for (int c = 0; c < 3; ++c) {
        const int smooth = (x * (c + 1) + y * (3 - c) + static_cast<int>(seed) * 17) % 256;
        rgb[static_cast<std::size_t>((y * width + x) * 3 + c)] =
            static_cast<std::uint8_t>((smooth * 3 + static_cast<int>(noise[c] % 64)) / 4);
      }
    }
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw std::runtime_error(path + ": cannot write");
  jpeg_compress_struct cinfo;
  jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row =
        rgb.data() + static_cast<std::size_t>(cinfo.next_scanline) * static_cast<std::size_t>(width) * 3;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::fclose(file);
}

std::string generated_folder() {
  const fs::path root = fs::temp_directory_path() / "tl_bench_data_images";
  for (const char* cls : {"a", "b"}) {
    fs::create_directories(root / cls);
    for (int i = 0; i < 128; ++i) {
      const fs::path p = root / cls / ("img" + std::to_string(i) + ".jpg");
      if (!fs::exists(p))
        write_jpeg(p.string(), 500, 375, static_cast<std::uint64_t>(i + (cls[0] - 'a') * 128));
    }
  }
  return root.string();
}

// ../shared as the build knows it; $TL_SHARED_DIR overrides it, as in the tests.
std::string shared_dir() {
  const char* env = std::getenv("TL_SHARED_DIR");
  return env && *env ? env : TL_SHARED_DIR;
}

// The folder, found once per process, and its images decoded once (for the transform-only cases).
struct Images {
  std::string root, source;
  ImageFolder folder;
  std::vector<Image> decoded;  // the files that decode
  double megapixels = 0;       // mean per decoded image

  static const Images& get() {
    static const Images images = load();
    return images;
  }

 private:
  static Images load() {
    Images im;
    if (const char* env = std::getenv("TL_BENCH_DATA"); env && *env) {
      im.root = env;
      im.source = "$TL_BENCH_DATA";
    } else if (const std::string shared = shared_dir() + "/data/hymenoptera/train";
               fs::is_directory(shared)) {
      im.root = shared;
      im.source = "hymenoptera train";
    } else {
      im.root = generated_folder();
      im.source = "generated 500x375 JPEGs";
    }
    im.folder = ImageFolder::scan(im.root);
    for (const auto& s : im.folder.samples) {
      try {
        im.decoded.push_back(decode_image(s.path));
        im.megapixels += static_cast<double>(im.decoded.back().width * im.decoded.back().height) * 1e-6;
      } catch (const ImageError&) {  // the stray GIF: the loader skips it too
      }
    }
    im.megapixels /= static_cast<double>(im.decoded.size());
    return im;
  }
};

tl::Preprocessing imagenet() {
  return tl::Preprocessing{};
}  // 224, ImageNet mean/std, bilinear, 0.875

void label(benchmark::State& state, const Images& images) {
  state.SetLabel(images.source + ", " + std::to_string(images.folder.samples.size()) + " files, mean " +
                 std::to_string(images.megapixels).substr(0, 5) + " MP");
}

// Whole epochs of the loader (batch 32, shuffled, augmented at 224), consumed and dropped at once.
void loader_epoch(benchmark::State& state) {
  const Images& images = Images::get();
  AugmentOptions augment;
  augment.size = 224;
  auto dataset = std::make_shared<ImageFolderDataset>(images.folder, train_transform(augment, imagenet()));
  DataLoader::Options options;
  options.batch_size = 32;
  options.workers = static_cast<int>(state.range(0));
  DataLoader loader(dataset, options);
  std::int64_t epoch = 0, rows = 0;
  for (auto _ : state) {
    loader.start_epoch(epoch++);
    while (auto batch = loader.next()) {
      rows += batch->images.size(0);
      benchmark::DoNotOptimize(batch->images.raw_data());
    }
  }
  state.SetItemsProcessed(rows);
  label(state, images);
}

void decode_only(benchmark::State& state) {
  const Images& images = Images::get();
  std::vector<std::string> paths;
  for (const auto& s : images.folder.samples)
    if (!s.path.ends_with(".gif")) paths.push_back(s.path);
  std::size_t i = 0;
  for (auto _ : state) {
    Image image = decode_image(paths[i++ % paths.size()]);
    benchmark::DoNotOptimize(image.rgb.data());
  }
  state.SetItemsProcessed(state.iterations());
  label(state, images);
}

// Single-threaded, as inside the loader's workers (on the main thread resize's OpenMP loops would split one
// image over both cores, and the cost per image would include their spin-waiting).
void transform_only(benchmark::State& state, bool train) {
  const Images& images = Images::get();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  AugmentOptions augment;
  augment.size = 224;
  const Transform t = train ? train_transform(augment, imagenet()) : eval_transform_of(imagenet(), 224);
  std::uint64_t i = 0;
  for (auto _ : state) {
    tl::Generator g(i);
    tl::Tensor out = t(images.decoded[i++ % images.decoded.size()], g);
    benchmark::DoNotOptimize(out.raw_data());
  }
  state.SetItemsProcessed(state.iterations());
  label(state, images);
  omp_set_num_threads(threads);
}

BENCHMARK(loader_epoch)
    ->ArgName("workers")
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(3);
BENCHMARK(decode_only)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2);
BENCHMARK_CAPTURE(transform_only, train_224, true)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2);
BENCHMARK_CAPTURE(transform_only, eval_224, false)->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(2);

}  // namespace
