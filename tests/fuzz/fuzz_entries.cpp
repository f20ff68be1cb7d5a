#include "tests/fuzz/fuzz_entries.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <span>
#include <sstream>

#include "engine/data/image.h"
#include "engine/error.h"
#include "tools/train_options.h"
#include "weights/importers.h"
#include "weights/pickle.h"
#include "weights/weights_file.h"

namespace tl::fuzz {
namespace {

// The readers take paths (they open HDF5, zip and protobuf files through their libraries), so an input
// becomes a file first: in /dev/shm when there is one (no disk traffic at thousands of runs a second), one
// name per process and target so that parallel fuzzers (-jobs) and the regression test never share one.
class InputFile {
 public:
  InputFile(const char* target, const char* extension, const std::uint8_t* data, std::size_t size) {
    std::error_code ec;
    const std::filesystem::path folder = std::filesystem::is_directory("/dev/shm", ec)
                                             ? std::filesystem::path("/dev/shm")
                                             : std::filesystem::temp_directory_path();
    path_ = (folder / str("tl_fuzz_", ::getpid(), "_", target, extension)).string();
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    TL_CHECK(f != nullptr, Error, "fuzz: cannot write ", path_);
    const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
    const bool closed = std::fclose(f) == 0;
    TL_CHECK(ok && closed, Error, "fuzz: cannot write ", size, " bytes to ", path_);
  }
  ~InputFile() { std::remove(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void pickle_entry(const std::uint8_t* data, std::size_t size) {
  (void)weights::pickle::unpickle(std::span<const std::uint8_t>(data, size), "fuzz.pkl");
}

void pth_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("pth", ".pth", data, size);
  (void)weights::read_pth(file.path());
}

void safetensors_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("safetensors", ".safetensors", data, size);
  (void)weights::read_safetensors(file.path());
}

void weights_file_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("weights_file", ".h5", data, size);
  (void)weights::load_weights(file.path());
}

void keras_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("keras", ".h5", data, size);
  (void)weights::read_keras_h5(file.path());
}

void onnx_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("onnx", ".onnx", data, size);
  (void)weights::read_onnx(file.path());
}

// JPEG and PNG share one decoder entry (the format comes from the signature); two targets so that each has
// its own corpus and the fuzzer spends its time inside one codec.
void image_entry(const std::uint8_t* data, std::size_t size) {
  (void)data::decode_image_bytes(std::vector<std::uint8_t>(data, data + size), "fuzz.image");
}

// tl_train's options read from a config file, as `tl_train --config FILE` reads them, then the checks that
// tl_train makes before training. CLI11's parse errors are tl_train's usage errors (exit status 2): expected,
// so they become a ValueError here.
void train_config_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("train_config", ".toml", data, size);
  CLI::App app{"tl_train"};
  tools::TrainOptions options;
  tools::add_train_options(app, options);
  const std::string path = file.path();
  const char* argv[] = {"tl_train", "--config", path.c_str()};
  try {
    app.parse(3, argv);
  } catch (const CLI::Error& e) {
    throw ValueError(str("tl_train --config: ", e.get_name(), ": ", e.what()));
  }
  tools::finish_train_options(options);
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"pickle", "weights/pickle.cpp (the restricted unpickler, on bytes)", pickle_entry},
      {"pth", "weights/pth_reader.cpp (torch.save zip and legacy files)", pth_entry},
      {"safetensors", "weights/safetensors_reader.cpp", safetensors_entry},
      {"weights_file", "weights/weights_file.cpp + weights/hdf5.cpp (tl's HDF5 weights)", weights_file_entry},
      {"keras", "weights/keras_reader.cpp (Keras .h5)", keras_entry},
      {"onnx", "weights/onnx_reader.cpp + weights/onnx_graph.cpp", onnx_entry},
      {"jpeg", "engine/data/image.cpp (libjpeg-turbo)", image_entry},
      {"png", "engine/data/image.cpp (libpng)", image_entry},
      {"train_config", "tools/train_options.cpp (tl_train --config, CLI11)", train_config_entry},
  };
  return all;
}

const Target& target(std::string_view name) {
  std::string known;
  for (const Target& t : targets()) {
    if (name == t.name) return t;
    known += (known.empty() ? "" : ", ") + std::string(t.name);
  }
  throw ValueError(str("fuzz: unknown target '", name, "' (known: ", known, ")"));
}

bool run(const Target& target, const std::uint8_t* data, std::size_t size) {
  try {
    target.entry(data, size);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace tl::fuzz
