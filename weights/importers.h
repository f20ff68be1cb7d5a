// Readers for other frameworks' checkpoints. Each turns a file into tl's state dict (torchvision's names and
// layouts) plus whatever metadata the file carries. None of them executes anything from the file: the .pth
// reader is a restricted unpickler that understands only what torch.save writes for state dicts.
#pragma once

#include <string>

#include "engine/state_dict.h"
#include "weights/weights_file.h"

namespace tl::weights {

struct Imported {
  StateDict tensors;
  Metadata metadata;  // architecture when the file names it (Keras, ONNX), preprocessing, class names
  std::string
      format;  // "torchvision .pth (zip)", "torchvision .pth (legacy)", "safetensors", "Keras .h5", "ONNX"
};

// torch.save of a state dict, zip (torch >= 1.6) or legacy format; also a dict wrapping it under "state_dict"
// or "model", and DataParallel's "module." prefix.
Imported read_pth(const std::string& path);

// A safetensors file (timm / Hugging Face); F32, F16, BF16, F64 and I64 tensors.
Imported read_safetensors(const std::string& path);

// A keras.applications MobileNet (V1) or MobileNetV2 saved by Keras as .h5 (full model or weights only),
// renamed and transposed to tl's layout (NHWC/HWIO -> NCHW/OIHW), with Keras' epsilon and preprocessing.
// libhdf5 parses the file in a sandboxed child process (weights/sandbox.h), as for load_weights.
Imported read_keras_h5(const std::string& path);
// The same in this process, without the sandbox: for the fuzz target that hunts libhdf5's bugs.
Imported read_keras_h5_in_process(const std::string& path);

// A torchvision MobileNetV2 exported to ONNX, float or quantized (QLinearConv and friends are dequantized;
// BatchNorm folded into the convolutions becomes an identity BatchNorm plus a bias).
Imported read_onnx(const std::string& path);

enum class SourceFormat { TlWeights, Pth, Safetensors, KerasH5, Onnx, Unknown };

// Looks at the first bytes (zip or pickle magic, HDF5 signature and its attributes, the safetensors header,
// the ONNX protobuf fields); the extension only breaks ties. An HDF5 file's attributes are read in the
// sandbox (weights/sandbox.h).
SourceFormat detect_format(const std::string& path);
const char* format_name(SourceFormat format);

}  // namespace tl::weights
