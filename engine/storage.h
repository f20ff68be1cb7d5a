// A reference-counted block of memory on one device. Tensors (and their views) share a Storage.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "engine/device.h"

namespace tl {

class Storage {
 public:
  // Allocates `nbytes` uninitialised bytes on `device`.
  Storage(std::size_t nbytes, Device device);
  // Adopts memory owned elsewhere; `release` is called with `data` when the last reference goes.
  Storage(void* data, std::size_t nbytes, Device device, std::function<void(void*)> release);
  ~Storage();

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  const Device& device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
  Device device_;
  std::function<void(void*)> release_;  // empty: the device allocator owns data_
};

}  // namespace tl
