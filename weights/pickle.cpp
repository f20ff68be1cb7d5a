#include "weights/pickle.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "engine/error.h"

namespace tl::weights::pickle {
namespace {

// Limits that keep a hostile pickle's memory in proportion to a real one's: a ResNet-152 state dict needs
// about 20k values and a memo of 8k entries; these leave a thousandfold margin and still cap memory at a few
// hundred MB.
constexpr std::size_t kMaxValues = std::size_t{1} << 22;
constexpr std::size_t kMaxMemo = std::size_t{1} << 22;
constexpr std::size_t kMaxStack = std::size_t{1} << 22;
constexpr std::size_t kMaxMarks = std::size_t{1} << 20;
constexpr std::size_t kMaxItems = std::size_t{1} << 24;  // elements of all tuples, lists and dicts together
constexpr std::size_t kMaxIntegerBytes = 64;             // LONG1/LONG4 payloads
constexpr std::size_t kMaxGlobalLine = 256;              // "module\n" or "name\n" of GLOBAL
constexpr std::size_t kMaxRank = 64;
constexpr int kMaxProtocol = 5;

constexpr const char* kOnlyStateDicts = "tl reads only state dicts saved by torch.save(model.state_dict())";

struct Global {
  const char* module;
  const char* name;
  Callable callable;
  StorageType storage_type;
};

// The allowlist: exactly what torch.save writes for a state dict of dense CPU or CUDA tensors.
constexpr Global kAllowed[] = {
    {"collections", "OrderedDict", Callable::OrderedDict, StorageType::Float},
    {"torch._utils", "_rebuild_tensor_v2", Callable::RebuildTensorV2, StorageType::Float},
    {"torch._utils", "_rebuild_tensor", Callable::RebuildTensor, StorageType::Float},
    {"torch._utils", "_rebuild_parameter", Callable::RebuildParameter, StorageType::Float},
    {"torch", "FloatStorage", Callable::StorageClass, StorageType::Float},
    {"torch", "DoubleStorage", Callable::StorageClass, StorageType::Double},
    {"torch", "HalfStorage", Callable::StorageClass, StorageType::Half},
    {"torch", "BFloat16Storage", Callable::StorageClass, StorageType::BFloat16},
    {"torch", "LongStorage", Callable::StorageClass, StorageType::Long},
    {"torch", "IntStorage", Callable::StorageClass, StorageType::Int},
    {"torch", "ShortStorage", Callable::StorageClass, StorageType::Short},
    {"torch", "CharStorage", Callable::StorageClass, StorageType::Char},
    {"torch", "ByteStorage", Callable::StorageClass, StorageType::Byte},
    {"torch", "BoolStorage", Callable::StorageClass, StorageType::Bool},
};

// Pickle opcodes (CPython's Lib/pickle.py names), the subset torch.save can emit for a state dict.
enum Op : std::uint8_t {
  MARK = '(',
  STOP = '.',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINSTRING = 'T',
  SHORT_BINSTRING = 'U',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  DICT = 'd',
  EMPTY_DICT = '}',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  LIST = 'l',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  BINFLOAT = 'G',
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  PROTO = 0x80,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

class Parser {
 public:
  Parser(std::span<const std::uint8_t> bytes, const std::string& source, std::size_t base)
      : in_(bytes), source_(source), base_(base) {}

  Document run() {
    while (true) {
      op_at_ = pos_;
      if (pos_ >= in_.size()) fail_truncated("the pickle ends without a STOP opcode");
      const std::uint8_t op = in_[pos_++];
      if (op == STOP) {
        doc_.root = pop();
        doc_.size = pos_;
        return std::move(doc_);
      }
      step(op);
    }
  }

 private:
  // ---- errors ----
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(str(source_, ": ", what, " (pickle byte ", base_ + op_at_, ")"));
  }
  [[noreturn]] void fail_truncated(const std::string& what) const {
    throw Error(str(source_, ": truncated pickle at byte ", base_ + op_at_, ": ", what));
  }

  // ---- input: every read is checked against what remains ----
  std::size_t remaining() const { return in_.size() - pos_; }
  const std::uint8_t* take(std::uint64_t n, const char* what) {
    if (n > remaining()) fail_truncated(str(what, " needs ", n, " bytes, ", remaining(), " remain"));
    const std::uint8_t* p = in_.data() + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  template <typename T>
  T read_le(const char* what) {  // unsigned little-endian integer of sizeof(T) bytes
    const std::uint8_t* p = take(sizeof(T), what);
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(T{p[i]} << (8 * i));
    return v;
  }
  std::string read_text(std::uint64_t n, const char* what) {
    const std::uint8_t* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  std::string read_line(const char* what) {
    const std::size_t window = std::min(remaining(), kMaxGlobalLine);
    const std::uint8_t* begin = in_.data() + pos_;
    const void* nl = std::memchr(begin, '\n', window);
    if (nl == nullptr) {
      if (window < kMaxGlobalLine) fail_truncated(str(what, " has no end of line"));
      fail(str(what, " is longer than ", kMaxGlobalLine, " bytes"));
    }
    const std::size_t n = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nl) - begin);
    std::string out(reinterpret_cast<const char*>(begin), n);
    pos_ += n + 1;
    return out;
  }

  // ---- the value arena, stack, marks and memo ----
  Ref add(Value v) {
    if (doc_.values.size() >= kMaxValues) fail(str("more than ", kMaxValues, " values: refusing"));
    doc_.values.push_back(std::move(v));
    return static_cast<Ref>(doc_.values.size() - 1);
  }
  void push(Ref r) {
    if (stack_.size() >= kMaxStack) fail(str("pickle stack deeper than ", kMaxStack, ": refusing"));
    stack_.push_back(r);
  }
  void push_new(Value v) { push(add(std::move(v))); }
  // The bottom of what the current opcode may touch: Python keeps the items below a MARK out of reach until
  // the mark is popped, and so do we.
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Ref top() const {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
  }
  Ref pop() {
    const Ref r = top();
    stack_.pop_back();
    return r;
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const std::size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }
  std::vector<Ref> pop_n(std::size_t n) {
    if (stack_.size() < floor() + n) fail("stack underflow");
    std::vector<Ref> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    return items;
  }
  void count_items(std::size_t n) {
    items_ += n;
    if (items_ > kMaxItems) fail(str("more than ", kMaxItems, " container elements: refusing"));
  }
  Value& at(Ref r) { return doc_.values[r]; }
  const Value& at(Ref r) const { return doc_.values[r]; }
  void memo_put(std::uint64_t key) {
    const Ref r = top();
    if (memo_.size() >= kMaxMemo && memo_.count(key) == 0)
      fail(str("memo larger than ", kMaxMemo, " entries: refusing"));
    memo_[key] = r;
  }
  void memo_get(std::uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail(str("memo entry ", key, " is read before it is written"));
    push(it->second);
  }

  // ---- constructors ----
  static Value scalar(Kind kind, std::int64_t integer = 0) {
    Value v;
    v.kind = kind;
    v.integer = integer;
    return v;
  }
  static Value text(Kind kind, std::string s) {
    Value v;
    v.kind = kind;
    v.text = std::move(s);
    return v;
  }
  Value container(Kind kind, std::vector<Ref> items) {
    count_items(items.size());
    Value v;
    v.kind = kind;
    v.items = std::move(items);
    return v;
  }
  // LONG1/LONG4: two's complement little-endian of any length; int64 when it fits, else kept as bytes.
  Value integer(const std::uint8_t* p, std::size_t n) {
    if (n == 0) return scalar(Kind::Int, 0);
    const bool negative = (p[n - 1] & 0x80) != 0;
    if (n > 8) {
      const std::uint8_t fill = negative ? 0xff : 0x00;
      bool fits = ((p[7] & 0x80) != 0) == negative;
      for (std::size_t i = 8; i < n; ++i) fits = fits && p[i] == fill;
      if (!fits) return text(Kind::BigInt, std::string(reinterpret_cast<const char*>(p), n));
      n = 8;
    }
    std::uint64_t bits = negative ? ~std::uint64_t{0} : 0;
    for (std::size_t i = 0; i < n; ++i) {
      bits &= ~(std::uint64_t{0xff} << (8 * i));
      bits |= std::uint64_t{p[i]} << (8 * i);
    }
    return scalar(Kind::Int, static_cast<std::int64_t>(bits));
  }

  // ---- the allowlist ----
  void push_global(const std::string& module, const std::string& name) {
    for (const Global& g : kAllowed) {
      if (module == g.module && name == g.name) {
        Value v = text(Kind::Global, module + "." + name);
        v.callable = g.callable;
        v.storage_type = g.storage_type;
        push_new(std::move(v));
        return;
      }
    }
    std::string message = str("refusing to load global '", module, ".", name, "': ", kOnlyStateDicts);
    // A pickled nn.Module names its classes: say what to do instead.
    if (module.rfind("torch", 0) == 0 || module == "__main__")
      message +=
          " (this looks like a whole pickled model, torch.save(model): load it in Python and save "
          "model.state_dict() instead)";
    fail(message);
  }

  // ---- argument checks for the reductions ----
  const Value& expect(Ref r, Kind kind, const char* what) const {
    const Value& v = at(r);
    if (v.kind != kind) fail(str(what, " should be ", describe(kind), ", got ", describe(v.kind)));
    return v;
  }
  std::int64_t expect_int(Ref r, const char* what, std::int64_t min) const {
    const std::int64_t v = expect(r, Kind::Int, what).integer;
    if (v < min) fail(str(what, " is ", v, ", below ", min));
    return v;
  }
  std::vector<std::int64_t> expect_ints(Ref r, const char* what) const {
    const Value& t = expect(r, Kind::Tuple, what);
    if (t.items.size() > kMaxRank)
      fail(str(what, " has ", t.items.size(), " dimensions, more than ", kMaxRank));
    std::vector<std::int64_t> out;
    out.reserve(t.items.size());
    for (const Ref item : t.items) out.push_back(expect_int(item, what, 0));
    return out;
  }
  void expect_empty_dict(Ref r, const char* what) const {
    const Value& v = expect(r, Kind::Dict, what);
    if (!v.items.empty()) fail(str(what, " should be empty (tl never runs hooks from a file)"));
  }

  // torch._utils._rebuild_tensor(storage, offset, size, stride) and _rebuild_tensor_v2(..., requires_grad,
  // backward_hooks[, metadata]).
  void rebuild_tensor(const std::vector<Ref>& args, bool v2) {
    const std::size_t n = args.size();
    if (v2 ? (n != 6 && n != 7) : n != 4)
      fail(str(v2 ? "_rebuild_tensor_v2" : "_rebuild_tensor", " called with ", n, " arguments"));
    TensorRef t;
    t.storage = static_cast<std::size_t>(expect(args[0], Kind::Storage, "a tensor's storage").integer);
    t.offset = expect_int(args[1], "a tensor's storage offset", 0);
    t.shape = expect_ints(args[2], "a tensor's size");
    t.strides = expect_ints(args[3], "a tensor's stride");
    if (t.shape.size() != t.strides.size())
      fail(str("a tensor's size has ", t.shape.size(), " dimensions but its stride ", t.strides.size()));
    if (v2) {
      expect(args[4], Kind::Bool, "requires_grad");
      expect_empty_dict(args[5], "backward_hooks");
      if (n == 7 && at(args[6]).kind != Kind::None && at(args[6]).kind != Kind::Dict)
        fail(str("a tensor's metadata should be a dict, got ", describe(at(args[6]).kind)));
    }
    Value v = scalar(Kind::Tensor, static_cast<std::int64_t>(doc_.tensors.size()));
    doc_.tensors.push_back(std::move(t));
    push_new(std::move(v));
  }

  void reduce() {
    const Ref args_ref = pop();
    const Ref callable_ref = pop();
    const Value& callable = at(callable_ref);
    if (callable.kind != Kind::Global) fail(str("REDUCE of ", describe(callable.kind)));
    const std::vector<Ref> args = expect(args_ref, Kind::Tuple, "REDUCE's arguments").items;
    switch (callable.callable) {
      case Callable::OrderedDict:
        if (!args.empty()) fail("collections.OrderedDict called with arguments");
        push_new(container(Kind::Dict, {}));
        return;
      case Callable::RebuildTensorV2:
        rebuild_tensor(args, true);
        return;
      case Callable::RebuildTensor:
        rebuild_tensor(args, false);
        return;
      case Callable::RebuildParameter:
        // (data, requires_grad, backward_hooks): a Parameter is its data to tl.
        if (args.size() != 3) fail(str("_rebuild_parameter called with ", args.size(), " arguments"));
        expect(args[0], Kind::Tensor, "a parameter's data");
        expect(args[1], Kind::Bool, "requires_grad");
        expect_empty_dict(args[2], "backward_hooks");
        push(args[0]);
        return;
      case Callable::StorageClass:
        break;
    }
    fail(str("refusing to call '", callable.text, "': ", kOnlyStateDicts));
  }

  // ('storage', StorageType, key, location, numel) in zip files; legacy files add view_metadata, None or
  // (view_key, offset, numel).
  void persistent_load() {
    const Value& pid = expect(pop(), Kind::Tuple, "a persistent id");
    if (pid.items.empty()) fail("empty persistent id");
    const Value& tag = at(pid.items[0]);
    if (tag.kind != Kind::String || tag.text != "storage")
      fail(str("unsupported persistent id ", tag.kind == Kind::String ? "'" + tag.text + "'" : "", ": ",
               kOnlyStateDicts));
    const std::size_t n = pid.items.size();
    if (n != 5 && n != 6) fail(str("a storage's persistent id has ", n, " fields, expected 5 or 6"));
    const Value& type = expect(pid.items[1], Kind::Global, "a storage's type");
    if (type.callable != Callable::StorageClass) fail(str("'", type.text, "' is not a storage type"));
    StorageRef s;
    s.type = type.storage_type;
    s.key = expect(pid.items[2], Kind::String, "a storage's key").text;
    s.location = expect(pid.items[3], Kind::String, "a storage's location").text;
    s.numel = expect_int(pid.items[4], "a storage's size", 0);
    if (s.numel > std::numeric_limits<std::int64_t>::max() / 8)
      fail(str("storage size ", s.numel, " is absurd"));
    if (n == 6 && at(pid.items[5]).kind != Kind::None) {
      const Value& view = expect(pid.items[5], Kind::Tuple, "a storage's view metadata");
      if (view.items.size() != 3) fail("a storage's view metadata should be (key, offset, size)");
      expect(view.items[0], Kind::String, "a storage view's key");
      s.view_offset = expect_int(view.items[1], "a storage view's offset", 0);
      s.view_numel = expect_int(view.items[2], "a storage view's size", 0);
      if (s.view_offset > s.numel || s.view_numel > s.numel - s.view_offset)
        fail(str("storage view [", s.view_offset, ", +", s.view_numel, ") lies outside storage '", s.key,
                 "' of ", s.numel, " elements"));
    }
    Value v = scalar(Kind::Storage, static_cast<std::int64_t>(doc_.storages.size()));
    doc_.storages.push_back(std::move(s));
    push_new(std::move(v));
  }

  void append_to_list(std::vector<Ref> items) {
    Value& list = at(top());
    if (list.kind != Kind::List) fail(str("APPEND to ", describe(list.kind)));
    count_items(items.size());
    list.items.insert(list.items.end(), items.begin(), items.end());
  }
  void set_items(std::vector<Ref> items) {
    Value& dict = at(top());
    if (dict.kind != Kind::Dict) fail(str("SETITEM on ", describe(dict.kind)));
    if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
    count_items(items.size());
    dict.items.insert(dict.items.end(), items.begin(), items.end());
  }

  void step(std::uint8_t op) {
    switch (op) {
      case PROTO: {
        const int protocol = read_le<std::uint8_t>("PROTO");
        if (protocol > kMaxProtocol) fail(str("unsupported pickle protocol ", protocol));
        return;
      }
      case FRAME: {  // protocol 4's framing only groups opcodes; the frame must lie within the input
        const std::uint64_t n = read_le<std::uint64_t>("FRAME");
        if (n > remaining()) fail_truncated(str("a frame of ", n, " bytes, ", remaining(), " remain"));
        return;
      }
      case MARK:
        if (marks_.size() >= kMaxMarks) fail(str("more than ", kMaxMarks, " nested MARKs: refusing"));
        marks_.push_back(stack_.size());
        return;
      case NONE:
        return push_new(scalar(Kind::None));
      case NEWTRUE:
        return push_new(scalar(Kind::Bool, 1));
      case NEWFALSE:
        return push_new(scalar(Kind::Bool, 0));
      case BININT:
        return push_new(scalar(Kind::Int, static_cast<std::int32_t>(read_le<std::uint32_t>("BININT"))));
      case BININT1:
        return push_new(scalar(Kind::Int, read_le<std::uint8_t>("BININT1")));
      case BININT2:
        return push_new(scalar(Kind::Int, read_le<std::uint16_t>("BININT2")));
      case LONG1: {
        const std::size_t n = read_le<std::uint8_t>("LONG1");
        if (n > kMaxIntegerBytes) fail(str("an integer of ", n, " bytes: refusing"));
        return push_new(integer(take(n, "LONG1"), n));
      }
      case LONG4: {
        const std::uint32_t n = read_le<std::uint32_t>("LONG4");
        if (n > kMaxIntegerBytes) fail(str("an integer of ", n, " bytes: refusing"));
        return push_new(integer(take(n, "LONG4"), n));
      }
      case BINFLOAT: {  // the one big-endian field in pickle
        const std::uint8_t* p = take(8, "BINFLOAT");
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        Value v = scalar(Kind::Float);
        v.real = std::bit_cast<double>(bits);
        return push_new(std::move(v));
      }
      case SHORT_BINUNICODE:
        return push_new(text(Kind::String, read_text(read_le<std::uint8_t>("SHORT_BINUNICODE"), "a string")));
      case BINUNICODE:
        return push_new(text(Kind::String, read_text(read_le<std::uint32_t>("BINUNICODE"), "a string")));
      case BINUNICODE8:
        return push_new(text(Kind::String, read_text(read_le<std::uint64_t>("BINUNICODE8"), "a string")));
      case SHORT_BINSTRING:  // Python 2 str; torch reads them as text
        return push_new(text(Kind::String, read_text(read_le<std::uint8_t>("SHORT_BINSTRING"), "a string")));
      case BINSTRING: {
        const auto n = static_cast<std::int32_t>(read_le<std::uint32_t>("BINSTRING"));
        if (n < 0) fail("BINSTRING with a negative length");
        return push_new(text(Kind::String, read_text(static_cast<std::uint64_t>(n), "a string")));
      }
      case SHORT_BINBYTES:
        return push_new(text(Kind::Bytes, read_text(read_le<std::uint8_t>("SHORT_BINBYTES"), "bytes")));
      case BINBYTES:
        return push_new(text(Kind::Bytes, read_text(read_le<std::uint32_t>("BINBYTES"), "bytes")));
      case BINBYTES8:
        return push_new(text(Kind::Bytes, read_text(read_le<std::uint64_t>("BINBYTES8"), "bytes")));
      case EMPTY_TUPLE:
        return push_new(container(Kind::Tuple, {}));
      case EMPTY_LIST:
        return push_new(container(Kind::List, {}));
      case EMPTY_DICT:
        return push_new(container(Kind::Dict, {}));
      case TUPLE:
        return push_new(container(Kind::Tuple, pop_mark()));
      case TUPLE1:
      case TUPLE2:
      case TUPLE3:
        return push_new(container(Kind::Tuple, pop_n(op - TUPLE1 + 1u)));
      case LIST:
        return push_new(container(Kind::List, pop_mark()));
      case DICT: {
        std::vector<Ref> items = pop_mark();
        if (items.size() % 2 != 0) fail("DICT with an odd number of items");
        return push_new(container(Kind::Dict, std::move(items)));
      }
      case APPEND:
        return append_to_list(pop_n(1));
      case APPENDS:
        return append_to_list(pop_mark());
      case SETITEM:
        return set_items(pop_n(2));
      case SETITEMS:
        return set_items(pop_mark());
      case BINPUT:
        return memo_put(read_le<std::uint8_t>("BINPUT"));
      case LONG_BINPUT:
        return memo_put(read_le<std::uint32_t>("LONG_BINPUT"));
      case MEMOIZE:
        return memo_put(memo_.size());
      case BINGET:
        return memo_get(read_le<std::uint8_t>("BINGET"));
      case LONG_BINGET:
        return memo_get(read_le<std::uint32_t>("LONG_BINGET"));
      case GLOBAL: {
        const std::string module = read_line("GLOBAL's module");
        const std::string name = read_line("GLOBAL's name");
        return push_global(module, name);
      }
      case STACK_GLOBAL: {
        const Ref name = pop();
        const Ref module = pop();
        const std::string module_text = expect(module, Kind::String, "STACK_GLOBAL's module").text;
        const std::string name_text = expect(name, Kind::String, "STACK_GLOBAL's name").text;
        return push_global(module_text, name_text);
      }
      case REDUCE:
        return reduce();
      case BUILD: {
        // Sets an object's state. On an OrderedDict it is the state dict's `_metadata` (versions of modules),
        // on a tensor nothing torch writes for a state dict: tl needs neither.
        const Kind state = at(pop()).kind;
        const Kind target = at(top()).kind;
        if (target != Kind::Dict && target != Kind::Tensor) fail(str("BUILD on ", describe(target)));
        if (state != Kind::Dict && state != Kind::None)
          fail(str("BUILD with ", describe(state), " as state"));
        return;
      }
      case BINPERSID:
        return persistent_load();
      default:
        fail(str("unsupported pickle opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15],
                 " ('", op >= 0x20 && op < 0x7f ? std::string(1, static_cast<char>(op)) : std::string("?"),
                 "'): ", kOnlyStateDicts));
    }
  }

  std::span<const std::uint8_t> in_;
  const std::string& source_;
  std::size_t base_;
  std::size_t pos_ = 0;
  std::size_t op_at_ = 0;  // where the current opcode starts, for messages
  Document doc_;
  std::vector<Ref> stack_;
  std::vector<std::size_t> marks_;  // stack sizes at each MARK
  std::unordered_map<std::uint64_t, Ref> memo_;
  std::size_t items_ = 0;
};

}  // namespace

std::size_t element_size(StorageType type) {
  switch (type) {
    case StorageType::Double:
    case StorageType::Long:
      return 8;
    case StorageType::Float:
    case StorageType::Int:
      return 4;
    case StorageType::Half:
    case StorageType::BFloat16:
    case StorageType::Short:
      return 2;
    case StorageType::Char:
    case StorageType::Byte:
    case StorageType::Bool:
      return 1;
  }
  return 1;
}

const char* storage_type_name(StorageType type) {
  switch (type) {
    case StorageType::Float:
      return "torch.FloatStorage";
    case StorageType::Double:
      return "torch.DoubleStorage";
    case StorageType::Half:
      return "torch.HalfStorage";
    case StorageType::BFloat16:
      return "torch.BFloat16Storage";
    case StorageType::Long:
      return "torch.LongStorage";
    case StorageType::Int:
      return "torch.IntStorage";
    case StorageType::Short:
      return "torch.ShortStorage";
    case StorageType::Char:
      return "torch.CharStorage";
    case StorageType::Byte:
      return "torch.ByteStorage";
    case StorageType::Bool:
      return "torch.BoolStorage";
  }
  return "?";
}

const char* describe(Kind kind) {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "a bool";
    case Kind::Int:
    case Kind::BigInt:
      return "an int";
    case Kind::Float:
      return "a float";
    case Kind::String:
      return "a str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "a tuple";
    case Kind::List:
      return "a list";
    case Kind::Dict:
      return "a dict";
    case Kind::Global:
      return "a class or function";
    case Kind::Storage:
      return "a storage";
    case Kind::Tensor:
      return "a tensor";
  }
  return "?";
}

Document unpickle(std::span<const std::uint8_t> bytes, const std::string& source, std::size_t base) {
  return Parser(bytes, source, base).run();
}

}  // namespace tl::weights::pickle
