// read_pth on files written by tests/fixtures/make_pth_fixtures.py: a torchvision ResNet-18 and a dict of
// every dtype, rank and view, in both torch.save containers, compared value for value with what torch holds;
// the checkpoint wrappers and DataParallel's prefix; and malicious, damaged and hand-crafted files, each
// refused with a message naming the file and the culprit, and none ever executing anything. The restricted
// unpickler is also tested alone, on pickles too hostile for torch to write.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/support/fixtures.h"
#include "weights/importers.h"
#include "weights/pickle.h"

namespace tl::weights {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using tl::testing::fixture_path;
using namespace std::string_view_literals;

std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every tensor of <stem>.expected.{txt,bin} must be in `actual`, in the same order, with the same dtype,
// shape and bits; see the fixture script for the format.
void expect_matches(const StateDict& actual, const std::string& stem) {
  std::ifstream index(stem + ".expected.txt");
  ASSERT_TRUE(index) << stem << ".expected.txt is missing";
  const std::vector<std::uint8_t> data = file_bytes(stem + ".expected.bin");
  auto entry = actual.begin();
  std::string line;
  std::size_t count = 0;
  while (std::getline(index, line)) {
    std::istringstream fields(line);
    std::string name, kind;
    std::size_t offset = 0;
    std::int64_t rank = 0;
    fields >> name >> kind >> offset >> rank;
    Shape shape(static_cast<std::size_t>(rank));
    for (auto& d : shape) fields >> d;
    SCOPED_TRACE(name);
    ++count;
    ASSERT_NE(entry, actual.end()) << "missing " << name;
    EXPECT_EQ(entry->first, name) << "out of order";
    const Tensor& t = entry->second;
    ++entry;
    EXPECT_EQ(t.shape(), shape);
    const std::int64_t n = shape_numel(shape);
    if (kind == "f32") {
      ASSERT_EQ(t.dtype(), DType::Float32);
      const std::vector<float> got = t.to_vector<float>();
      ASSERT_LE(offset + got.size() * 4, data.size());
      std::vector<float> want(static_cast<std::size_t>(n));
      if (n > 0) std::memcpy(want.data(), data.data() + offset, want.size() * 4);
      ASSERT_EQ(got.size(), want.size());
      // Bitwise: the conversions (half, bfloat16, double) must round exactly as torch's .float() does.
      EXPECT_EQ(0, n == 0 ? 0 : std::memcmp(got.data(), want.data(), got.size() * 4));
    } else {
      ASSERT_EQ(kind, "i64");
      ASSERT_EQ(t.dtype(), DType::Int64);
      const std::vector<std::int64_t> got = t.to_vector<std::int64_t>();
      std::vector<std::int64_t> want(static_cast<std::size_t>(n));
      ASSERT_LE(offset + want.size() * 8, data.size());
      if (n > 0) std::memcpy(want.data(), data.data() + offset, want.size() * 8);
      EXPECT_EQ(got, want);
    }
  }
  EXPECT_EQ(count, actual.size()) << "unexpected extra tensors";
}

// read_pth(path) must throw tl::Error whose message holds the file's name and every one of `parts`.
void expect_refused(const std::string& path, const std::vector<std::string>& parts) {
  try {
    read_pth(path);
    ADD_FAILURE() << path << " was read";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fs::path(path).filename().string()), std::string::npos) << message;
    for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

// ---- real checkpoints ----

TEST(Pth, ResNet18ZipMatchesTorch) {
  TL_REQUIRE_FIXTURE(path, "pth/resnet18_zip.pth");
  const Imported imported = read_pth(path);
  EXPECT_EQ(imported.format, "torchvision .pth (zip)");
  EXPECT_EQ(imported.metadata.architecture, "");  // tl_convert detects it from the names
  EXPECT_EQ(imported.tensors.size(), 122u);
  EXPECT_EQ(imported.tensors.at("bn1.num_batches_tracked").item<std::int64_t>(), 100);
  expect_matches(imported.tensors, fixture_path("pth/resnet18"));
}

TEST(Pth, ResNet18LegacyMatchesTorch) {
  TL_REQUIRE_FIXTURE(path, "pth/resnet18_legacy.pth");
  const Imported imported = read_pth(path);
  EXPECT_EQ(imported.format, "torchvision .pth (legacy)");
  expect_matches(imported.tensors, fixture_path("pth/resnet18"));
}

// half, double, bfloat16 to float32; every integer type and bool to int64; 0-d, empty, transposed, permuted,
// storage-sharing views and nn.Parameter; the same through protocol 4 and through a zip written by Python.
TEST(Pth, EveryDtypeAndViewInBothFormats) {
  for (const char* name : {"mixed_zip.pth", "mixed_legacy.pth", "mixed_proto4_zip.pth", "zip_restored.pth"}) {
    SCOPED_TRACE(name);
    TL_REQUIRE_FIXTURE(path, std::string("pth/") + name);
    const Imported imported = read_pth(path);
    expect_matches(imported.tensors, fixture_path("pth/mixed"));
    EXPECT_TRUE(imported.tensors.at("transposed").is_contiguous());
  }
}

TEST(Pth, LegacyStorageViews) {
  TL_REQUIRE_FIXTURE(path, "pth/legacy_views.pth");
  expect_matches(read_pth(path).tensors, fixture_path("pth/legacy_views"));
}

TEST(Pth, CheckpointWrappersAndDataParallelPrefix) {
  for (const char* name : {"wrapped_state_dict_zip.pth", "wrapped_model_legacy.pth", "dataparallel_zip.pth",
                           "dataparallel_legacy.pth", "wrapped_dataparallel_zip.pth"}) {
    SCOPED_TRACE(name);
    TL_REQUIRE_FIXTURE(path, std::string("pth/") + name);
    expect_matches(read_pth(path).tensors, fixture_path("pth/small"));
  }
}

TEST(Pth, CraftedViewInsideItsStorage) {
  TL_REQUIRE_FIXTURE(path, "pth/crafted_ok_zip.pth");
  EXPECT_EQ(read_pth(path).tensors.at("w").to_vector<float>(), (std::vector<float>{2, 3, 4}));
}

// ---- nothing from a file ever runs ----

TEST(Pth, MaliciousPicklesAreRefusedAndNothingRuns) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"evil_system.pkl", "posix.system"},      {"evil_eval_proto4.pkl", "builtins.eval"},
      {"evil_system_zip.pth", "posix.system"},  {"evil_system_legacy.pth", "posix.system"},
      {"evil_popen_zip.pth", "commands.Popen"},  // pickle's protocol-2 name for subprocess.Popen
  };
  for (const auto& [name, global] : cases) {
    SCOPED_TRACE(name);
    TL_REQUIRE_FIXTURE(path, "pth/" + name);
    expect_refused(path, {"refusing to load global '" + global + "'", "torch.save(model.state_dict())"});
  }
  EXPECT_FALSE(fs::exists(fixture_path("pth/PWNED"))) << "a payload ran";
}

TEST(Pth, WholePickledModelIsRefusedWithAdvice) {
  for (const char* name : {"whole_model_zip.pth", "whole_model_legacy.pth"}) {
    SCOPED_TRACE(name);
    TL_REQUIRE_FIXTURE(path, std::string("pth/") + name);
    expect_refused(path, {"torch.nn.modules.container.Sequential", "save model.state_dict() instead"});
  }
}

TEST(Pth, ObjectsThatAreNotStateDicts) {
  TL_REQUIRE_FIXTURE(alone, "pth/tensor_alone_zip.pth");
  expect_refused(alone, {"the saved object is a tensor, not a dict"});
  TL_REQUIRE_FIXTURE(list, "pth/list_legacy.pth");
  expect_refused(list, {"the saved object is a list"});
  TL_REQUIRE_FIXTURE(entry, "pth/non_tensor_entry_zip.pth");
  expect_refused(entry, {"entry 'epoch' is an int, not a tensor"});
}

// ---- damaged and hostile containers ----

TEST(Pth, TruncatedFilesAreRefused) {
  TL_REQUIRE_FIXTURE(folder, "pth");
  int legacy = 0, zip = 0;
  for (const auto& item : fs::directory_iterator(folder)) {
    const std::string name = item.path().filename().string();
    if (name.rfind("truncated_legacy_", 0) == 0) {
      SCOPED_TRACE(name);
      expect_refused(item.path().string(), {"truncated"});
      ++legacy;
    } else if (name.rfind("truncated_zip_", 0) == 0) {
      SCOPED_TRACE(name);
      expect_refused(item.path().string(), {"not a readable zip archive"});
      ++zip;
    }
  }
  EXPECT_GE(legacy, 8);
  EXPECT_GE(zip, 4);
}

TEST(Pth, ZipEntriesOutsideTheArchiveAreRefused) {
  TL_REQUIRE_FIXTURE(dotdot, "pth/zip_dotdot.pth");
  expect_refused(dotdot, {"'mixed_zip/../evil.txt'", "refusing"});
  TL_REQUIRE_FIXTURE(absolute, "pth/zip_absolute.pth");
  expect_refused(absolute, {"'/tmp/evil.txt'", "refusing"});
}

TEST(Pth, CorruptedZipDataIsRefused) {
  TL_REQUIRE_FIXTURE(path, "pth/zip_bad_crc.pth");
  expect_refused(path, {"mixed_zip/data/0", "CRC"});
}

TEST(Pth, CraftedTensorsAreCheckedAgainstTheirStorage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"crafted_out_of_bounds_zip.pth", "reaches element 4 of storage '0', which holds 4 elements"},
      {"crafted_huge_size_zip.pth", "absurd size"},
      {"crafted_short_record_zip.pth", "holds 16 bytes, but its storage is 8 elements of torch.FloatStorage"},
      {"crafted_hooks_zip.pth", "backward_hooks should be empty"},
      {"crafted_bad_key_zip.pth", "storage key '../0' is not a plain record name"},
      {"crafted_missing_record_zip.pth", "storage '7' has no record 'archive/data/7'"},
  };
  for (const auto& [name, part] : cases) {
    SCOPED_TRACE(name);
    TL_REQUIRE_FIXTURE(path, "pth/" + name);
    expect_refused(path, {part});
  }
}

TEST(Pth, MissingEmptyAndForeignFiles) {
  expect_refused("/nonexistent/model.pth", {"cannot open"});
  const fs::path folder = fs::temp_directory_path() / ("tl_pth_test_" + std::to_string(::getpid()));
  fs::create_directories(folder);
  const std::string empty = (folder / "empty.pth").string(), text = (folder / "text.pth").string();
  std::ofstream(empty).close();
  std::ofstream(text) << "hello";
  expect_refused(empty, {"empty file"});
  expect_refused(text, {"neither a zip archive nor a pickle"});
  fs::remove_all(folder);
}

// ---- the unpickler alone ----

std::vector<std::uint8_t> bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

std::string unpickle_error(const std::vector<std::uint8_t>& input) {
  try {
    pickle::unpickle(input, "t.pkl");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Every proper prefix of a real state-dict pickle is a clean truncation error, never a crash or a result.
TEST(PthUnpickler, EveryPrefixOfARealPickleIsATruncationError) {
  TL_REQUIRE_FIXTURE(path, "pth/mixed_legacy.pth");
  const std::vector<std::uint8_t> file = file_bytes(path);
  std::size_t start = 0;
  for (int i = 0; i < 3; ++i) start += pickle::unpickle(std::span(file).subspan(start), path, start).size;
  const std::size_t size = pickle::unpickle(std::span(file).subspan(start), path, start).size;
  for (std::size_t n = 0; n < size; ++n) {
    const std::vector<std::uint8_t> prefix(file.begin() + static_cast<std::ptrdiff_t>(start),
                                           file.begin() + static_cast<std::ptrdiff_t>(start + n));
    const std::string message = unpickle_error(prefix);
    ASSERT_NE(message.find("t.pkl: truncated pickle at byte"), std::string::npos)
        << "prefix " << n << ": " << message;
  }
}

TEST(PthUnpickler, DeepNestingNeedsNoRecursion) {
  constexpr int kDepth = 200000;
  std::string p = "\x80\x02";
  p += std::string(kDepth, ']');      // EMPTY_LIST
  p += std::string(kDepth - 1, 'a');  // APPEND: each list into the one below it
  p += '.';
  const pickle::Document doc = pickle::unpickle(bytes(p), "deep.pkl");
  int depth = 1;
  for (pickle::Ref r = doc.root; !doc[r].items.empty(); r = doc[r].items[0]) ++depth;
  EXPECT_EQ(depth, kDepth);
}

TEST(PthUnpickler, CyclesAreHarmless) {
  // l = []; l.append(l) through the memo.
  const pickle::Document doc = pickle::unpickle(bytes("\x80\x02]q\x00h\x00"
                                                      "a."sv),
                                                "cycle.pkl");
  EXPECT_EQ(doc[doc.root].items.at(0), doc.root);
}

TEST(PthUnpickler, IntegersOfEveryWidth) {
  auto root = [](std::string_view p) {
    const pickle::Document doc = pickle::unpickle(bytes(p), "int.pkl");
    return doc[doc.root];
  };
  EXPECT_EQ(root("\x80\x02J\xff\xff\xff\xff.").integer, -1);                  // BININT
  EXPECT_EQ(root(std::string_view("\x80\x02\x8a\x01\xff.", 6)).integer, -1);  // LONG1
  EXPECT_EQ(root(std::string_view("\x80\x02\x8a\x00.", 5)).integer, 0);
  EXPECT_EQ(root(std::string_view("\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\x00.", 14)).integer,
            std::numeric_limits<std::int64_t>::max());
  const pickle::Value big =
      root(std::string_view("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.", 14));
  EXPECT_EQ(big.kind, pickle::Kind::BigInt);                                                      // 2^63
  EXPECT_EQ(root(std::string_view("\x80\x02G\x3f\xf8\x00\x00\x00\x00\x00\x00.", 12)).real, 1.5);  // BINFLOAT
}

TEST(PthUnpickler, HostileInputsAreCleanErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {""s, "truncated pickle at byte 0"},
      {"\x80"s, "truncated pickle at byte 0"},
      {"\x80\x02"s, "without a STOP"},
      {"\x80\x02."s, "stack underflow"},
      {"\x80\x02N(R."s, "stack underflow"},  // REDUCE may not reach below a MARK
      {"\x80\x02h\x05."s, "memo entry 5 is read before it is written"},
      {"\x80\x02X\xff\xff\xff\xff"
       "abc."s,
       "truncated pickle at byte 2: a string needs 4294967295 bytes"},
      {std::string("\x80\x02\x8d\x00\x00\x00\x00\x00\x00\x00\x80.", 12), "truncated pickle at byte 2"},
      {std::string("\x80\x02\x8b\x00\x00\x01\x00.", 8), "an integer of 65536 bytes"},
      {"\x80\x02"
       "cos\nsystem"s,
       "truncated pickle at byte 2: GLOBAL's name has no end of line"},
      {"\x80\x02"s + std::string(300, 'c'), "longer than 256 bytes"},
      {"\x80\x02\x81."s, "unsupported pickle opcode 0x81"},
      {"\x80\x02(i__builtin__\nexec\n."s, "unsupported pickle opcode 0x69 ('i')"},
      {"\x80\x09."s, "unsupported pickle protocol 9"},
      {"\x80\x02"s + std::string(2000000, '('), "nested MARKs"},
      {"\x80\x02N]a."s, "APPEND to None"},
      {"\x80\x02Na."s, "stack underflow"},
      {"\x80\x02}Na."s, "APPEND to a dict"},
      {"\x80\x02]NNs."s, "SETITEM on a list"},
      {"\x80\x02]Nb."s, "BUILD on a list"},
      {"\x80\x02NN\x86Q."s, "unsupported persistent id"},
      {"\x80\x02"
       "ccollections\nOrderedDict\n]\x85R."s,
       "collections.OrderedDict called with arguments"},
      {"\x80\x02"
       "ctorch\nFloatStorage\n)R."s,
       "refusing to call 'torch.FloatStorage'"},
      {"\x80\x02"
       "ctorch._utils\n_rebuild_tensor_v2\nK\x01\x85R."s,
       "_rebuild_tensor_v2 called with 1 arguments"},
      {"\x80\x02"
       "c__main__\nNet\n."s,
       "refusing to load global '__main__.Net'"},
      {"\x80\x02"
       "ctorch.storage\n_load_from_bytes\n."s,
       "refusing to load global 'torch.storage._load_from_bytes'"},
      {"\x80\x02X\x01\x00\x00\x00"
       "aX\x01\x00\x00\x00"
       "b\x93."s,
       "refusing to load global 'a.b'"},
  };
  for (const auto& [input, part] : cases) {
    SCOPED_TRACE(input.substr(0, 40));
    const std::string message = unpickle_error(bytes(input));
    EXPECT_NE(message.find(part), std::string::npos) << message;
    EXPECT_EQ(message.rfind("t.pkl: ", 0), 0u) << message;
  }
}

// The memo and the stack are bounded (4M entries each), with an error that says which, so a small hostile
// pickle cannot grow either without end: BINGET pushes a memoised value again without a new value, and
// LONG_BINPUT fills the memo from one value.
TEST(PthUnpickler, MemoAndStackAreBounded) {
  constexpr std::size_t kLimit = std::size_t{1} << 22;
  std::string deep = "\x80\x02Nq\x00"s;
  for (std::size_t i = 0; i <= kLimit; ++i) deep += "h\x00"s;
  const std::string stack_message = unpickle_error(bytes(deep + "."));
  EXPECT_NE(stack_message.find("pickle stack deeper than 4194304: refusing"), std::string::npos)
      << stack_message;

  std::string memo = "\x80\x02N"s;
  for (std::uint32_t i = 0; i <= kLimit; ++i) {
    memo += 'r';
    for (int b = 0; b < 4; ++b) memo += static_cast<char>((i >> (8 * b)) & 0xff);
  }
  const std::string memo_message = unpickle_error(bytes(memo + "."));
  EXPECT_NE(memo_message.find("memo larger than 4194304 entries: refusing"), std::string::npos)
      << memo_message;
}

}  // namespace
}  // namespace tl::weights
