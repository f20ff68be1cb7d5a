// Whole-model CPU steps at batch 16, 224 x 224, float32, 10 classes (a transfer-learning head), the work the
// peer script bench/peers/pytorch_train_step.py times in PyTorch:
//   train_step/<model>/b16  train mode: forward, cross-entropy, backward, one SGD step (momentum 0.9)
//   eval/<model>/b16        eval mode, forward only, under NoGradGuard
// The counter images/s is a rate over wall-clock time (the kernels run on OpenMP threads). Each case runs two
// untimed steps first: they create the momentum buffers and fill the allocator's cache, so the timed steps
// are the steady state of a training run. The input and labels are fixed random values (the data pipeline has
// its own benchmark, bench_data). Results: bench/RESULTS.md, section "CPU training step".
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/optim/optimizer.h"
#include "engine/random.h"
#include "models/registry.h"

namespace {

constexpr std::int64_t kBatch = 16, kClasses = 10, kSize = 224;

tl::Tensor batch_input() {
  tl::Generator generator(1234);
  return tl::normal({kBatch, 3, kSize, kSize}, 0.0, 1.0, generator);
}

tl::Tensor batch_labels() {
  std::vector<std::int64_t> labels(kBatch);
  for (std::int64_t i = 0; i < kBatch; ++i) labels[i] = i % kClasses;
  return tl::tensor(labels, {kBatch});
}

void set_rate(benchmark::State& state) {
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(kBatch * state.iterations()), benchmark::Counter::kIsRate);
}

void train_step(benchmark::State& state, const std::string& arch) {
  const auto model = tl::models::create_model(arch, kClasses);
  model->train();
  tl::optim::ParamGroup group;
  group.name = "all";
  group.params = model->named_parameters();
  group.lr = group.initial_lr = 1e-3;  // small: a few hundred steps on one batch must stay finite
  tl::optim::SgdOptions options;
  options.momentum = 0.9;
  std::vector<tl::optim::ParamGroup> groups;
  groups.push_back(std::move(group));
  const auto optimizer = tl::optim::make_sgd(std::move(groups), options);
  const tl::Tensor x = batch_input(), labels = batch_labels();
  const auto step = [&] {
    optimizer->zero_grad();
    const tl::Tensor loss = tl::cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer->step();
    return loss;
  };
  for (int i = 0; i < 2; ++i) step();
  for (auto _ : state) benchmark::DoNotOptimize(step());
  set_rate(state);
}

void eval_forward(benchmark::State& state, const std::string& arch) {
  const auto model = tl::models::create_model(arch, kClasses);
  model->eval();
  const tl::Tensor x = batch_input();
  tl::NoGradGuard no_grad;
  for (int i = 0; i < 2; ++i) model->forward(x);
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x));
  set_rate(state);
}

void register_all() {
  for (const std::string arch : {"resnet18", "mobilenet_v2"}) {
    benchmark::RegisterBenchmark(("train_step/" + arch + "/b16").c_str(), train_step, arch)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(5.0);
    benchmark::RegisterBenchmark(("eval/" + arch + "/b16").c_str(), eval_forward, arch)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(3.0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
