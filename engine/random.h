// A seeded source of random numbers. The state is (seed, offset): every consumer reserves a range of counters
// and draws from the stateless Philox function (kernels/philox.h), so results do not depend on threads or
// device, and the state saves and restores exactly (checkpoints resume bit for bit).
#pragma once

#include <cstdint>

namespace tl {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}

  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }

  // Reserves `draws` 32-bit draws and returns the offset of the first. Rounded up to whole Philox blocks of
  // 4, so that every reservation starts on a block boundary.
  std::uint64_t reserve(std::uint64_t draws) {
    const std::uint64_t start = offset_;
    offset_ += (draws + 3) / 4 * 4;
    return start;
  }

 private:
  std::uint64_t seed_ = 0;
  std::uint64_t offset_ = 0;
};

}  // namespace tl
