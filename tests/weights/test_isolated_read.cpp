// The HDF5 sandbox (weights/sandbox.h, weights/isolated_read.h, weights/sandbox_wire.h): the files that crash
// libhdf5 (tests/fuzz/known/) give an error naming the file through the public readers; a normal file loads
// bit for bit as the in-process reader loads it; a child that crashes, hangs, exits or lies gives a clear
// error; the seccomp filter stops what a compromised child would try; no child or descriptor is left behind;
// it works from several threads at once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/error.h"
#include "engine/random.h"
#include "tests/support/fixtures.h"
#include "weights/hdf5.h"
#include "weights/hdf5_readers.h"
#include "weights/importers.h"
#include "weights/isolated_read.h"
#include "weights/sandbox.h"
#include "weights/sandbox_wire.h"
#include "weights/weights_file.h"

namespace tl::weights {
namespace {

namespace fs = std::filesystem;

// The sanitizers turn some crashes into a report and an exit status of their own, so the signal is named in
// the message only without them.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

class Sandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("tl_isolated_test_" + std::to_string(::getpid()));
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_); }
  std::string file(const std::string& name) const { return (folder_ / name).string(); }

  fs::path folder_;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

StateDict sample_tensors() {
  Generator g(11);
  StateDict sd;
  sd.insert("conv1.weight", uniform({8, 3, 3, 3}, -1, 1, g));
  sd.insert("bn1.running_var", uniform({8}, 0.5, 2, g));
  sd.insert("bn1.num_batches_tracked", tensor(std::vector<std::int64_t>{-5}, {}));
  sd.insert("fc.weight", uniform({2, 8}, -1, 1, g));
  sd.insert("fc.bias", zeros({2}));
  sd.insert("empty", zeros({0, 4}));
  return sd;
}

StateDict sample_extra() {
  Generator g(12);
  StateDict sd;
  sd.insert("optimizer.state.0.exp_avg", uniform({8, 3, 3, 3}, -1, 1, g, DType::Float64));
  sd.insert("optimizer.step",
            tensor(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::max()}, {}));
  return sd;
}

Metadata sample_metadata() {
  Metadata m;
  m.architecture = "resnet18";
  m.num_classes = 2;
  m.preprocessing.input_size = 160;
  m.preprocessing.mean = {0.5, 0.25, 0.125};
  m.preprocessing.std = {0.1, 0.2, 0.3};
  m.preprocessing.interpolation = "bicubic";
  m.preprocessing.crop_fraction = 0.95;
  m.class_names = {"ants", "bees — Apis"};
  m.source = "unit test";
  m.training_state = R"({"epoch": 3, "config": {"lr": 0.001}})";
  return m;
}

// Same names in the same order, same shapes and dtypes, the same bytes.
void expect_identical(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  auto i = a.begin();
  auto j = b.begin();
  for (; i != a.end(); ++i, ++j) {
    SCOPED_TRACE(i->first);
    EXPECT_EQ(i->first, j->first);
    EXPECT_EQ(i->second.shape(), j->second.shape());
    EXPECT_EQ(i->second.dtype(), j->second.dtype());
    const std::size_t bytes = static_cast<std::size_t>(i->second.numel()) * dtype_size(i->second.dtype());
    if (bytes > 0 && i->second.shape() == j->second.shape() && i->second.dtype() == j->second.dtype()) {
      EXPECT_EQ(std::memcmp(i->second.contiguous().raw_data(), j->second.contiguous().raw_data(), bytes), 0);
    }
  }
}

void expect_identical(const Metadata& a, const Metadata& b) {
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(a.num_classes, b.num_classes);
  EXPECT_EQ(a.preprocessing.input_size, b.preprocessing.input_size);
  EXPECT_EQ(a.preprocessing.mean, b.preprocessing.mean);
  EXPECT_EQ(a.preprocessing.std, b.preprocessing.std);
  EXPECT_EQ(a.preprocessing.interpolation, b.preprocessing.interpolation);
  EXPECT_EQ(a.preprocessing.crop_fraction, b.preprocessing.crop_fraction);
  EXPECT_EQ(a.class_names, b.class_names);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.training_state, b.training_state);
}

std::vector<fs::path> known_inputs() {
  std::vector<fs::path> out;
  for (const char* target : {"weights_file", "keras"})
    for (const auto& entry : fs::directory_iterator(fs::path(TL_FUZZ_KNOWN_DIR) / target))
      if (entry.is_regular_file()) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

// No child left unreaped: waitpid finds none at all.
void expect_no_children() {
  int status = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

std::size_t open_descriptors() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Runs `child` in the sandbox with a reply of one byte that the parent checks; returns the error message.
std::string sandboxed(const std::function<void()>& child, sandbox::Limits limits = {}) {
  return message_of([&] {
    sandbox::run(
        "test.h5", limits,
        [&](wire::Sink& out) {
          child();
          out.u8(42);
        },
        [](wire::Source& in) { TL_CHECK(in.u8() == 42, Error, "wrong reply"); });
  });
}

// ---- the files that crash libhdf5 ----------------------------------------------------------------------

TEST_F(Sandbox, EveryKnownLibhdf5CrashIsAnErrorNamingTheFile) {
  const std::vector<fs::path> inputs = known_inputs();
  ASSERT_GE(inputs.size(), 7u) << TL_FUZZ_KNOWN_DIR;
  int crashes_seen = 0;
  for (const fs::path& input : inputs) {
    const std::string path = file(input.parent_path().filename().string() + "_" + input.filename().string());
    fs::copy_file(input, path);
    SCOPED_TRACE(path);
    // Every public reader that parses HDF5, on every input: each must refuse it, naming the file (the format
    // probe reads the root attributes only, and may find them intact).
    for (const auto& [reader, call] : std::vector<std::pair<std::string, std::function<void()>>>{
             {"load_weights", [&] { (void)load_weights(path); }},
             {"read_keras_h5", [&] { (void)read_keras_h5(path); }},
             {"detect_format", [&] { (void)detect_format(path); }}}) {
      const std::string message = message_of(call);
      std::printf("%s %s: %s\n", reader.c_str(), input.filename().c_str(), message.c_str());
      if (reader != "detect_format" || message != "(no error)") {
        EXPECT_TRUE(contains(message, path)) << reader << ": " << message;
      }
      crashes_seen += contains(message, "crashed") || contains(message, "forbidden system call");
    }
  }
  // These inputs are known to crash libhdf5: some must have crashed the child here, or this test no longer
  // shows what it claims (the sandbox would be untested).
  EXPECT_GE(crashes_seen, 1);
  expect_no_children();
}

TEST_F(Sandbox, ReadModelWeightsRefusesACrashingFileCleanly) {
  const fs::path input =
      fs::path(TL_FUZZ_KNOWN_DIR) / "keras" / "crash-942949c0db18439ea15d730647bb45acc8d66901";
  fs::copy_file(input, file("crash.h5"));
  try {
    (void)detect_format(file("crash.h5"));
    (void)load_weights(file("crash.h5"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), file("crash.h5"))) << e.what();
  }
}

// ---- a normal file ---------------------------------------------------------------------------------------

TEST_F(Sandbox, ANormalFileLoadsBitForBitAsInProcess) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata(), sample_extra());
  const WeightsFile isolated = load_weights(file("w.h5"));
  const WeightsFile direct = load_weights_in_process(file("w.h5"));
  expect_identical(isolated.tensors, direct.tensors);
  expect_identical(isolated.extra, direct.extra);
  expect_identical(isolated.metadata, direct.metadata);
  // And what was saved: float32, float64 extras and int64 counters as written (in the file's name order).
  for (const auto& [saved, loaded] :
       {std::pair{sample_tensors(), &isolated.tensors}, std::pair{sample_extra(), &isolated.extra}}) {
    ASSERT_EQ(saved.size(), loaded->size());
    for (const auto& [name, t] : saved) {
      SCOPED_TRACE(name);
      ASSERT_TRUE(loaded->contains(name));
      StateDict one, other;
      one.insert(name, t);
      other.insert(name, loaded->at(name));
      expect_identical(one, other);
    }
  }
  expect_identical(isolated.metadata, sample_metadata());
  EXPECT_EQ(detect_format(file("w.h5")), SourceFormat::TlWeights);
}

TEST_F(Sandbox, AKerasFileImportsBitForBitAsInProcess) {
  TL_REQUIRE_FIXTURE(keras, "keras/v2_full.h5");
  const Imported isolated = read_keras_h5(keras);
  const Imported direct = read_keras_h5_in_process(keras);
  expect_identical(isolated.tensors, direct.tensors);
  expect_identical(isolated.metadata, direct.metadata);
  EXPECT_EQ(isolated.format, direct.format);
  EXPECT_EQ(detect_format(keras), SourceFormat::KerasH5);
}

TEST_F(Sandbox, TheReadersErrorsArriveUnchanged) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  const std::string full = bytes_of(file("w.h5"));
  std::ofstream(file("cut.h5"), std::ios::binary) << full.substr(0, full.size() / 2);
  std::ofstream(file("text.h5"), std::ios::binary) << "hello";
  for (const std::string& name : {std::string("cut.h5"), std::string("text.h5")}) {
    SCOPED_TRACE(name);
    std::string in_process = message_of([&] { (void)load_weights_in_process(file(name)); });
    EXPECT_EQ(message_of([&] { (void)load_weights(file(name)); }), in_process);
  }
  EXPECT_EQ(message_of([&] { (void)load_weights(file("absent.h5")); }), file("absent.h5") + ": no such file");
  EXPECT_EQ(message_of([&] { (void)load_weights(folder_.string()); }),
            folder_.string() + ": is a folder, not a file");
}

// ---- the child's fate, reported ------------------------------------------------------------------------

TEST_F(Sandbox, ACrashIsAnErrorNamingTheFileAndTheSignal) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  const std::string image = bytes_of(file("w.h5"));
  // The real reader, then a crash, as libhdf5's would come.
  const std::string message = message_of([&] {
    sandbox::run(
        file("w.h5"), sandbox::default_limits(image.size()),
        [&](wire::Sink& out) {
          const WeightsFile w =
              detail::read_weights(h5::File::open_image(file("w.h5"), image.data(), image.size()),
                                   [&out](const Shape& s, DType d) { return out.tensor(s, d); });
          if (w.tensors.size() == sample_tensors().size()) ::raise(SIGSEGV);
        },
        [](wire::Source&) {});
  });
  EXPECT_TRUE(contains(message, file("w.h5") + ": the HDF5 library crashed reading this file")) << message;
  if (!kSanitized) {
    EXPECT_TRUE(contains(message, "(SIGSEGV)")) << message;
  }
  // A genuine wild write, as libhdf5's would be.
  const std::string wild = sandboxed([] {
    *static_cast<volatile int*>(::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) = 1;
  });
  EXPECT_TRUE(contains(wild, "test.h5: the HDF5 library crashed reading this file")) << wild;
  EXPECT_TRUE(contains(sandboxed([] { std::abort(); }), "crashed")) << sandboxed([] { std::abort(); });
  expect_no_children();
}

TEST_F(Sandbox, AHangIsStoppedAtTheTimeout) {
  sandbox::Limits limits;
  limits.timeout_seconds = 1;
  const auto start = std::chrono::steady_clock::now();
  const std::string message = sandboxed(
      [] {
        volatile unsigned long spin = 0;
        for (;;) {
          spin = spin + 1;
        }
      },
      limits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(contains(message, "test.h5: reading the HDF5 file took more than 1 s")) << message;
  EXPECT_LT(seconds, 10);
  expect_no_children();
}

TEST_F(Sandbox, AnExitWithoutReplyIsAnError) {
  const std::string message = sandboxed([] { ::_exit(3); });
  EXPECT_TRUE(contains(message,
                       "test.h5: the HDF5 library crashed reading this file (the sandboxed reader "
                       "exited with status 3"))
      << message;
  // A clean exit without a word is no success either.
  const std::string silent = message_of([] {
    sandbox::run(
        "test.h5", {}, [](wire::Sink&) { ::_exit(0); }, [](wire::Source&) {});
  });
  EXPECT_EQ(silent, "test.h5: the sandboxed HDF5 reader ended without a reply");
}

TEST_F(Sandbox, ErrorsKeepTheirClassAndMessage) {
  const auto child_throws = [](auto error) {
    sandbox::run(
        "test.h5", {}, [&](wire::Sink&) { throw error; }, [](wire::Source&) {});
  };
  EXPECT_THROW(child_throws(ValueError("test.h5: bad value")), ValueError);
  EXPECT_THROW(child_throws(ShapeError("test.h5: bad shape")), ShapeError);
  EXPECT_THROW(child_throws(DTypeError("test.h5: bad dtype")), DTypeError);
  EXPECT_EQ(message_of([&] { child_throws(Error("test.h5: plain")); }), "test.h5: plain");
  // Control characters from the child (a terminal escape sequence) are not passed on.
  EXPECT_EQ(message_of([&] { child_throws(Error("test.h5: \x1b[2Jred")); }), "test.h5: ?[2Jred");
  // An error after part of the result was written is still the reader's error.
  const std::string late = message_of([] {
    sandbox::run(
        "test.h5", {},
        [](wire::Sink& out) {
          out.u8(1);
          throw Error("test.h5: too late");
        },
        [](wire::Source& in) { (void)in.u8(); });
  });
  EXPECT_EQ(late, "test.h5: too late");
}

// ---- what the filter stops -------------------------------------------------------------------------------

TEST_F(Sandbox, ForbiddenSystemCallsKillTheChild) {
  const pid_t parent = ::getpid();
  const std::vector<std::pair<std::string, std::function<void()>>> attempts = {
      {"socket", [] { (void)::socket(AF_INET, SOCK_STREAM, 0); }},
      {"execve",
       [] {
         char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
         ::execve("/bin/true", argv, nullptr);
       }},
      {"fork", [] { (void)::fork(); }},
      {"kill the parent", [parent] { (void)::kill(parent, 0); }},
      {"signal another process", [] { (void)::syscall(SYS_tgkill, 1, 1, 0); }},
      {"ptrace", [] { (void)::syscall(SYS_ptrace, 0, 0, 0, 0); }},
      {"dup", [] { (void)::dup(3); }},
      {"setrlimit", [] { (void)::syscall(SYS_prlimit64, 0, RLIMIT_AS, nullptr, nullptr); }},
      {"unlink", [] { (void)::unlink("/tmp/tl-sandbox-test-absent"); }},
      {"executable memory",
       [] { (void)::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); }},
      {"make memory executable",
       [] {
         void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
         (void)::mprotect(page, 4096, PROT_READ | PROT_EXEC);
       }},
  };
  for (const auto& [name, attempt] : attempts) {
    SCOPED_TRACE(name);
    const std::string message = sandboxed(attempt);
    EXPECT_EQ(message,
              "test.h5: the sandboxed HDF5 reader was stopped making a forbidden system call (SIGSYS) "
              "while reading this file; the file is damaged or was crafted to attack libhdf5");
  }
  expect_no_children();
}

TEST_F(Sandbox, TheChildCanOpenNoFileAndWriteOnlyItsPipe) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  const std::string path = file("w.h5");
  const std::string opened = sandboxed([&] {
    const int fd = ::open(path.c_str(), O_RDONLY);
    throw Error(fd >= 0 ? "open succeeded" : str("open: ", std::strerror(errno)));
  });
  EXPECT_EQ(opened, "open: No such file or directory");
  const std::string created = sandboxed([&] {
    const int fd = ::open((path + ".new").c_str(), O_WRONLY | O_CREAT, 0644);
    throw Error(fd >= 0 ? "open succeeded" : str("open: ", std::strerror(errno)));
  });
  EXPECT_EQ(created, "open: No such file or directory");
  EXPECT_FALSE(fs::exists(path + ".new"));
  // stdout and stderr are closed, and write is allowed on the reply pipe alone.
  for (const int fd : {1, 2, 4}) {
    const std::string written = sandboxed([fd] {
      const ssize_t n = ::write(fd, "x", 1);
      throw Error(n >= 0 ? "write succeeded" : str("write: ", std::strerror(errno)));
    });
    EXPECT_EQ(written, "write: Bad file descriptor") << fd;
  }
}

TEST_F(Sandbox, MemoryIsLimited) {
  sandbox::Limits limits;
  limits.memory_bytes = std::uint64_t{256} << 20;
  const std::string message = sandboxed(
      [] {
        // Not touched: without the limit this would only reserve address space.
        void* p = std::malloc(std::size_t{2} << 30);
        std::free(p);
        if (p) throw Error("the allocation succeeded");
        throw std::bad_alloc();
      },
      limits);
  if (kSanitized) {
    EXPECT_TRUE(contains(message, "test.h5: ")) << message;  // the sanitizer's allocator reports and exits
    EXPECT_FALSE(contains(message, "the allocation succeeded")) << message;
  } else {
    EXPECT_EQ(message,
              "test.h5: reading it needs more memory than the 256 MiB the sandboxed HDF5 reader may "
              "use (a damaged or hostile file?)");
  }
}

// ---- a lying child ---------------------------------------------------------------------------------------

TEST_F(Sandbox, AMalformedOrEndlessReplyIsRefused) {
  const std::string garbage = message_of([] {
    sandbox::run(
        "test.h5", {}, [](wire::Sink& out) { out.u32(0xffffffffu); },
        [](wire::Source& in) { (void)wire::get_weights(in); });
  });
  EXPECT_EQ(garbage,
            "test.h5: the sandboxed HDF5 reader sent a malformed reply (a string of 4294967295 bytes, "
            "more than the index holds)");

  sandbox::Limits limits;
  limits.reply_bytes = std::uint64_t{1} << 20;
  const auto start = std::chrono::steady_clock::now();
  const std::string flood = message_of([&] {
    sandbox::run(
        "test.h5", limits,
        [](wire::Sink& out) {
          const std::vector<unsigned char> block(1 << 16, 0);
          for (;;) out.write(block.data(), block.size());
        },
        [](wire::Source& in) {
          for (;;) (void)in.u8();
        });
  });
  EXPECT_EQ(flood,
            "test.h5: the result of reading it would be larger than the 1 MiB that tl takes from its "
            "sandboxed HDF5 reader (a damaged or hostile file?)");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);

  const std::string trailing = message_of([] {
    sandbox::run(
        "test.h5", {}, [](wire::Sink& out) { out.u32(7); }, [](wire::Source& in) { (void)in.u8(); });
  });
  EXPECT_TRUE(contains(trailing, "malformed reply (3 bytes after the end of the reply)")) << trailing;
  expect_no_children();
}

// A result in memory as the child leaves it, and the parent's view of it (whose tensors keep it alive).
struct Written {
  std::shared_ptr<std::vector<unsigned char>> memory;
  std::size_t data_size = 0, index_size = 0;
};

Written written(const std::function<void(wire::Sink&)>& write) {
  Written w;
  w.memory = std::make_shared<std::vector<unsigned char>>(std::size_t{1} << 20);
  wire::Sink out(w.memory->data(), w.memory->size(), "test.h5");
  write(out);
  std::tie(w.data_size, w.index_size) = out.finish();
  return w;
}

wire::Source source_of(const Written& w, std::size_t index_size) {
  return wire::Source(w.memory, w.memory->data(), w.data_size, std::min(index_size, w.index_size));
}

TEST(SandboxWire, RoundTripsEveryField) {
  const WeightsFile file{sample_tensors(), sample_metadata(), sample_extra()};
  const Written w = written([&](wire::Sink& out) { wire::put_weights(out, file); });
  wire::Source in = source_of(w, w.index_size);
  const WeightsFile back = wire::get_weights(in);
  EXPECT_TRUE(in.at_end());
  expect_identical(back.tensors, file.tensors);
  expect_identical(back.extra, file.extra);
  expect_identical(back.metadata, file.metadata);
  // In place: the tensors hold bytes of the result, at multiples of 64 from its start.
  for (const auto& [name, t] : back.tensors) {
    if (t.numel() == 0) continue;
    const auto offset = static_cast<const unsigned char*>(t.raw_data()) - w.memory->data();
    EXPECT_GE(offset, 0) << name;
    EXPECT_LT(offset, static_cast<std::ptrdiff_t>(w.data_size)) << name;
    EXPECT_EQ(offset % 64, 0) << name;
  }

  const Imported imported{sample_tensors(), sample_metadata(), "Keras .h5"};
  const Written w2 = written([&](wire::Sink& out) { wire::put_imported(out, imported); });
  wire::Source in2 = source_of(w2, w2.index_size);
  const Imported back2 = wire::get_imported(in2);
  expect_identical(back2.tensors, imported.tensors);
  expect_identical(back2.metadata, imported.metadata);
  EXPECT_EQ(back2.format, "Keras .h5");

  // A tensor the child made in place is not copied again.
  std::uint64_t first = 1, second = 1;
  const Written w3 = written([&](wire::Sink& out) {
    const Tensor t = out.tensor({16}, DType::Float32);
    first = out.place(t);
    second = out.place(t);
  });
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(second, 0u);
  EXPECT_EQ(w3.data_size, 64u);

  // Any index cut short: refused.
  for (std::size_t cut = 0; cut < w.index_size; cut += 5) {
    wire::Source part = source_of(w, cut);
    EXPECT_THROW((void)wire::get_weights(part), wire::MalformedReply) << cut;
  }
}

// The index of a WeightsFile with default metadata, written by hand so that it can lie.
void write_metadata(wire::Sink& out) {
  out.string("resnet18");
  out.i64(2);
  out.i64(224);
  for (int i = 0; i < 6; ++i) out.f64(0.5);
  out.string("bilinear");
  out.f64(0.875);
  out.u32(0);
  out.string("");
  out.string("");
}

struct Record {
  std::string name = "t";
  std::uint8_t dtype = 0;
  std::vector<std::int64_t> dims = {4};
  std::int64_t offset_shift = 0;  // added to the offset of 16 real bytes of data
};

std::string refused(const std::vector<Record>& records) {
  const Written w = written([&](wire::Sink& out) {
    write_metadata(out);
    out.u32(static_cast<std::uint32_t>(records.size()));
    for (const Record& r : records) {
      out.u8(0);
      out.string(r.name);
      out.u8(r.dtype);
      out.u8(static_cast<std::uint8_t>(r.dims.size()));
      for (const std::int64_t d : r.dims) out.i64(d);
      out.i64(static_cast<std::int64_t>(out.place(zeros({4}))) + r.offset_shift);
    }
  });
  wire::Source in = source_of(w, w.index_size);
  try {
    (void)wire::get_weights(in);
  } catch (const wire::MalformedReply& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(SandboxWire, LiesAreRefusedBeforeAnythingIsAllocatedOrRead) {
  EXPECT_EQ(refused({Record{}}), "(accepted)");
  EXPECT_EQ(refused({Record{"a"}, Record{"b"}}), "(accepted)");
  const auto says = [](const std::vector<Record>& records, const std::string& part) {
    const std::string message = refused(records);
    EXPECT_TRUE(contains(message, part)) << message;
  };
  says({Record{"t", 0, {1 << 30, 1 << 30}}}, "declares more data than the result holds");
  says({Record{"t", 0, {std::numeric_limits<std::int64_t>::max(), 2}}},
       "declares more data than the result holds");
  // A zero dim among huge ones: no data, but strides that would overflow.
  says({Record{"t", 0, {0, std::int64_t{1} << 62, std::int64_t{1} << 62}}}, "declares more data");
  says({Record{"t", 0, {-1}}}, "negative dim");
  says({Record{"t", 9}}, "dtype code 9");
  says({Record{"t", 0, {1, 1, 1, 1, 1, 1, 1, 1, 1}}}, "rank 9");
  says({Record{"t"}, Record{"t"}}, "tensor 't' twice");
  says({Record{""}}, "without a name");
  says({Record{"t", 0, {4}, 4}}, "not a multiple of 64");
  says({Record{"t", 0, {4}, 1 << 20}}, "past the");
  says({Record{"t", 0, {4}, -(std::int64_t{1} << 40)}}, "past the");         // an offset near 2^64
  says({Record{"t", 0, {20}}}, "declares more data than the result holds");  // 80 bytes, 16 written
  // Two tensors over the same bytes: refused, so that no two tensors of the parent share memory.
  says({Record{"a", 0, {4}}, Record{"b", 0, {4}, -64}}, "overlaps another tensor's");
  // A count of 2^32 - 1 class names with nothing behind it ends at the end of the index.
  const Written names = written([](wire::Sink& out) {
    out.string("a");
    out.i64(1);
    out.i64(1);
    for (int i = 0; i < 6; ++i) out.f64(0.5);
    out.string("x");
    out.f64(1);
    out.u32(0xffffffffu);
  });
  wire::Source in = source_of(names, names.index_size);
  EXPECT_THROW((void)wire::get_weights(in), wire::MalformedReply);
}

// ---- processes and descriptors -------------------------------------------------------------------------

TEST_F(Sandbox, LeavesNoChildAndNoDescriptor) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata());
  fs::copy_file(fs::path(TL_FUZZ_KNOWN_DIR) / "keras" / "crash-942949c0db18439ea15d730647bb45acc8d66901",
                file("crash.h5"));
  (void)load_weights(file("w.h5"));  // whatever a first call sets up once
  const std::size_t before = open_descriptors();
  for (int i = 0; i < 5; ++i) {
    (void)load_weights(file("w.h5"));
    (void)message_of([&] { (void)load_weights(file("crash.h5")); });
    (void)sandboxed([] { ::raise(SIGSEGV); });
    (void)message_of([] {
      sandbox::run(
          "test.h5", {}, [](wire::Sink& out) { out.u32(0xffffffffu); },
          [](wire::Source& in) { (void)wire::get_weights(in); });
    });
  }
  EXPECT_EQ(open_descriptors(), before);
  expect_no_children();
}

TEST_F(Sandbox, WorksFromSeveralThreadsWhileOthersUseLibhdf5) {
  save_weights(file("w.h5"), sample_tensors(), sample_metadata(), sample_extra());
  fs::copy_file(
      fs::path(TL_FUZZ_KNOWN_DIR) / "weights_file" / "crash-ab07c9cf0fd02e3c740d136c4ff4e4c49a5e5586",
      file("crash.h5"));
  std::atomic<int> loaded{0}, refused{0}, wrong{0};
  std::atomic<bool> stop{false};
  // A thread inside libhdf5 in this process all the time (tl writing checkpoints): the forks must not copy
  // its lock into a child.
  std::thread writer([&] {
    int i = 0;
    while (!stop)
      save_weights(file("churn" + std::to_string(i++ % 2) + ".h5"), sample_tensors(), sample_metadata());
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t)
    readers.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        try {
          if ((t + i) % 3 == 0) {
            (void)load_weights(file("crash.h5"));
            ++wrong;
          } else {
            const WeightsFile w = load_weights(file("w.h5"));
            if (w.tensors.size() == sample_tensors().size() && w.metadata.source == "unit test")
              ++loaded;
            else
              ++wrong;
          }
        } catch (const Error& e) {
          ++(contains(e.what(), file("crash.h5")) ? refused : wrong);
        }
      }
    });
  for (std::thread& t : readers) t.join();
  stop = true;
  writer.join();
  EXPECT_EQ(loaded, 24);
  EXPECT_EQ(refused, 12);
  EXPECT_EQ(wrong, 0);
  expect_no_children();
}

}  // namespace
}  // namespace tl::weights
