// tl's HDF5 reads of a user's file, each in the sandbox of weights/sandbox.h: the file's bytes are mapped
// here, a sandboxed child parses them with libhdf5 (from memory: it never opens a file) and the readers of
// hdf5_readers.h, and sends the result back in the format of sandbox_wire.h, which this process checks as it
// reads. load_weights, read_keras_h5 and detect_format go through here.
#pragma once

#include <string>

#include "weights/importers.h"
#include "weights/weights_file.h"

namespace tl::weights::isolated {

WeightsFile load_weights(const std::string& path);
Imported read_keras_h5(const std::string& path);
// TlWeights, KerasH5 or Unknown for an HDF5 file (detect_format).
SourceFormat hdf5_format(const std::string& path);

}  // namespace tl::weights::isolated
