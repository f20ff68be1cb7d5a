// Loading a weight file into a model: the architecture must match, every backbone tensor must be present with
// its shape, and a head of another size (the normal case in transfer learning) is re-initialised only when
// asked.
#pragma once

#include "engine/module.h"
#include "models/model.h"
#include "weights/weights_file.h"

namespace tl::weights {

struct PretrainedOptions {
  // Keep the model's freshly initialised head when the file's head does not fit it (another number of
  // classes).
  bool reset_head = false;
};

// Reads the tl weight file a user named (tl_predict --weights, tl_train --weights). A checkpoint of another
// framework is refused with the tl_convert command that converts it; otherwise as load_weights (which refuses
// NaN and infinite values, naming the tensor).
WeightsFile read_model_weights(const std::string& path);

// Throws Error naming `path` and the first tensor that holds NaN or infinite values: such weights give NaN
// outputs (or a NaN loss at the first step), so tl refuses them on loading rather than predict nonsense.
void check_finite(const StateDict& tensors, const std::string& path);

// Loads `file` (read from `path`, named in messages) into `model` and adopts the file's preprocessing. Throws
// ValueError naming the file and the entries at fault when the architecture differs, an entry is missing,
// unexpected or mis-shaped, holds NaN or infinite values, or the head does not fit and reset_head is off (the
// message says how to ask).
LoadReport load_pretrained(models::Model& model, const WeightsFile& file, const std::string& path,
                           const PretrainedOptions& options = {});

}  // namespace tl::weights
