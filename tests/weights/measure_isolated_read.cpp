// What the HDF5 sandbox costs (tests/fuzz/RESULTS.md, "The HDF5 sandbox"): loads one tl weight file (written first
// if absent: a 1000-class model of the architecture given) with and without the sandbox, and times each way
// over the same runs, interleaved. Wall time by default; CPU time (this process and its children) with --cpu.
//
//   build/tests/tl_measure_isolated_read /tmp/resnet50.h5 resnet50 11 [--cpu]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "models/registry.h"
#include "weights/importers.h"
#include "weights/pretrained.h"
#include "weights/sandbox.h"
#include "weights/weights_file.h"

namespace {

using namespace tl;

double cpu_ms() {
  double total = 0;
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    ::getrusage(who, &u);
    total += static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
             static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
  }
  return total;
}

double time_ms(bool cpu, const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_ms();
  f();
  if (cpu) return cpu_ms() - cpu_start;
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s FILE.h5 ARCHITECTURE RUNS [--cpu]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1], arch = argv[2];
  const int runs = std::max(1, std::atoi(argv[3]));
  const bool cpu = argc > 4 && std::strcmp(argv[4], "--cpu") == 0;
  try {
    if (!std::filesystem::exists(path)) {
      weights::Metadata m;
      m.architecture = arch;
      m.num_classes = 1000;
      weights::save_weights(path, models::create_model(arch, 1000)->state_dict(), m);
    }
    std::printf("%s: %.1f MB, %d runs, %s time\n", path.c_str(),
                static_cast<double>(std::filesystem::file_size(path)) / 1e6, runs, cpu ? "CPU" : "wall");
    const auto model = models::create_model(arch, 1000);
    struct Case {
      const char* what;
      std::function<void()> run;
      std::vector<double> ms;
    };
    std::vector<Case> cases = {
        {"load_weights_in_process", [&] { (void)weights::load_weights_in_process(path); }, {}},
        {"load_weights (sandboxed)", [&] { (void)weights::load_weights(path); }, {}},
        {"detect_format (sandboxed)", [&] { (void)weights::detect_format(path); }, {}},
        {"read_model_weights (both)", [&] { (void)weights::read_model_weights(path); }, {}},
        {"in process, into the model",
         [&] { (void)weights::load_pretrained(*model, weights::load_weights_in_process(path), path); },
         {}},
        {"read_model_weights, into the model",
         [&] { (void)weights::load_pretrained(*model, weights::read_model_weights(path), path); },
         {}},
        {"the sandbox alone (one byte back)",
         [&] {
           weights::sandbox::run(
               path, {}, [](weights::wire::Sink& out) { out.u8(1); },
               [](weights::wire::Source& in) { (void)in.u8(); });
         },
         {}},
    };
    (void)weights::load_weights_in_process(path);  // the file in the page cache, libhdf5 initialised
    for (int r = 0; r < runs; ++r)
      for (Case& c : cases) c.ms.push_back(time_ms(cpu, c.run));
    for (Case& c : cases) {
      std::sort(c.ms.begin(), c.ms.end());
      std::printf("  %-36s min %7.1f ms  median %7.1f ms  max %7.1f ms\n", c.what, c.ms.front(),
                  c.ms[c.ms.size() / 2], c.ms.back());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
