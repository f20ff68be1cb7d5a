// Philox4x32-10, the counter-based generator of Salmon et al. (SC'11): random numbers are a pure function of
// (seed, counter), so element i of a random tensor or dropout mask is the same on any thread count or device,
// and a mask can be regenerated in backward instead of stored.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

// The same functions serve the CPU kernels and the CUDA kernels (kernels/cuda/random.cu), so both devices
// draw the same bits from the same counters.
#ifndef TL_HOST_DEVICE
#ifdef __CUDACC__
#define TL_HOST_DEVICE __host__ __device__
#else
#define TL_HOST_DEVICE
#endif
#endif

namespace tl::kernels {

using PhiloxBlock = std::array<std::uint32_t, 4>;

TL_HOST_DEVICE inline PhiloxBlock philox4x32(std::uint64_t seed, std::uint64_t counter) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter), c1 = static_cast<std::uint32_t>(counter >> 32);
  std::uint32_t c2 = 0, c3 = 0;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kMul0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(kMul1) * c2;
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

// Uniform in [0, 1) with 24 random bits (every float in the result is exact).
TL_HOST_DEVICE inline float philox_uniform_float(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * 0x1p-24f;
}

// Uniform in [0, 1) with 53 random bits.
TL_HOST_DEVICE inline double philox_uniform_double(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 32 | lo) >> 11;
  return static_cast<double>(bits) * 0x1p-53;
}

// Four standard normals from one Philox block: Box-Muller on its two pairs of 24-bit uniforms, cosine and
// sine. Compiled for the device, log, cos and sin are CUDA's, which may differ from the host's libm in the
// last bit: a double normal can then differ by an ulp or two between devices (a float one practically never).
TL_HOST_DEVICE inline std::array<double, 4> philox_normals(const PhiloxBlock& b) {
  std::array<double, 4> out{};
  for (int pair = 0; pair < 2; ++pair) {
    const double u1 = (static_cast<double>(b[2 * pair] >> 8) + 1.0) * 0x1p-24;  // (0, 1]: log stays finite
    const double u2 = static_cast<double>(b[2 * pair + 1] >> 8) * 0x1p-24;
    const double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * 3.14159265358979323846 * u2;
    out[2 * pair] = radius * std::cos(angle);
    out[2 * pair + 1] = radius * std::sin(angle);
  }
  return out;
}

}  // namespace tl::kernels
