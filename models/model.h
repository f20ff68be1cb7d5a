// Model: a classification network with a known head and its pretrained preprocessing. Every architecture in
// the registry is one: a backbone that ends in pooled features, then a head at a fixed path ("fc",
// "classifier.1", ...) that transfer learning replaces.
#pragma once

#include <memory>
#include <string>

#include "engine/layers.h"
#include "engine/module.h"
#include "engine/preprocessing.h"
#include "engine/random.h"

namespace tl::models {

// A new classifier: a Linear (hidden == 0) or an MLP Linear -> ReLU -> Dropout -> Linear (the seed's head).
// classes == 0 removes the head: the model returns its pooled features.
struct HeadSpec {
  std::int64_t classes = 1000;
  std::int64_t hidden = 0;
  double dropout = 0.0;
};

class Model : public Module {
 public:
  using Module::Module;

  // The architecture's registry name ("resnet50").
  const std::string& architecture() const { return architecture_; }
  const Preprocessing& preprocessing() const { return preprocessing_; }
  // Pretrained weights bring their own preprocessing (Keras MobileNets scale to [-1, 1], for instance).
  void set_preprocessing(const Preprocessing& preprocessing) { preprocessing_ = preprocessing; }
  // Width of the pooled features the head reads.
  std::int64_t num_features() const { return num_features_; }
  // Outputs of the head; 0 when the head was removed.
  std::int64_t num_classes() const { return num_classes_; }
  // Where the replaceable head sits ("fc", "classifier.1", "classifier.3", "conv_preds").
  const std::string& head_path() const { return head_path_; }

  // Replaces the head with a freshly initialised one (PyTorch's default Linear init, from `generator`).
  void replace_head(const HeadSpec& spec, Generator& generator);

  // forward(x) = head(pre_head_dropout(head_input(x))). The split lets a frozen backbone run once and its
  // features be cached: head_input is everything the head does not own, up to (not including) the dropout
  // right before the head, which is applied again at each training step.
  Tensor forward(const Tensor& x) final;
  virtual Tensor head_input(const Tensor& x) = 0;
  // The dropout between head_input and the head; null when there is none (ResNet).
  virtual Dropout* pre_head_dropout() { return nullptr; }
  Module& head() { return submodule(head_path_); }

 protected:
  void set_identity(std::string architecture, Preprocessing preprocessing, std::int64_t num_features,
                    std::int64_t num_classes, std::string head_path);

 private:
  std::string architecture_;
  Preprocessing preprocessing_;
  std::int64_t num_features_ = 0, num_classes_ = 0;
  std::string head_path_;
};

// The head a model starts with: Linear(features, classes), or Identity when classes == 0.
std::shared_ptr<Module> make_head(std::int64_t features, const HeadSpec& spec, Generator& generator);

}  // namespace tl::models
