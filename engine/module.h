// Module: a node of a network with named parameters, named buffers and named children. Full names join the
// path with dots, exactly as torchvision's state-dict keys ("layer4.1.conv2.weight",
// "features.3.conv.1.0.weight"), so a torchvision checkpoint maps one-to-one. Freezing works on those names
// with globs.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/state_dict.h"
#include "engine/tensor.h"

namespace tl {

// What load_state_dict found. Names are full dot-separated names; shapes are the model's and the file's.
struct LoadReport {
  struct Mismatch {
    std::string name;
    Shape expected, found;
  };
  std::vector<std::string> missing;     // in the model, absent from the state dict
  std::vector<std::string> unexpected;  // in the state dict, absent from the model
  std::vector<Mismatch> mismatched;     // in both, with different shapes (left untouched)
  std::size_t loaded = 0;

  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // One line per problem, "missing: fc.weight [10, 512]" and so on.
  std::string summary() const;
};

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }

  // "Conv2d", "BatchNorm2d", "Bottleneck", ...
  const std::string& type_name() const { return type_name_; }
  // One line of configuration for printing, e.g. "3, 64, kernel 7x7, stride 2" (empty when there is none).
  virtual std::string extra_description() const { return ""; }

  // ---- the tree -------------------------------------------------------------------------------------------
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // Every module below (and including) this one with its full path; this one has the path `prefix`.
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "") const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  // The module at a dot-separated path ("layer4.1", "" for this one); throws ValueError naming the path.
  Module& submodule(const std::string& path);
  // Swaps the child at a dot-separated path for another module (a new head: replace("fc", linear)).
  void replace(const std::string& path, std::shared_ptr<Module> module);

  // ---- modes ----------------------------------------------------------------------------------------------
  // Training mode for this module and all below it. BatchNorm layers whose parameters are all frozen still
  // normalise with their running statistics (see BatchNorm2d).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Converts every floating-point parameter and buffer to `dtype` in place (float64 for gradient checks);
  // integer buffers such as num_batches_tracked stay int64.
  void to(DType dtype);
  // Moves every parameter and floating-point buffer to `device` in place (the same tensors, which layers also
  // hold, get the new data). Integer buffers (num_batches_tracked) stay on the CPU, where they are counted.
  // Gradients are dropped (as when converting dtype).
  void to(Device device);
  // Where the parameters live (the CPU for a module without parameters).
  Device device() const;

  // ---- state ----------------------------------------------------------------------------------------------
  // Parameters and buffers by full name, sharing the module's tensors (no copy).
  StateDict state_dict() const;
  // Copies matching entries into the module's tensors (converting dtype). With strict, any missing,
  // unexpected or mismatched entry throws ValueError listing all of them and nothing is changed.
  LoadReport load_state_dict(const StateDict& state, bool strict = true);

  // ---- freezing -------------------------------------------------------------------------------------------
  // Turns requires_grad off / on for every parameter whose full name matches `pattern`: a glob where *
  // matches any run of characters (dots included) and ? one character; a plain module path also matches
  // everything under it ("layer4" = "layer4.*"). Returns how many parameters matched; throws ValueError when
  // none does.
  std::size_t freeze(const std::string& pattern);
  std::size_t unfreeze(const std::string& pattern);

  std::int64_t parameter_count(bool trainable_only = false) const;
  // The tree, one module per line, indented, with parameter shapes.
  std::string describe() const;

 protected:
  Tensor register_parameter(std::string name, Tensor value);  // requires grad
  Tensor register_buffer(std::string name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }

 private:
  void add_child(std::string name, std::shared_ptr<Module> module);
  std::size_t set_requires_grad_matching(const std::string& pattern, bool value, const char* verb);

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> parameters_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// Glob match for names: * any run of characters, ? exactly one.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace tl
