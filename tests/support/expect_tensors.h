// Comparing an imported state dict with the expected tensors a fixture script wrote (one HDF5 dataset per
// tensor name), bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/state_dict.h"
#include "weights/hdf5.h"

namespace tl::testing {

// Every dataset of `expected` (one per tensor name) must be in `actual` with the same dtype, shape and bits.
inline void expect_matches(const StateDict& actual, const std::string& expected_path) {
  const weights::h5::File expected = weights::h5::File::open_read(expected_path);
  const std::vector<std::string> names = expected.dataset_paths();
  EXPECT_EQ(actual.size(), names.size());
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const Tensor* t = actual.find(name);
    ASSERT_NE(t, nullptr) << "missing " << name;
    const weights::h5::DatasetInfo info = expected.dataset_info(name);
    EXPECT_EQ(t->shape(), info.shape);
    if (info.kind == weights::h5::ElementKind::Integer) {
      ASSERT_EQ(t->dtype(), DType::Int64);
      EXPECT_EQ(t->to_vector<std::int64_t>(), expected.read_int64s(name));
    } else {
      ASSERT_EQ(t->dtype(), DType::Float32);
      const std::vector<float> want = expected.read_floats(name), got = t->to_vector<float>();
      ASSERT_EQ(got.size(), want.size());
      // Bits, not values: NaN payloads, -0 and subnormals must survive the conversion too. An empty tensor's
      // vectors may hold null data(), which memcmp must not see even for 0 bytes (UBSan).
      if (!got.empty()) {
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
      }
    }
  }
}

}  // namespace tl::testing
