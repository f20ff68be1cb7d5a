// tl_predict: classifies images with a tl weight file, using the model's own preprocessing (resize, center
// crop, mean/std from the file) and its class names. For checking and scripting, --tensor takes an NCHW
// float32 .npy instead of images and --logits writes the raw logits as .npy.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/data/image.h"
#include "engine/data/transforms.h"
#include "engine/npy.h"
#include "models/registry.h"
#include "tools/cli_common.h"
#include "weights/pretrained.h"
#include "weights/weights_file.h"

namespace {

using namespace tl;
namespace fs = std::filesystem;

// Files named on the command line, and the files of named folders (recursively, sorted), as given.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    TL_CHECK(fs::exists(in), Error, in, ": no such file or folder");
    if (!fs::is_directory(in)) {
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& entry : fs::recursive_directory_iterator(in))
      if (entry.is_regular_file()) found.push_back(entry.path().string());
    std::sort(found.begin(), found.end());
    TL_CHECK(!found.empty(), Error, in, ": the folder holds no files");
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

std::string class_name(const weights::Metadata& m, std::int64_t index) {
  if (index < static_cast<std::int64_t>(m.class_names.size()))
    return m.class_names[static_cast<std::size_t>(index)];
  return "class " + std::to_string(index);
}

void print_top_k(const std::string& label, const float* logits, std::int64_t classes, int top_k,
                 const weights::Metadata& m) {
  // Softmax in double over this row.
  const float max = *std::max_element(logits, logits + classes);
  std::vector<double> p(static_cast<std::size_t>(classes));
  double total = 0;
  for (std::int64_t c = 0; c < classes; ++c)
    total += p[static_cast<std::size_t>(c)] = std::exp(logits[c] - max);
  std::vector<std::int64_t> order(static_cast<std::size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  const auto k = std::min<std::int64_t>(top_k, classes);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int64_t a, std::int64_t b) {
    return p[static_cast<std::size_t>(a)] > p[static_cast<std::size_t>(b)];
  });
  std::printf("%s\n", label.c_str());
  for (std::int64_t i = 0; i < k; ++i)
    std::printf("  %2lld  %.4f  %s\n", static_cast<long long>(i + 1),
                p[static_cast<std::size_t>(order[i])] / total, class_name(m, order[i]).c_str());
}

int run(const std::string& weights_path, const std::vector<std::string>& inputs,
        const std::string& tensor_path, const std::string& logits_path, int top_k, int batch_size,
        const std::string& device_text) {
  const Device device = tools::parse_device_flag(device_text, "--device");
  TL_CHECK(top_k >= 1, ValueError, "--topk must be at least 1, got ", top_k);
  TL_CHECK(batch_size >= 1, ValueError, "--batch-size must be at least 1, got ", batch_size);
  TL_CHECK(inputs.empty() != tensor_path.empty(), ValueError,
           "give either images (files or folders) or --tensor IN.npy, not both and not neither");
  if (!logits_path.empty()) tools::check_output_path(logits_path, "--logits");
  const weights::WeightsFile file = weights::read_model_weights(weights_path);
  const weights::Metadata& m = file.metadata;
  TL_CHECK(!m.architecture.empty(), Error, weights_path, ": the file does not name its architecture");
  const auto model = models::create_model(m.architecture, m.num_classes);
  weights::load_pretrained(*model, file, weights_path);
  model->to(device);
  model->eval();
  NoGradGuard no_grad;
  if (top_k > m.num_classes)
    std::fprintf(stderr, "tl_predict: --topk %d is more than the model's %lld classes; printing all %lld\n",
                 top_k, static_cast<long long>(m.num_classes), static_cast<long long>(m.num_classes));

  std::vector<Tensor> all_logits;
  if (!tensor_path.empty()) {
    const Tensor x = load_npy(tensor_path).to(DType::Float32);
    TL_CHECK(x.dim() == 4 && x.size(1) == 3, ShapeError, tensor_path,
             ": expected an NCHW float32 array with 3 channels, got ", shape_str(x.shape()));
    TL_CHECK(x.size(0) >= 1 && x.size(2) >= 1 && x.size(3) >= 1, ShapeError, tensor_path,
             ": holds no image (shape ", shape_str(x.shape()), ")");
    const Tensor dense = x.contiguous();
    const float* values = dense.data<float>();
    for (std::int64_t i = 0; i < x.numel(); ++i)
      TL_CHECK(std::isfinite(values[i]), ValueError, tensor_path, ": element ", i, " is ", values[i],
               "; the input must be finite");
    const Tensor logits = model->forward(x.to(device)).to(Device::cpu());
    for (std::int64_t i = 0; i < x.size(0); ++i)
      print_top_k(str(tensor_path, "[", i, "]"), logits.data<float>() + i * m.num_classes, m.num_classes,
                  top_k, m);
    all_logits.push_back(logits);
  } else {
    const std::vector<std::string> files = expand_inputs(inputs);
    std::vector<std::string> skipped;
    for (std::size_t start = 0; start < files.size(); start += static_cast<std::size_t>(batch_size)) {
      std::vector<std::string> names;
      std::vector<Tensor> batch;
      for (std::size_t i = start; i < std::min(files.size(), start + static_cast<std::size_t>(batch_size));
           ++i) {
        try {
          batch.push_back(
              data::eval_transform(data::decode_image(files[i]), model->preprocessing()).unsqueeze(0));
          names.push_back(files[i]);
        } catch (const data::ImageError& e) {
          std::fprintf(stderr, "tl_predict: skipping %s\n", e.what());
          skipped.push_back(files[i]);
        }
      }
      if (batch.empty()) continue;
      Tensor x = empty({static_cast<std::int64_t>(batch.size()), 3, batch[0].size(2), batch[0].size(3)});
      for (std::size_t i = 0; i < batch.size(); ++i)
        x.narrow(0, static_cast<std::int64_t>(i), 1).copy_(batch[i]);
      const Tensor logits = model->forward(x.to(device)).to(Device::cpu());
      for (std::size_t i = 0; i < names.size(); ++i)
        print_top_k(names[i], logits.data<float>() + static_cast<std::int64_t>(i) * m.num_classes,
                    m.num_classes, top_k, m);
      all_logits.push_back(logits);
    }
    TL_CHECK(!all_logits.empty(), Error, "no image could be read (", skipped.size(), " skipped)");
    if (!skipped.empty()) std::fprintf(stderr, "tl_predict: %zu file(s) skipped\n", skipped.size());
  }

  if (!logits_path.empty()) {
    std::int64_t rows = 0;
    for (const Tensor& l : all_logits) rows += l.size(0);
    Tensor out = empty({rows, m.num_classes});
    std::int64_t at = 0;
    for (const Tensor& l : all_logits) {
      out.narrow(0, at, l.size(0)).copy_(l);
      at += l.size(0);
    }
    save_npy(logits_path, out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tl_predict: classify images with a tl weight file"};
  std::string weights_path, tensor_path, logits_path;
  std::vector<std::string> inputs;
  int top_k = 5, batch_size = 16;
  app.add_option("--weights", weights_path, "tl weight file (from tl_convert or tl_train)")->required();
  app.add_option("inputs", inputs, "images (JPEG, PNG) or folders of them");
  app.add_option("--topk", top_k, "classes to print per image (default 5)");
  app.add_option("--batch-size", batch_size, "images per forward pass (default 16)");
  app.add_option("--tensor", tensor_path,
                 "an NCHW float32 .npy to classify instead of images (no preprocessing)");
  app.add_option("--logits", logits_path, "write the raw logits [images, classes] to this .npy");
  std::string device = "cpu";
  app.add_option("--device", device, "cpu (default), cuda or cuda:N");
  CLI11_PARSE(app, argc, argv);
  return tl::tools::run_reporting_errors("tl_predict", [&] {
    return run(weights_path, inputs, tensor_path, logits_path, top_k, batch_size, device);
  });
}
