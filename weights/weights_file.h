// tl's weight file: HDF5, one dataset per state-dict entry at the path made from its dot-separated name
// (layer4.1.conv2.weight -> /layer4/1/conv2/weight), shapes as PyTorch has them (OIHW), float32 values
// (int64 for counters such as num_batches_tracked), and the metadata as root attributes. weights/FORMAT.md
// documents it for h5py users.
#pragma once

#include <string>
#include <vector>

#include "engine/preprocessing.h"
#include "engine/state_dict.h"

namespace tl::weights {

inline constexpr const char* kFormatName = "tl-weights";
inline constexpr std::int64_t kFormatVersion = 1;

struct Metadata {
  std::string architecture;  // a registry name ("resnet50"); empty when unknown
  std::int64_t num_classes = 0;
  Preprocessing preprocessing;
  std::vector<std::string> class_names;  // empty when unknown
  std::string source;                    // what it was converted from, e.g. "torchvision .pth: resnet50.pth"
  std::string training_state;            // a checkpoint's JSON (epoch, history, RNG, config); empty otherwise
};

struct WeightsFile {
  StateDict tensors;  // the model's state dict
  Metadata metadata;
  StateDict extra;  // a checkpoint's other tensors (optimizer buffers), under /_extra; models never see them
};

// Writes atomically (a temporary file in the same folder, then a rename): a failure or kill never leaves a
// partial file at `path`, and an existing file there stays intact until the new one is complete.
void save_weights(const std::string& path, const StateDict& tensors, const Metadata& metadata,
                  const StateDict& extra = {});

// Reads a file written by save_weights (or by h5py following FORMAT.md). Throws Error naming the file and,
// where one is at fault, the dataset or attribute. libhdf5 parses the file in a sandboxed child process
// (weights/sandbox.h): a file crafted to crash libhdf5 gives an Error here, not a crash.
WeightsFile load_weights(const std::string& path);

// The same read in this process, with libhdf5's bugs in reach of the file: for tests and for the fuzz target
// that hunts libhdf5's bugs. Never for a user's file.
WeightsFile load_weights_in_process(const std::string& path);

// True when the file starts with the HDF5 signature (a cheap format probe, no parsing).
bool is_hdf5_file(const std::string& path);

}  // namespace tl::weights
