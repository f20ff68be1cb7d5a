// The HDF5 readers on a file libhdf5 already has open, whichever way it was opened: from its path in this
// process (the *_in_process entries) or from its bytes in the sandboxed child (weights/isolated_read.cpp).
// Internal to weights/.
#pragma once

#include <functional>

#include "weights/importers.h"
#include "weights/weights_file.h"

namespace tl::weights {

namespace h5 {
class File;
}

namespace detail {

// Where a reader puts a tensor it reads: a new tensor of that shape and dtype (tl's empty() in this process;
// the result's shared memory in the sandboxed child, so that libhdf5 reads straight into it).
using TensorFactory = std::function<Tensor(const Shape&, DType)>;

// tl's weight format (weights_file.cpp).
WeightsFile read_weights(const h5::File& file, const TensorFactory& make);
// A Keras .h5 (keras_reader.cpp).
Imported read_keras(const h5::File& file);
// TlWeights, KerasH5 or Unknown, from the root attributes (formats.cpp).
SourceFormat classify_hdf5(const h5::File& file);

}  // namespace detail
}  // namespace tl::weights
