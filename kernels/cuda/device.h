// What CUDA devices this process can use. Plain C++ (no CUDA headers), so any part of tl may ask. In a build
// without the CUDA backend, or on a machine without a GPU or driver, there are no devices.
#pragma once

#include <string>

namespace tl::cuda {

// True when this build contains the CUDA backend (it may still find no device at run time).
bool built_with_cuda();

// Number of usable devices; 0 when the build has no CUDA backend, no driver is installed or no GPU is
// present.
int device_count();

// "NVIDIA H200 (compute capability 9.0, 139 GiB)"; throws DeviceError for an index that is not a device.
std::string device_description(int index);

// Launches a trivial kernel on `index` that writes a known pattern, copies it back and checks it. Returns an
// empty string on success, else what went wrong. Proves that the build's device code runs on this GPU.
std::string run_self_test(int index);

}  // namespace tl::cuda
