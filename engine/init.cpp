#include "engine/init.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/random.h"

namespace tl {
namespace {

std::int64_t receptive_field(const Tensor& w) {
  std::int64_t r = 1;
  for (std::int64_t d = 2; d < w.dim(); ++d) r *= w.size(d);
  return r;
}

}  // namespace

std::int64_t fan_in(const Tensor& weight) {
  TL_CHECK(weight.dim() >= 2, ShapeError, "fan_in: needs a weight of 2 or more dimensions, got ",
           weight.description());
  return weight.size(1) * receptive_field(weight);
}

std::int64_t fan_out(const Tensor& weight) {
  TL_CHECK(weight.dim() >= 2, ShapeError, "fan_out: needs a weight of 2 or more dimensions, got ",
           weight.description());
  return weight.size(0) * receptive_field(weight);
}

void init_uniform(const Tensor& t, double low, double high, Generator& generator) {
  NoGradGuard no_grad;
  fill_uniform_(t, low, high, generator);
}

void init_normal(const Tensor& t, double mean, double stddev, Generator& generator) {
  NoGradGuard no_grad;
  fill_normal_(t, mean, stddev, generator);
}

void init_constant(const Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
}

void init_kaiming_normal_fan_out(const Tensor& weight, Generator& generator) {
  init_normal(weight, 0.0, std::sqrt(2.0 / static_cast<double>(fan_out(weight))), generator);
}

void init_default_uniform(const Tensor& t, std::int64_t fan_in_value, Generator& generator) {
  const double bound = fan_in_value > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in_value)) : 0.0;
  init_uniform(t, -bound, bound, generator);
}

}  // namespace tl
