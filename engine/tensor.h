// Tensor: a view (shape, strides, offset, dtype) onto shared Storage, plus the autograd state. A Tensor is a
// cheap handle: copies share the same tensor; views share storage but have their own metadata. Element access
// is for CPU tensors; everything else goes through the ops in engine/functional.h, which record autograd.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/shape.h"
#include "engine/storage.h"

namespace tl {

class Node;
class Tensor;

// What backward needs to know about a tensor. Only tensors that take part in autograd carry one.
struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Tensor> grad;   // accumulated gradient of a leaf; null until backward reaches it
  std::shared_ptr<Node> grad_fn;  // the op that produced this tensor; null for leaves
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;
  DType dtype = DType::Float32;
  std::unique_ptr<AutogradMeta> autograd;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: holds nothing; most calls on it throw
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }

  // ---- metadata -------------------------------------------------------------------------------------------
  const Shape& shape() const { return impl().shape; }
  std::int64_t dim() const { return static_cast<std::int64_t>(impl().shape.size()); }
  std::int64_t size(std::int64_t dim) const;  // negative counts from the end
  std::int64_t numel() const { return shape_numel(impl().shape); }
  const Strides& strides() const { return impl().strides; }
  std::int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // "float32[2, 3] cpu".
  std::string description() const;

  // ---- element access
  // --------------------------------------------------------------------------------------- The first
  // element, for the host to read or write; throws DTypeError unless T matches dtype() and DeviceError unless
  // on the CPU.
  template <typename T>
  T* data() const;
  // The first element on the tensor's own device, for a kernel (kernels/ops.h) to use; any device.
  template <typename T>
  T* device_data() const;
  void* raw_data() const;  // the first element, any device
  // The single value of a one-element tensor, converted to T (copied from the device if need be).
  template <typename T>
  T item() const;
  // All values in row-major order, converted to T (copied from the device if need be).
  template <typename T>
  std::vector<T> to_vector() const;

  // ---- views and copies (differentiable; see engine/functional.h for the rest) ----------------------------
  Tensor view(const Shape& shape) const;  // shares storage; needs compatible strides (contiguous)
  Tensor reshape(
      const Shape& shape) const;  // a view when possible, else a contiguous copy; one size may be -1
  Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor transpose(std::int64_t dim0, std::int64_t dim1) const;
  Tensor narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const;
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;
  // Repeats size-1 dimensions to the sizes given (stride 0, no copy); same number of dimensions.
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // a contiguous copy with its own storage
  Tensor to(DType dtype) const;
  // A copy on `device` (itself when already there); differentiable: the gradient goes back to this device.
  // Throws DeviceError naming the device when this build or machine has no such device.
  Tensor to(Device device) const;

  // ---- in-place (not recorded by autograd; refused on a tensor that requires grad while grad mode is on)
  const Tensor& copy_(const Tensor& src) const;  // same shape; converts dtype; src may be on another device
  const Tensor& fill_(double value) const;
  const Tensor& zero_() const { return fill_(0.0); }

  // Makes this tensor (and every handle to it) hold other's data, shape and dtype, keeping its autograd
  // state: how Module::to converts parameters that layers also hold (PyTorch's `param.data = ...`).
  void set_data(const Tensor& other) const;

  // ---- autograd -------------------------------------------------------------------------------------------
  bool requires_grad() const;
  // Only leaves (tensors no op produced) may change this; a non-leaf's flag follows its inputs.
  const Tensor& set_requires_grad(bool requires_grad) const;
  bool is_leaf() const;
  // The accumulated gradient; undefined until a backward pass reaches this tensor.
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;  // drops the gradient (the next backward allocates a fresh one)
  const std::shared_ptr<Node>& grad_fn() const;
  // The same data without history: a leaf that does not require grad.
  Tensor detach() const;
  // Backpropagates from this tensor. Without an explicit gradient the tensor must hold one element (a loss);
  // the graph's saved tensors are released afterwards unless retain_graph.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

  // ---- identity -------------------------------------------------------------------------------------------
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  TensorImpl* impl_ptr() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_shared() const { return impl_; }
  AutogradMeta& autograd_meta() const;  // creates it on first use

 private:
  TensorImpl& impl() const;
  std::shared_ptr<TensorImpl> impl_;
};

// ---- creation ---------------------------------------------------------------------------------------------

class Generator;

Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
// A CPU tensor in page-locked memory (uploads to a GPU run at full speed); needs the CUDA backend.
Tensor empty_pinned(const Shape& shape, DType dtype = DType::Float32);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
// 0, 1, ..., end - 1 and start, start + step, ... (< end for step > 0, > end for step < 0).
Tensor arange(double end, DType dtype = DType::Float32);
Tensor arange(double start, double end, double step, DType dtype = DType::Float32);
// Uniform in [low, high) and normal(mean, stddev), drawn from `generator` (which advances).
// The in-place forms fill an existing float tensor (parameter initialisation) without a temporary.
void fill_uniform_(const Tensor& t, double low, double high, Generator& generator);
void fill_normal_(const Tensor& t, double mean, double stddev, Generator& generator);
Tensor uniform(const Shape& shape, double low, double high, Generator& generator,
               DType dtype = DType::Float32);
Tensor normal(const Shape& shape, double mean, double stddev, Generator& generator,
              DType dtype = DType::Float32);
// Copies numel(shape) elements of `dtype` from host memory.
Tensor from_buffer(const void* data, const Shape& shape, DType dtype);
// Copies the values; the shape must hold exactly values.size() elements.
Tensor tensor(const std::vector<float>& values, const Shape& shape);
Tensor tensor(const std::vector<double>& values, const Shape& shape);
Tensor tensor(const std::vector<std::int64_t>& values, const Shape& shape);

}  // namespace tl
