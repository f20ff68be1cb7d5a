// The layers the models are built from, with torchvision's parameter and buffer names (weight, bias,
// running_mean, running_var, num_batches_tracked) and PyTorch's default initialisation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/functional.h"
#include "engine/module.h"
#include "engine/random.h"

namespace tl {

class Conv2d : public Module {
 public:
  // weight [out, in / groups, kh, kw]; options carry stride, padding, dilation and groups.
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_h, std::int64_t kernel_w,
         const Conv2dOptions& options, bool bias, Generator& generator);
  Tensor forward(const Tensor& x) override;
  std::string extra_description() const override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias
  const Conv2dOptions& options() const { return options_; }

 private:
  Conv2dOptions options_;
  Tensor weight_, bias_;
};

// A square kernel with symmetric padding: the common case.
std::shared_ptr<Conv2d> make_conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel,
                                    std::int64_t stride, std::int64_t padding, std::int64_t groups, bool bias,
                                    Generator& generator);

// BatchNorm over channels. In training mode it normalises with batch statistics and updates the running ones
// — unless both its parameters are frozen: a frozen BatchNorm keeps normalising with its running statistics
// (the most common fine-tuning bug elsewhere), until set_train_when_frozen(true) asks for the other
// behaviour.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(std::int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  std::string extra_description() const override;

  // Whether forward uses (and updates) batch statistics right now.
  bool uses_batch_statistics() const;
  void set_train_when_frozen(bool on) { train_when_frozen_ = on; }
  bool train_when_frozen() const { return train_when_frozen_; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }

 private:
  double eps_, momentum_;
  bool train_when_frozen_ = false;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator);
  Tensor forward(const Tensor& x) override;
  std::string extra_description() const override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor weight_, bias_;
};

// ReLU, ReLU6, Hardswish, Hardsigmoid, Sigmoid, SiLU.
class Activation : public Module {
 public:
  enum class Kind { ReLU, ReLU6, Hardswish, Hardsigmoid, Sigmoid, SiLU };
  explicit Activation(Kind kind);
  Tensor forward(const Tensor& x) override;

 private:
  Kind kind_;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& options) : Module("MaxPool2d"), options_(options) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options_); }

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dOptions& options) : Module("AvgPool2d"), options_(options) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, options_); }

 private:
  Pool2dOptions options_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(std::int64_t out_h, std::int64_t out_w)
      : Module("AdaptiveAvgPool2d"), out_h_(out_h), out_w_(out_w) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_h_, out_w_); }

 private:
  std::int64_t out_h_, out_w_;
};

class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_dim = 1) : Module("Flatten"), start_dim_(start_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim_); }

 private:
  std::int64_t start_dim_;
};

// Dropout with its own seeded generator, so a run's masks are fixed by the seed and resumable from its state.
class Dropout : public Module {
 public:
  explicit Dropout(double p, std::uint64_t seed = 0);
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training(), generator_); }
  std::string extra_description() const override;
  Generator& generator() { return generator_; }
  double p() const { return p_; }

 private:
  double p_;
  Generator generator_;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// Children named "0", "1", ... run in order (torchvision's nn.Sequential naming).
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  std::size_t size() const { return named_children().size(); }
};

}  // namespace tl
