#include "tests/fuzz/fuzz_entries.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <sstream>

#include "engine/data/image.h"
#include "engine/error.h"
#include "tools/train_options.h"
#include "weights/importers.h"
#include "weights/pickle.h"
#include "weights/sandbox_wire.h"
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

// The HDF5 readers as tl calls them: libhdf5 runs in the sandboxed child (weights/sandbox.h), so a libhdf5
// crash is a tl::Error here. These prove that tl survives any file.
void weights_file_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("weights_file", ".h5", data, size);
  (void)weights::load_weights(file.path());
}

void keras_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("keras", ".h5", data, size);
  (void)weights::read_keras_h5(file.path());
}

// The same readers in this process: they hunt libhdf5's own bugs (and tl's code under them with every
// sanitizer report in view), which the sandbox turns into errors.
void weights_file_inprocess_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("weights_file_inprocess", ".h5", data, size);
  (void)weights::load_weights_in_process(file.path());
}

void keras_inprocess_entry(const std::uint8_t* data, std::size_t size) {
  const InputFile file("keras_inprocess", ".h5", data, size);
  (void)weights::read_keras_h5_in_process(file.path());
}

// The parent's parser of the sandboxed child's result (weights/sandbox_wire.cpp), on bytes a compromised
// child could leave: byte 0 picks the payload (even: a WeightsFile, odd: an Imported), bytes 1-4 the size of
// the data area (modulo what follows), the rest is the result (data area, then index), at an address aligned
// to a page as the child's is.
void sandbox_reply_entry(const std::uint8_t* data, std::size_t size) {
  if (size < 5) return;
  const std::size_t result = size - 5;
  std::uint32_t split = 0;
  std::memcpy(&split, data + 1, 4);
  const std::size_t data_size = result == 0 ? 0 : split % (result + 1);
  std::shared_ptr<void> memory(std::aligned_alloc(4096, (result + 4096) / 4096 * 4096), std::free);
  TL_CHECK(memory != nullptr, Error, "fuzz: out of memory");
  if (result > 0) std::memcpy(memory.get(), data + 5, result);
  weights::wire::Source in(memory, static_cast<unsigned char*>(memory.get()), data_size, result - data_size);
  if (data[0] % 2 == 0) {
    (void)weights::wire::get_weights(in);
  } else {
    (void)weights::wire::get_imported(in);
  }
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
      {"pickle", "weights/pickle.cpp (the restricted unpickler, on bytes)", pickle_entry, "pickle"},
      {"pth", "weights/pth_reader.cpp (torch.save zip and legacy files)", pth_entry, "pth"},
      {"safetensors", "weights/safetensors_reader.cpp", safetensors_entry, "safetensors"},
      {"weights_file", "weights::load_weights: tl's HDF5 weights, libhdf5 in the sandbox", weights_file_entry,
       "weights_file"},
      {"keras", "weights::read_keras_h5: Keras .h5, libhdf5 in the sandbox", keras_entry, "keras"},
      {"weights_file_inprocess",
       "weights/weights_file.cpp + weights/hdf5.cpp in this process (libhdf5 hunting)",
       weights_file_inprocess_entry, "weights_file"},
      {"keras_inprocess", "weights/keras_reader.cpp in this process (libhdf5 hunting)", keras_inprocess_entry,
       "keras"},
      {"sandbox_reply",
       "weights/sandbox_wire.cpp (the sandboxed reader's reply, as a compromised child sends it)",
       sandbox_reply_entry, "sandbox_reply"},
      {"onnx", "weights/onnx_reader.cpp + weights/onnx_graph.cpp", onnx_entry, "onnx"},
      {"jpeg", "engine/data/image.cpp (libjpeg-turbo)", image_entry, "jpeg"},
      {"png", "engine/data/image.cpp (libpng)", image_entry, "png"},
      {"train_config", "tools/train_options.cpp (tl_train --config, CLI11)", train_config_entry,
       "train_config"},
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
