// Constructors of every architecture, with torchvision's definitions and parameter names (mobilenet_v1
// follows keras.applications; its names are documented in models/README.md). Weights are initialised as
// torchvision does for that model, from `generator`. num_classes == 0 gives the pooled-feature extractor.
#pragma once

#include <memory>

#include "models/model.h"

namespace tl::models {

// depth 18, 34 (basic blocks) or 50, 101, 152 (bottlenecks, v1.5: the stride on the 3x3).
std::shared_ptr<Model> resnet(int depth, std::int64_t num_classes, Generator& generator);

// keras_layout: the keras.applications variant (stride-2 convs pad (0, 1) like Keras' ZeroPadding2D,
// BatchNorm eps 1e-3), registered as "mobilenet_v2_keras" and named like torchvision's, so Keras checkpoints
// import.
std::shared_ptr<Model> mobilenet_v2(std::int64_t num_classes, Generator& generator, double width_mult = 1.0,
                                    bool keras_layout = false);

// large == false gives mobilenet_v3_small.
std::shared_ptr<Model> mobilenet_v3(bool large, std::int64_t num_classes, Generator& generator);

// keras.applications.MobileNet with width multiplier alpha, Keras 'same' padding and BatchNorm eps 1e-3.
std::shared_ptr<Model> mobilenet_v1(double alpha, std::int64_t num_classes, Generator& generator);

}  // namespace tl::models
