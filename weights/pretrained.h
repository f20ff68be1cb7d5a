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

// Loads `file` (read from `path`, named in messages) into `model` and adopts the file's preprocessing. Throws
// ValueError naming the file and the entries at fault when the architecture differs, an entry is missing,
// unexpected or mis-shaped, or the head does not fit and reset_head is off (the message says how to ask).
LoadReport load_pretrained(models::Model& model, const WeightsFile& file, const std::string& path,
                           const PretrainedOptions& options = {});

}  // namespace tl::weights
