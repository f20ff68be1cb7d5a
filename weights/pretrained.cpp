#include "weights/pretrained.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "weights/importers.h"

namespace tl::weights {
namespace {

bool in_head(const std::string& name, const std::string& head_path) {
  return name.rfind(head_path + ".", 0) == 0;
}

// The head's entries on one side, for comparing heads as a whole (a Linear head against an MLP head differs
// by names, not only shapes).
std::vector<std::pair<std::string, Shape>> head_entries(const StateDict& sd, const std::string& head_path) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const auto& [name, t] : sd)
    if (in_head(name, head_path)) out.emplace_back(name, t.shape());
  std::sort(out.begin(), out.end());
  return out;
}

std::string describe_head(const std::vector<std::pair<std::string, Shape>>& entries) {
  if (entries.empty()) return "no head";
  std::string out;
  for (const auto& [name, shape] : entries) out += (out.empty() ? "" : ", ") + name + " " + shape_str(shape);
  return out;
}

}  // namespace

WeightsFile read_model_weights(const std::string& path) {
  const SourceFormat format = detect_format(path);
  TL_CHECK(format == SourceFormat::TlWeights || format == SourceFormat::Unknown, Error, path, " is a ",
           format_name(format), " checkpoint, not a tl weight file: convert it first (tl_convert ", path,
           " -o model.h5)");
  return load_weights(path);
}

void check_finite(const StateDict& tensors, const std::string& path) {
  for (const auto& [name, t] : tensors) {
    if (t.dtype() == DType::Int64) continue;
    const std::vector<double> values = t.to_vector<double>();
    std::int64_t bad = 0, first = -1;
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i]) && bad++ == 0) first = static_cast<std::int64_t>(i);
    TL_CHECK(bad == 0, Error, path, ": tensor '", name, "' ", shape_str(t.shape()), " holds ", bad,
             " NaN or infinite value(s) (the first at element ", first, ": ",
             values[static_cast<std::size_t>(std::max<std::int64_t>(first, 0))],
             "); such weights would give NaN outputs, so they are refused");
  }
}

LoadReport load_pretrained(models::Model& model, const WeightsFile& file, const std::string& path,
                           const PretrainedOptions& options) {
  const std::string& arch = file.metadata.architecture;
  TL_CHECK(arch.empty() || arch == model.architecture(), ValueError, path, " holds ", arch,
           " weights, but the model is ", model.architecture(), " (choose --model ", arch, ")");

  check_finite(file.tensors, path);
  const StateDict mine = model.state_dict();
  const std::string& head = model.head_path();
  const auto file_head = head_entries(file.tensors, head), model_head = head_entries(mine, head);
  const bool head_fits = file_head == model_head;
  TL_CHECK(
      head_fits || options.reset_head, ValueError, path, " has a head of ", describe_head(file_head),
      "; the model's head is ", describe_head(model_head),
      ". To keep the pretrained backbone and start a new head, ask for it (PretrainedOptions::reset_head)");

  StateDict to_load;
  for (const auto& [name, t] : file.tensors)
    if (head_fits || !in_head(name, head)) to_load.insert(name, t);
  if (!head_fits)  // the model's own fresh head stands in for the file's
    for (const auto& [name, t] : mine)
      if (in_head(name, head)) to_load.insert(name, t.detach().clone());

  try {
    LoadReport report = model.load_state_dict(to_load, /*strict=*/true);
    model.set_preprocessing(file.metadata.preprocessing);
    return report;
  } catch (const ValueError& e) {
    throw ValueError(str(path, " does not fit ", model.architecture(), ":\n", e.what()));
  }
}

}  // namespace tl::weights
