// tl_convert: turns a torchvision .pth, safetensors, Keras .h5 or ONNX checkpoint into tl's HDF5 weight file.
// It detects the format and (unless --arch says) the architecture, checks that the result loads into that
// architecture, and writes atomically, so a failed conversion never leaves a partial file behind.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/input_file.h"
#include "models/detect.h"
#include "models/registry.h"
#include "tools/cli_common.h"
#include "weights/importers.h"
#include "weights/pretrained.h"
#include "weights/weights_file.h"

namespace {

using namespace tl;

weights::Imported read_any(const std::string& path, weights::SourceFormat format) {
  switch (format) {
    case weights::SourceFormat::Pth:
      return weights::read_pth(path);
    case weights::SourceFormat::Safetensors:
      return weights::read_safetensors(path);
    case weights::SourceFormat::KerasH5:
      return weights::read_keras_h5(path);
    case weights::SourceFormat::Onnx:
      return weights::read_onnx(path);
    case weights::SourceFormat::TlWeights: {
      weights::WeightsFile file = weights::load_weights(path);
      return {std::move(file.tensors), std::move(file.metadata), "tl weights"};
    }
    case weights::SourceFormat::Unknown:
      break;
  }
  throw Error(str(path, ": not a format tl_convert reads (torchvision .pth, safetensors, Keras .h5, ONNX)"));
}

// One class name per line. ImageNet label files in TensorFlow order start with "background": with one line
// more than the head has outputs, that line is dropped.
std::vector<std::string> read_class_names(const std::string& path, std::int64_t classes) {
  require_readable_file(path);
  std::ifstream in(path);
  TL_CHECK(in.good(), Error, path, ": cannot open the class-names file");
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  const auto count = static_cast<std::int64_t>(names.size());
  if (count == classes + 1 && names.front() == "background") {
    std::printf("tl_convert: %s: dropping line 1 ('background'); the head has %lld classes\n", path.c_str(),
                static_cast<long long>(classes));
    names.erase(names.begin());
  }
  TL_CHECK(static_cast<std::int64_t>(names.size()) == classes, Error, path, ": ", names.size(),
           " class names for a head with ", classes, " outputs");
  return names;
}

int run(const std::string& input, const std::string& output, std::string arch,
        const std::string& classes_file) {
  const weights::SourceFormat format = weights::detect_format(input);
  weights::Imported imported = read_any(input, format);
  std::printf("tl_convert: read %s as %s (%zu tensors)\n", input.c_str(), imported.format.c_str(),
              imported.tensors.size());
  weights::check_finite(imported.tensors, input);

  const models::Detection detected = models::detect_architecture(imported.tensors);
  if (arch.empty()) arch = imported.metadata.architecture;
  if (arch.empty()) {
    TL_CHECK(!detected.architecture.empty(), Error, input, ": cannot tell the architecture (",
             detected.reason, "); name it with --arch (tl_models lists them)");
    arch = detected.architecture;
    std::printf("tl_convert: architecture %s (detected: %s)\n", arch.c_str(), detected.reason.c_str());
  } else {
    std::printf("tl_convert: architecture %s (%s)\n", arch.c_str(),
                imported.metadata.architecture == arch ? "named by the file" : "from --arch");
  }
  const std::int64_t classes =
      imported.metadata.num_classes > 0 ? imported.metadata.num_classes : detected.num_classes;

  // The proof that the file is what we say: it must load, strictly, into a fresh model of that architecture.
  const auto model = models::create_model(arch, classes);
  try {
    model->load_state_dict(imported.tensors, /*strict=*/true);
  } catch (const ValueError& e) {
    throw Error(str(input, " does not fit ", arch, " with ", classes, " classes:\n", e.what()));
  }

  weights::Metadata metadata = imported.metadata;
  metadata.architecture = arch;
  metadata.num_classes = classes;
  if (imported.metadata.architecture.empty() && format != weights::SourceFormat::TlWeights)
    metadata.preprocessing = model->preprocessing();  // the architecture's pretrained defaults
  if (!classes_file.empty()) metadata.class_names = read_class_names(classes_file, classes);
  if (metadata.source.empty()) metadata.source = imported.format + ": " + input;

  weights::save_weights(output, model->state_dict(), metadata);
  const Preprocessing& p = metadata.preprocessing;
  std::printf(
      "tl_convert: wrote %s: %zu tensors, %s parameters, %lld classes%s\n", output.c_str(),
      model->state_dict().size(), tools::thousands(model->parameter_count()).c_str(),
      static_cast<long long>(classes),
      metadata.class_names.empty() ? " (no class names)" : (" (names from " + classes_file + ")").c_str());
  std::printf(
      "  preprocessing: %lld px, mean (%.3f, %.3f, %.3f), std (%.3f, %.3f, %.3f), %s, crop fraction %.3f\n",
      static_cast<long long>(p.input_size), p.mean[0], p.mean[1], p.mean[2], p.std[0], p.std[1], p.std[2],
      p.interpolation.c_str(), p.crop_fraction);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "tl_convert: convert a torchvision .pth, safetensors, Keras .h5 or ONNX checkpoint to tl's HDF5 "
      "weight format"};
  std::string input, output, arch, classes_file;
  app.add_option("input", input, "checkpoint to convert")->required();
  app.add_option("-o,--output", output, "tl weight file to write (.h5)")->required();
  app.add_option("--arch", arch,
                 "architecture (default: from the file, else detected from its names and shapes)");
  app.add_option("--classes", classes_file, "class names, one per line, stored in the output");
  CLI11_PARSE(app, argc, argv);
  return tools::run_reporting_errors("tl_convert", [&] {
    if (!arch.empty()) tools::check_architecture(arch, "--arch");
    tools::check_output_path(output, "-o");
    if (!classes_file.empty()) require_readable_file(classes_file);
    return run(input, output, arch, classes_file);
  });
}
