// When the CPU kernels go parallel. Below the grain, OpenMP's fork/join costs more than the loop itself.
#pragma once

#include <cstdint>

namespace tl::kernels::cpu {

inline constexpr std::int64_t kParallelGrain = 1 << 15;  // elements of simple element-wise work

}  // namespace tl::kernels::cpu
