#include "models/model.h"

#include "engine/error.h"
#include "engine/layers.h"

namespace tl::models {

std::shared_ptr<Module> make_head(std::int64_t features, const HeadSpec& spec, Generator& generator) {
  TL_CHECK(spec.classes >= 0 && spec.hidden >= 0, ValueError,
           "head: classes and hidden width must not be negative, got ", spec.classes, " and ", spec.hidden);
  TL_CHECK(spec.dropout >= 0 && spec.dropout < 1, ValueError, "head: dropout must be in [0, 1), got ",
           spec.dropout);
  if (spec.classes == 0) return std::make_shared<Identity>();
  if (spec.hidden == 0) return std::make_shared<Linear>(features, spec.classes, true, generator);
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(features, spec.hidden, true, generator),
      std::make_shared<Activation>(Activation::Kind::ReLU),
      std::make_shared<Dropout>(spec.dropout, generator.seed()),
      std::make_shared<Linear>(spec.hidden, spec.classes, true, generator)});
}

Tensor Model::forward(const Tensor& x) {
  Tensor h = head_input(x);
  if (Dropout* dropout = pre_head_dropout()) h = dropout->forward(h);
  return head().forward(h);
}

void Model::replace_head(const HeadSpec& spec, Generator& generator) {
  replace(head_path_, make_head(num_features_, spec, generator));
  num_classes_ = spec.classes;
}

void Model::set_identity(std::string architecture, Preprocessing preprocessing, std::int64_t num_features,
                         std::int64_t num_classes, std::string head_path) {
  architecture_ = std::move(architecture);
  preprocessing_ = std::move(preprocessing);
  num_features_ = num_features;
  num_classes_ = num_classes;
  head_path_ = std::move(head_path);
}

}  // namespace tl::models
