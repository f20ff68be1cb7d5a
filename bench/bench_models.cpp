// Whole-model steps at 224 x 224, float32, 10 classes (a transfer-learning head), the work the peer scripts
// bench/peers/pytorch_train_step.py (CPU) and pytorch_cuda_train_step.py (GPU) time in PyTorch:
//   train_step/<model>/b16  CPU, train mode: forward, cross-entropy, backward, one SGD step (momentum 0.9)
//   eval/<model>/b16        CPU, eval mode, forward only, under NoGradGuard
//   cuda_train_step/<model>/b64/<policy>  the training step on cuda:0 (resnet50, mobilenet_v2), for the
//                           vendor (cuDNN/cuBLAS, auto) and native kernel paths; registered only when a GPU
//                           is there. Each step ends by reading the loss, which waits for the device.
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
#include "kernels/cuda/device.h"
#include "kernels/policy.h"
#include "models/registry.h"

namespace {

constexpr std::int64_t kBatch = 16, kCudaBatch = 64, kClasses = 10, kSize = 224;

tl::Tensor batch_input(std::int64_t batch) {
  tl::Generator generator(1234);
  return tl::normal({batch, 3, kSize, kSize}, 0.0, 1.0, generator);
}

tl::Tensor batch_labels(std::int64_t batch) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(batch));
  for (std::int64_t i = 0; i < batch; ++i) labels[static_cast<std::size_t>(i)] = i % kClasses;
  return tl::tensor(labels, {batch});
}

void set_rate(benchmark::State& state, std::int64_t batch) {
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

void train_step(benchmark::State& state, const std::string& arch, std::int64_t batch, tl::Device device,
                tl::kernels::Policy policy) {
  tl::kernels::PolicyGuard guard(policy);
  const auto model = tl::models::create_model(arch, kClasses);
  model->to(device);
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
  const tl::Tensor x = batch_input(batch).to(device), labels = batch_labels(batch).to(device);
  const auto step = [&] {
    optimizer->zero_grad();
    const tl::Tensor loss = tl::cross_entropy(model->forward(x), labels);
    loss.backward();
    optimizer->step();
    return loss.item<double>();  // on a GPU: waits for the step's kernels
  };
  for (int i = 0; i < 2; ++i) step();
  for (auto _ : state) benchmark::DoNotOptimize(step());
  set_rate(state, batch);
}

void eval_forward(benchmark::State& state, const std::string& arch) {
  const auto model = tl::models::create_model(arch, kClasses);
  model->eval();
  const tl::Tensor x = batch_input(kBatch);
  tl::NoGradGuard no_grad;
  for (int i = 0; i < 2; ++i) model->forward(x);
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x));
  set_rate(state, kBatch);
}

void register_all() {
  using tl::kernels::Policy;
  for (const std::string arch : {"resnet18", "mobilenet_v2"}) {
    benchmark::RegisterBenchmark(("train_step/" + arch + "/b16").c_str(), train_step, arch, kBatch,
                                 tl::Device::cpu(), tl::kernels::current_policy())
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(5.0);
    benchmark::RegisterBenchmark(("eval/" + arch + "/b16").c_str(), eval_forward, arch)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(3.0);
  }
  if (tl::cuda::device_count() == 0) return;
  for (const std::string arch : {"resnet50", "mobilenet_v2"})
    for (const Policy policy : {Policy::Auto, Policy::Native})
      benchmark::RegisterBenchmark(
          ("cuda_train_step/" + arch + "/b64/" + tl::kernels::policy_name(policy)).c_str(), train_step, arch,
          kCudaBatch, tl::Device::cuda(0), policy)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(3.0);
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
