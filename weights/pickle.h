// A restricted unpickler for what torch.save writes for a state dict, and nothing more. It never imports or
// calls anything: it turns one pickle into a flat arena of plain values (None, bool, int, float, str, bytes,
// tuple, list, dict) plus references to torch storages and tensors. A GLOBAL outside a short allowlist is
// refused the moment it is read, and REDUCE is evaluated only for the allowlisted rebuild functions, with
// arguments of the shapes torch writes. Every length, count and index is checked against the bytes present
// and against fixed limits, the parser is one loop (no recursion on input depth), and containers refer to
// each other by index, so a hostile or truncated file yields a tl::Error naming the file and the byte, never
// undefined behaviour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/shape.h"

namespace tl::weights::pickle {

// torch's typed storage classes (torch.FloatStorage, ...), which name a storage's element type.
enum class StorageType : std::uint8_t { Float, Double, Half, BFloat16, Long, Int, Short, Char, Byte, Bool };
std::size_t element_size(StorageType type);
const char* storage_type_name(StorageType type);  // "torch.FloatStorage"

enum class Kind : std::uint8_t {
  None,
  Bool,
  Int,
  BigInt,  // an integer beyond int64 (torch's legacy magic number is one)
  Float,
  String,
  Bytes,
  Tuple,
  List,
  Dict,
  Global,   // an allowlisted class or function, never called as such (see Callable)
  Storage,  // a persistent id naming a storage: Document::storages[Value::integer]
  Tensor,   // a rebuilt tensor: Document::tensors[Value::integer]
};
const char* describe(Kind kind);  // "a dict", "an int", "None", ... for messages

// What an allowlisted global is.
enum class Callable : std::uint8_t {
  OrderedDict,
  RebuildTensorV2,
  RebuildTensor,
  RebuildParameter,
  StorageClass
};

using Ref = std::uint32_t;  // index into Document::values

struct Value {
  Kind kind = Kind::None;
  Callable callable = Callable::OrderedDict;      // Global
  StorageType storage_type = StorageType::Float;  // Global with callable StorageClass
  std::int64_t integer = 0;  // Int; Bool (0 or 1); Storage and Tensor: index into their Document vector
  double real = 0;           // Float
  std::string text;          // String (UTF-8 as written), Bytes, BigInt (two's complement, little-endian),
                             // Global ("module.name")
  std::vector<Ref> items;    // Tuple and List elements; Dict keys and values alternating, in insertion order
};

// The persistent id ('storage', StorageType, key, location, numel[, view_metadata]) of one storage.
struct StorageRef {
  StorageType type = StorageType::Float;
  std::string key;         // the record name in a zip file, the key in the legacy storage list
  std::string location;    // "cpu", "cuda:0": where it lived when saved; tl reads it to the CPU regardless
  std::int64_t numel = 0;  // elements of the whole storage `key`
  // Legacy files from old torch versions may name a view of the storage: elements [view_offset, view_offset +
  // view_numel) of `key`. view_numel < 0: the whole storage.
  std::int64_t view_offset = 0;
  std::int64_t view_numel = -1;
};

// torch._utils._rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...), not yet checked against the
// storage's size (the container knows the bytes present).
struct TensorRef {
  std::size_t storage = 0;  // index into Document::storages
  std::int64_t offset = 0;  // in elements of the storage (or of its view)
  Shape shape;
  Strides strides;
};

struct Document {
  std::vector<Value> values;
  std::vector<StorageRef> storages;  // one per persistent id, in the order read (keys may repeat)
  std::vector<TensorRef> tensors;
  Ref root = 0;          // the value STOP returned
  std::size_t size = 0;  // bytes of the pickle, through its STOP opcode

  const Value& operator[](Ref ref) const { return values[ref]; }
};

// Parses the pickle at the start of `bytes`, up to its STOP opcode (bytes after it are left alone: the legacy
// format is a sequence of pickles). `source` names the file in messages ("model.pth" or "model.pth (archive/
// data.pkl)"); `base` is the position of bytes[0] in that file, so the byte positions reported are the
// file's. Throws tl::Error on anything outside the restricted vocabulary, on truncation, and past the limits.
Document unpickle(std::span<const std::uint8_t> bytes, const std::string& source, std::size_t base = 0);

}  // namespace tl::weights::pickle
