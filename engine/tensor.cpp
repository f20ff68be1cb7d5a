#include "engine/tensor.h"

#include <cmath>
#include <cstring>
#include <numeric>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/functional.h"
#include "engine/random.h"
#include "kernels/cuda/device.h"
#include "kernels/ops.h"

namespace tl {
namespace {

kernels::Context context_for(const Tensor& t) {
  return kernels::Context::current(t.device());
}

std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> storage, std::int64_t offset, Shape shape,
                                      Strides strides, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->offset = offset;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = dtype;
  return impl;
}

// A new tensor sharing `base`'s storage with other metadata: every view goes through here.
Tensor make_view(const Tensor& base, Shape shape, Strides strides, std::int64_t offset) {
  return Tensor(make_impl(base.storage(), offset, std::move(shape), std::move(strides), base.dtype()));
}

void check_inplace_allowed(const Tensor& t, const char* op) {
  TL_CHECK(!(GradMode::is_enabled() && t.requires_grad()), Error, op,
           ": in-place change of a tensor that requires grad (", t.description(),
           "); do it under NoGradGuard (as optimizers do) or on a detach()ed tensor");
}

void check_cpu(const Tensor& t, const char* op) {
  TL_CHECK(t.device().is_cpu(), DeviceError, op, ": needs a cpu tensor, got one on ", t.device().str(),
           " (copy it with .to(Device::cpu()) first)");
}

// Copies the bytes of `src` into `dst`: same shape and dtype, both contiguous, on any two devices.
void copy_bytes_between_devices(const Tensor& dst, const Tensor& src) {
  const std::size_t nbytes = static_cast<std::size_t>(src.numel()) * dtype_size(src.dtype());
  const Device from = src.device(), to = dst.device();
  if (from.is_cpu() && to.is_cpu()) {
    if (nbytes) std::memcpy(dst.raw_data(), src.raw_data(), nbytes);
  } else if (from.is_cpu()) {
    cuda::copy_host_to_device(to.index, dst.raw_data(), src.raw_data(), nbytes);
  } else if (to.is_cpu()) {
    cuda::copy_device_to_host(from.index, dst.raw_data(), src.raw_data(), nbytes);
  } else {
    cuda::copy_device_to_device(to.index, dst.raw_data(), from.index, src.raw_data(), nbytes);
  }
}

// Reads element i (row-major over the view) of any dtype as a double.
template <typename T>
std::vector<T> gather_as(const Tensor& t) {
  const Tensor dense = t.contiguous();
  std::vector<T> out(static_cast<std::size_t>(dense.numel()));
  kernels::cast(context_for(dense), dense.numel(), dense.dtype(), dense.raw_data(), dtype_of<T>(),
                out.data());
  return out;
}

Shape infer_shape(const Shape& requested, std::int64_t numel, const Shape& from) {
  Shape shape = requested;
  std::int64_t known = 1, infer_at = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TL_CHECK(infer_at < 0, ShapeError, "reshape: more than one -1 in ", shape_str(requested));
      infer_at = static_cast<std::int64_t>(i);
    } else {
      TL_CHECK(shape[i] >= 0, ShapeError, "reshape: negative size in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    TL_CHECK(known > 0 && numel % known == 0, ShapeError, "reshape: cannot view ", shape_str(from), " as ",
             shape_str(requested));
    shape[infer_at] = numel / known;
  }
  TL_CHECK(shape_numel(shape) == numel, ShapeError, "reshape: cannot view ", shape_str(from), " (", numel,
           " elements) as ", shape_str(requested));
  return shape;
}

}  // namespace

// ---- metadata ---------------------------------------------------------------------------------------------

TensorImpl& Tensor::impl() const {
  TL_CHECK(impl_ != nullptr, Error, "operation on an undefined tensor");
  return *impl_;
}

std::int64_t Tensor::size(std::int64_t d) const {
  return shape()[normalize_dim(d, dim(), "size", shape())];
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] == 1) continue;  // the stride of a size-1 dimension never matters
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

std::string Tensor::description() const {
  if (!defined()) return "undefined tensor";
  return str(dtype_name(dtype()), shape_str(shape()), " ", device().str());
}

template <typename T>
T* Tensor::data() const {
  TL_CHECK(dtype() == dtype_of<T>(), DTypeError, "data<", dtype_name(dtype_of<T>()), ">() on a ",
           description(), " tensor");
  check_cpu(*this, "data");
  return static_cast<T*>(storage()->data()) + offset();
}

void* Tensor::raw_data() const {
  return static_cast<unsigned char*>(storage()->data()) +
         offset() * static_cast<std::int64_t>(dtype_size(dtype()));
}

template <typename T>
T* Tensor::device_data() const {
  TL_CHECK(dtype() == dtype_of<T>(), DTypeError, "device_data<", dtype_name(dtype_of<T>()), ">() on a ",
           description(), " tensor");
  return static_cast<T*>(storage()->data()) + offset();
}

template <typename T>
T Tensor::item() const {
  TL_CHECK(numel() == 1, ShapeError, "item: needs a one-element tensor, got ", description());
  return gather_as<T>(device().is_cpu() ? *this : detach().to(Device::cpu()))[0];
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  return gather_as<T>(device().is_cpu() ? *this : detach().to(Device::cpu()));
}

template float* Tensor::device_data<float>() const;
template double* Tensor::device_data<double>() const;
template std::int64_t* Tensor::device_data<std::int64_t>() const;
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template std::int64_t Tensor::item<std::int64_t>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;

// ---- views ------------------------------------------------------------------------------------------------

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape_out = infer_shape(requested, numel(), shape());
  TL_CHECK(is_contiguous(), ShapeError, "view: a ", description(), " tensor with strides ",
           shape_str(strides()), " is not contiguous; use reshape(), which copies");
  const Shape in_shape = shape();
  return record("view", make_view(*this, shape_out, contiguous_strides(shape_out), offset()), {*this},
                [in_shape](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{g.reshape(in_shape)};
                });
}

Tensor Tensor::reshape(const Shape& requested) const {
  if (is_contiguous()) return view(requested);
  return contiguous().view(requested);
}

Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const std::int64_t start = normalize_dim(start_dim, dim(), "flatten", shape());
  const std::int64_t end = normalize_dim(end_dim, dim(), "flatten", shape());
  TL_CHECK(start <= end, ShapeError, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim, " for ",
           shape_str(shape()));
  Shape out(shape().begin(), shape().begin() + start);
  std::int64_t merged = 1;
  for (std::int64_t d = start; d <= end; ++d) merged *= shape()[d];
  out.push_back(merged);
  out.insert(out.end(), shape().begin() + end + 1, shape().end());
  return reshape(out);
}

Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const {
  TL_CHECK(static_cast<std::int64_t>(dims.size()) == dim(), ShapeError, "permute: ", dims.size(),
           " dimensions given for a tensor of shape ", shape_str(shape()));
  std::vector<std::int64_t> order(dims.size()), inverse(dims.size());
  std::vector<bool> used(dims.size(), false);
  Shape out_shape(dims.size());
  Strides out_strides(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = normalize_dim(dims[i], dim(), "permute", shape());
    TL_CHECK(!used[d], ShapeError, "permute: dimension ", dims[i], " appears twice in ", shape_str(dims));
    used[d] = true;
    order[i] = d;
    inverse[d] = static_cast<std::int64_t>(i);
    out_shape[i] = shape()[d];
    out_strides[i] = strides()[d];
  }
  return record("permute", make_view(*this, out_shape, out_strides, offset()), {*this},
                [inverse](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{g.permute(inverse)};
                });
}

Tensor Tensor::transpose(std::int64_t dim0, std::int64_t dim1) const {
  std::vector<std::int64_t> order(static_cast<std::size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[normalize_dim(dim0, dim(), "transpose", shape())],
            order[normalize_dim(dim1, dim(), "transpose", shape())]);
  return permute(order);
}

Tensor Tensor::narrow(std::int64_t dim_in, std::int64_t start, std::int64_t length) const {
  const std::int64_t d = normalize_dim(dim_in, dim(), "narrow", shape());
  TL_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], ShapeError, "narrow: [", start, ", ",
           start + length, ") is outside dimension ", dim_in, " of size ", shape()[d], " in ",
           shape_str(shape()));
  Shape out_shape = shape();
  out_shape[d] = length;
  const Shape in_shape = shape();
  const DType type = dtype();
  return record("narrow", make_view(*this, out_shape, strides(), offset() + start * strides()[d]), {*this},
                [in_shape, type, d, start, length](const Tensor& g, const std::vector<bool>&) {
                  Tensor grad = zeros(in_shape, type, g.device());
                  grad.narrow(d, start, length).copy_(g);
                  return std::vector<Tensor>{grad};
                });
}

Tensor Tensor::unsqueeze(std::int64_t dim_in) const {
  const std::int64_t d = normalize_dim(dim_in, dim() + 1, "unsqueeze", shape());
  Shape out_shape = shape();
  Strides out_strides = strides();
  out_shape.insert(out_shape.begin() + d, 1);
  out_strides.insert(out_strides.begin() + d, d < dim() ? strides()[d] * shape()[d] : 1);
  const Shape in_shape = shape();
  return record("unsqueeze", make_view(*this, out_shape, out_strides, offset()), {*this},
                [in_shape](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{g.reshape(in_shape)};
                });
}

Tensor Tensor::squeeze(std::int64_t dim_in) const {
  const std::int64_t d = normalize_dim(dim_in, dim(), "squeeze", shape());
  TL_CHECK(shape()[d] == 1, ShapeError, "squeeze: dimension ", dim_in, " of ", shape_str(shape()),
           " has size ", shape()[d], ", not 1");
  Shape out_shape = shape();
  Strides out_strides = strides();
  out_shape.erase(out_shape.begin() + d);
  out_strides.erase(out_strides.begin() + d);
  const Shape in_shape = shape();
  return record("squeeze", make_view(*this, out_shape, out_strides, offset()), {*this},
                [in_shape](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{g.reshape(in_shape)};
                });
}

Tensor Tensor::expand(const Shape& target) const {
  TL_CHECK(static_cast<std::int64_t>(target.size()) == dim(), ShapeError, "expand: cannot expand ",
           shape_str(shape()), " to ", shape_str(target), " (different number of dimensions)");
  Strides out_strides = strides();
  std::vector<std::int64_t> expanded;
  for (std::int64_t d = 0; d < dim(); ++d) {
    if (shape()[d] == target[d]) continue;
    TL_CHECK(shape()[d] == 1, ShapeError, "expand: dimension ", d, " of ", shape_str(shape()), " has size ",
             shape()[d], " and cannot become ", target[d]);
    out_strides[d] = 0;
    expanded.push_back(d);
  }
  return record("expand", make_view(*this, target, out_strides, offset()), {*this},
                [expanded](const Tensor& g, const std::vector<bool>&) {
                  Tensor grad = g;
                  for (std::int64_t d : expanded) grad = sum(grad, d, /*keepdim=*/true);
                  return std::vector<Tensor>{grad};
                });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  kernels::copy_strided(context_for(*this), static_cast<std::int64_t>(dtype_size(dtype())), dim(),
                        shape().data(), strides().data(), raw_data(), out.strides().data(), out.raw_data());
  return record("clone", out, {*this},
                [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  const Tensor dense = contiguous();
  Tensor out = empty(shape(), target, device());
  kernels::cast(context_for(dense), numel(), dense.dtype(), dense.raw_data(), target, out.raw_data());
  if (!is_floating(target) || !is_floating(dtype())) return out;  // integers carry no gradient
  const DType source = dtype();
  return record("to", out, {*this}, [source](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.to(source)};
  });
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  if (target.is_cuda()) cuda::require_device(target.index, str("to(", target.str(), ")"));
  const Tensor dense = contiguous();
  Tensor out = empty(shape(), dtype(), target);
  copy_bytes_between_devices(out, dense);
  const Device source = device();
  return record("to", out, {*this}, [source](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.to(source)};
  });
}

// ---- in place ---------------------------------------------------------------------------------------------

const Tensor& Tensor::copy_(const Tensor& src) const {
  check_inplace_allowed(*this, "copy_");
  TL_CHECK(src.shape() == shape(), ShapeError, "copy_: source of shape ", shape_str(src.shape()),
           " into a tensor of shape ", shape_str(shape()));
  NoGradGuard no_grad;
  Tensor source = src.device() == device() ? src : src.to(device());
  if (source.dtype() != dtype()) source = source.to(dtype());
  kernels::copy_strided(context_for(*this), static_cast<std::int64_t>(dtype_size(dtype())), dim(),
                        shape().data(), source.strides().data(), source.raw_data(), strides().data(),
                        raw_data());
  return *this;
}

const Tensor& Tensor::fill_(double value) const {
  check_inplace_allowed(*this, "fill_");
  if (!is_contiguous()) return copy_(full(shape(), value, dtype(), device()));
  const auto ctx = context_for(*this);
  visit_dtype(dtype(),
              [&]<typename T>() { kernels::fill<T>(ctx, numel(), static_cast<T>(value), device_data<T>()); });
  return *this;
}

void Tensor::set_data(const Tensor& other) const {
  TL_CHECK(other.defined(), Error, "set_data: the new data is an undefined tensor");
  TL_CHECK(is_leaf(), Error, "set_data on a tensor produced by ", grad_fn()->name(),
           ": only leaves can change data");
  TensorImpl& mine = impl();
  const TensorImpl& theirs = *other.impl_shared();
  mine.storage = theirs.storage;
  mine.offset = theirs.offset;
  mine.shape = theirs.shape;
  mine.strides = theirs.strides;
  mine.dtype = theirs.dtype;
  zero_grad();  // a gradient of the old dtype or shape no longer fits
}

// ---- autograd ---------------------------------------------------------------------------------------------

AutogradMeta& Tensor::autograd_meta() const {
  if (!impl().autograd) impl().autograd = std::make_unique<AutogradMeta>();
  return *impl().autograd;
}

bool Tensor::requires_grad() const {
  return impl().autograd && impl().autograd->requires_grad;
}

bool Tensor::is_leaf() const {
  return !impl().autograd || !impl().autograd->grad_fn;
}

const Tensor& Tensor::set_requires_grad(bool wanted) const {
  TL_CHECK(is_leaf(), Error, "set_requires_grad on a tensor produced by ", grad_fn()->name(),
           ": only leaves can change it (detach() first)");
  TL_CHECK(!wanted || is_floating(dtype()), DTypeError, "set_requires_grad: a ", description(),
           " tensor cannot require grad (only float32 and float64 can)");
  autograd_meta().requires_grad = wanted;
  return *this;
}

Tensor Tensor::grad() const {
  if (!impl().autograd || !impl().autograd->grad) return Tensor();
  return *impl().autograd->grad;
}

void Tensor::set_grad(const Tensor& g) const {
  TL_CHECK(!g.defined() || g.shape() == shape(), ShapeError, "set_grad: gradient of shape ",
           shape_str(g.shape()), " for a tensor of shape ", shape_str(shape()));
  autograd_meta().grad = g.defined() ? std::make_shared<Tensor>(g) : nullptr;
}

void Tensor::zero_grad() const {
  if (impl().autograd) impl().autograd->grad.reset();
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl().autograd ? impl().autograd->grad_fn : none;
}

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  if (gradient.defined()) {
    run_backward(*this, gradient, retain_graph);
    return;
  }
  TL_CHECK(numel() == 1, ShapeError, "backward: a ", description(),
           " tensor needs an explicit gradient (only one-element losses get an implicit 1)");
  run_backward(*this, ones(shape(), dtype(), device()), retain_graph);
}

// ---- creation ---------------------------------------------------------------------------------------------

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (auto s : shape) TL_CHECK(s >= 0, ShapeError, "empty: negative size in shape ", shape_str(shape));
  const std::size_t bytes = static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype);
  return Tensor(
      make_impl(std::make_shared<Storage>(bytes, device), 0, shape, contiguous_strides(shape), dtype));
}

Tensor empty_pinned(const Shape& shape, DType dtype) {
  for (auto s : shape)
    TL_CHECK(s >= 0, ShapeError, "empty_pinned: negative size in shape ", shape_str(shape));
  const std::size_t bytes = static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(cuda::allocate_pinned(bytes), bytes, Device::cpu(),
                                           [](void* p) { cuda::free_pinned(p); });
  return Tensor(make_impl(std::move(storage), 0, shape, contiguous_strides(shape), dtype));
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}
Tensor ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor arange(double end, DType dtype) {
  return arange(0.0, end, 1.0, dtype);
}

Tensor arange(double start, double end, double step, DType dtype) {
  TL_CHECK(step != 0 && std::isfinite(start) && std::isfinite(end) && std::isfinite(step), ValueError,
           "arange: needs finite start/end and a non-zero step, got (", start, ", ", end, ", ", step, ")");
  const double count = std::ceil((end - start) / step);
  const std::int64_t n = count > 0 ? static_cast<std::int64_t>(count) : 0;
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[i] = start + static_cast<double>(i) * step;
  return tensor(values, {n}).to(dtype);
}

void fill_uniform_(const Tensor& t, double low, double high, Generator& generator) {
  TL_CHECK(low <= high, ValueError, "uniform: low ", low, " is above high ", high);
  check_inplace_allowed(t, "fill_uniform_");
  if (!t.is_contiguous()) {
    t.copy_(uniform(t.shape(), low, high, generator, t.dtype()));
    return;
  }
  const std::int64_t n = t.numel();
  visit_floating(t.dtype(), "uniform", [&]<typename T>() {
    const std::uint64_t draws_per_element = sizeof(T) == 4 ? 1 : 4;
    const std::uint64_t offset = generator.reserve(static_cast<std::uint64_t>(n) * draws_per_element);
    kernels::fill_uniform<T>(context_for(t), n, generator.seed(), offset, low, high, t.device_data<T>());
  });
}

void fill_normal_(const Tensor& t, double mean, double stddev, Generator& generator) {
  TL_CHECK(stddev >= 0, ValueError, "normal: negative standard deviation ", stddev);
  check_inplace_allowed(t, "fill_normal_");
  if (!t.is_contiguous()) {
    t.copy_(normal(t.shape(), mean, stddev, generator, t.dtype()));
    return;
  }
  const std::int64_t n = t.numel();
  visit_floating(t.dtype(), "normal", [&]<typename T>() {
    const std::uint64_t offset = generator.reserve(static_cast<std::uint64_t>(n));
    kernels::fill_normal<T>(context_for(t), n, generator.seed(), offset, mean, stddev, t.device_data<T>());
  });
}

Tensor uniform(const Shape& shape, double low, double high, Generator& generator, DType dtype) {
  Tensor t = empty(shape, dtype);
  fill_uniform_(t, low, high, generator);
  return t;
}

Tensor normal(const Shape& shape, double mean, double stddev, Generator& generator, DType dtype) {
  Tensor t = empty(shape, dtype);
  fill_normal_(t, mean, stddev, generator);
  return t;
}

Tensor from_buffer(const void* data, const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  // An empty tensor may come from an empty vector, whose data() is null: memcpy must not see it (UBSan).
  if (t.numel() > 0) std::memcpy(t.raw_data(), data, static_cast<std::size_t>(t.numel()) * dtype_size(dtype));
  return t;
}

namespace {
template <typename T>
Tensor tensor_from_values(const std::vector<T>& values, const Shape& shape) {
  TL_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape), ShapeError,
           "tensor: ", values.size(), " values for shape ", shape_str(shape));
  return from_buffer(values.data(), shape, dtype_of<T>());
}
}  // namespace

Tensor tensor(const std::vector<float>& values, const Shape& shape) {
  return tensor_from_values(values, shape);
}
Tensor tensor(const std::vector<double>& values, const Shape& shape) {
  return tensor_from_values(values, shape);
}
Tensor tensor(const std::vector<std::int64_t>& values, const Shape& shape) {
  return tensor_from_values(values, shape);
}

}  // namespace tl
