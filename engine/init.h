// In-place initialisers with PyTorch's formulas, drawing from a Generator (so a seed fixes every weight).
#pragma once

#include "engine/tensor.h"

namespace tl {

class Generator;

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (PyTorch's definition).
std::int64_t fan_in(const Tensor& weight);
std::int64_t fan_out(const Tensor& weight);

void init_uniform(const Tensor& t, double low, double high, Generator& generator);
void init_normal(const Tensor& t, double mean, double stddev, Generator& generator);
void init_constant(const Tensor& t, double value);
// N(0, sqrt(2 / fan_out)): torchvision's conv init for ResNet and MobileNet (kaiming_normal_, mode fan_out,
// relu).
void init_kaiming_normal_fan_out(const Tensor& weight, Generator& generator);
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Conv2d and Linear weights and biases
// (kaiming_uniform_ with a = sqrt(5)).
void init_default_uniform(const Tensor& t, std::int64_t fan_in, Generator& generator);

}  // namespace tl
