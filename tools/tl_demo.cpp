// tl_demo: the engine end to end on data any machine has. Builds a small conv net (conv-BN-ReLU, max-pool,
// conv-BN-ReLU, global average pool, linear), trains it with SGD + momentum for a few steps on generated
// images (bars: horizontal, vertical or diagonal, under noise) and prints the falling loss and the accuracy
// on held-out images. Until the trainer lands (tl_train), this is the project's main job.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/functional.h"
#include "engine/random.h"
#include "kernels/policy.h"

namespace {

using namespace tl;

constexpr std::int64_t kClasses = 3, kSize = 16;

// A batch of noisy bar images, one channel, and their labels.
struct Batch {
  Tensor images, labels;
};

Batch make_batch(std::int64_t n, Generator& generator) {
  const Tensor noise = normal({n, 1, kSize, kSize}, 0.0, 0.3, generator);
  const auto picks = uniform({n, 2}, 0.0, 1.0, generator, DType::Float64).to_vector<double>();
  float* px = noise.data<float>();
  std::vector<std::int64_t> labels(n);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t label = static_cast<std::int64_t>(picks[2 * i] * kClasses);
    const std::int64_t at = 2 + static_cast<std::int64_t>(picks[2 * i + 1] * (kSize - 4));
    labels[i] = label;
    for (std::int64_t k = 0; k < kSize; ++k) {
      const std::int64_t h = label == 0 ? at : k, w = label == 1 ? at : (label == 0 ? k : (k + at) % kSize);
      px[(i * kSize + h) * kSize + w] += 1.0f;
    }
  }
  return {noise, tensor(labels, {n})};
}

struct ConvBlock {
  Tensor weight, gamma, beta, running_mean, running_var;
};

struct Net {
  ConvBlock block1, block2;
  Tensor fc_weight, fc_bias;

  std::vector<Tensor> parameters() const {
    return {block1.weight, block1.gamma, block1.beta, block2.weight,
            block2.gamma,  block2.beta,  fc_weight,   fc_bias};
  }
};

ConvBlock make_block(std::int64_t in, std::int64_t out, Generator& g) {
  // Kaiming-uniform bound for a ReLU network: sqrt(6 / fan_in).
  const double bound = std::sqrt(6.0 / static_cast<double>(in * 9));
  ConvBlock b{uniform({out, in, 3, 3}, -bound, bound, g), ones({out}), zeros({out}), zeros({out}),
              ones({out})};
  for (const Tensor& t : {b.weight, b.gamma, b.beta}) t.set_requires_grad(true);
  return b;
}

Tensor forward_block(const ConvBlock& b, const Tensor& x, bool training) {
  Conv2dOptions o;
  o.padding = Padding2d::same_all(1);
  return relu(batch_norm2d(conv2d(x, b.weight, Tensor(), o), b.gamma, b.beta, b.running_mean, b.running_var,
                           training));
}

Tensor forward(const Net& net, const Tensor& x, bool training) {
  Pool2dOptions pool;
  pool.kernel_h = pool.kernel_w = 2;
  Tensor h = max_pool2d(forward_block(net.block1, x, training), pool);
  h = adaptive_avg_pool2d(forward_block(net.block2, h, training), 1, 1).flatten(1);
  return linear(h, net.fc_weight, net.fc_bias);
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  const auto z = logits.to_vector<float>();
  const auto y = labels.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < kClasses; ++c)
      if (z[i * kClasses + c] > z[i * kClasses + best]) best = c;
    correct += best == y[i];
  }
  return static_cast<double>(correct) / static_cast<double>(y.size());
}

int run(int steps) {
  Generator generator(0);
  Net net{make_block(1, 8, generator), make_block(8, 16, generator), {}, {}};
  const double fc_bound = 1.0 / std::sqrt(16.0);
  net.fc_weight = uniform({kClasses, 16}, -fc_bound, fc_bound, generator).set_requires_grad(true);
  net.fc_bias = zeros({kClasses}).set_requires_grad(true);

  const std::vector<Tensor> params = net.parameters();
  std::vector<Tensor> velocity;
  for (const Tensor& p : params) velocity.push_back(zeros(p.shape()));
  const double lr = 0.05, momentum = 0.9;

  const Batch held_out = make_batch(256, generator);
  std::printf(
      "tl_demo: conv-BN-ReLU x2 + linear, %lld classes of %lldx%lld bar images, SGD lr %.2f momentum %.1f, "
      "kernels %s\n",
      static_cast<long long>(kClasses), static_cast<long long>(kSize), static_cast<long long>(kSize), lr,
      momentum, kernels::policy_name(kernels::current_policy()));
  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= steps; ++step) {
    const Batch batch = make_batch(32, generator);
    const Tensor loss = cross_entropy(forward(net, batch.images, /*training=*/true), batch.labels);
    for (const Tensor& p : params) p.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;  // v = momentum * v + g; p -= lr * v
      for (std::size_t i = 0; i < params.size(); ++i) {
        mul_(velocity[i], momentum);
        add_(velocity[i], params[i].grad());
        add_(params[i], velocity[i], -lr);
      }
    }
    if (step == 1 || step % 10 == 0 || step == steps)
      std::printf("step %3d  loss %.4f\n", step, loss.item<float>());
  }
  NoGradGuard no_grad;
  const double acc = accuracy(forward(net, held_out.images, /*training=*/false), held_out.labels);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("held-out accuracy %.1f%% on %lld images (chance %.1f%%), %.1f s\n", 100 * acc,
              static_cast<long long>(held_out.labels.numel()), 100.0 / kClasses, seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 60;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: tl_demo [--steps N]   (unknown argument '%s')\n", arg.c_str());
      return 2;
    }
  }
  if (steps < 1) {
    std::fprintf(stderr, "tl_demo: --steps must be at least 1, got %d\n", steps);
    return 2;
  }
  try {
    return run(steps);
  } catch (const tl::Error& e) {
    std::fprintf(stderr, "tl_demo: %s\n", e.what());
    return 1;
  }
}
