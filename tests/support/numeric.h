// Helpers shared by the tests: seeded random buffers and the normalised error every comparison uses.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace tl::testing {

// Uniform values in [low, high) from a fixed seed, so a failure reproduces.
template <typename T>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// ||actual - expected||_2 / ||expected||_2 (the absolute norm when expected is all zeros). A NaN anywhere in
// actual gives infinity, so a poisoned, unwritten output can never pass.
template <typename A, typename B>
double normalized_error(const A* actual, const B* expected, std::size_t n) {
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    if (!std::isfinite(a)) return std::numeric_limits<double>::infinity();
    diff += (a - e) * (a - e);
    ref += e * e;
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

template <typename A, typename B>
double normalized_error(const std::vector<A>& actual, const std::vector<B>& expected) {
  return normalized_error(actual.data(), expected.data(), actual.size());
}

// A buffer filled with NaN: outputs start poisoned so that an element a kernel forgets to write fails the
// test.
template <typename T>
std::vector<T> poisoned_vector(std::size_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

}  // namespace tl::testing
