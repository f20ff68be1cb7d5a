// Where a tensor's storage lives: the host ("cpu") or a CUDA device ("cuda:N").
#pragma once

#include <cstdint>
#include <string>

namespace tl {

enum class DeviceType : std::uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

  constexpr bool is_cpu() const { return type == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type == DeviceType::CUDA; }
  constexpr bool operator==(const Device&) const = default;

  // "cpu", "cuda:0".
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  // Accepts "cpu", "cuda" (device 0) and "cuda:N"; throws ValueError naming the text otherwise.
  static Device parse(const std::string& text);
};

}  // namespace tl
