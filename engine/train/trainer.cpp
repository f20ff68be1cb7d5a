#include "engine/train/trainer.h"

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "engine/autograd.h"
#include "engine/functional.h"
#include "engine/layers.h"
#include "engine/optim/param_groups.h"
#include "engine/optim/scheduler.h"
#include "engine/train/report.h"
#include "engine/train/strategy.h"
#include "kernels/cuda/device.h"
#include "models/registry.h"
#include "weights/pretrained.h"
#include "weights/weights_file.h"

namespace tl::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- data
// -----------------------------------------------------------------------------------------------------------

struct Data {
  std::shared_ptr<const data::Dataset> train, val;
  std::string description;
};

// "fashion-mnist[:C,C,...[:N]]": classes (default all ten) and at most N training images per class (default
// all).
bool parse_fashion_mnist(const std::string& spec, std::vector<std::int64_t>& classes,
                         std::int64_t& per_class) {
  if (spec.rfind("fashion-mnist", 0) != 0) return false;
  std::string rest = spec.substr(std::string("fashion-mnist").size());
  if (rest.empty()) return true;
  TL_CHECK(rest[0] == ':', ValueError, "--data '", spec, "': expected fashion-mnist[:C,C,...[:N]]");
  rest = rest.substr(1);
  const std::size_t colon = rest.find(':');
  std::stringstream list(rest.substr(0, colon));
  try {
    for (std::string c; std::getline(list, c, ',');) {
      const std::int64_t label = std::stoll(c);
      TL_CHECK(label >= 0 && label < 10, ValueError, "");
      classes.push_back(label);
    }
    if (colon != std::string::npos) per_class = std::stoll(rest.substr(colon + 1));
  } catch (const std::exception&) {
    throw ValueError(str("--data '", spec, "': classes are 0-9 and the per-class limit a positive number"));
  }
  TL_CHECK(per_class >= 0, ValueError, "--data '", spec, "': the per-class limit must be positive");
  return true;
}

Data load_data(const TrainConfig& config, const Preprocessing& preprocessing) {
  data::AugmentOptions augment;
  augment.size = preprocessing.input_size;
  const data::Transform eval = data::eval_transform_of(preprocessing, preprocessing.input_size);
  const data::Transform train = config.augment ? data::train_transform(augment, preprocessing) : eval;
  std::vector<std::int64_t> classes;
  std::int64_t per_class = 0;
  if (parse_fashion_mnist(config.data, classes, per_class)) {
    data::FashionMnistDataset::Options options;
    options.class_subset = classes;
    options.per_class = per_class;
    auto train_set = std::make_shared<data::FashionMnistDataset>(options, train);
    options.train = false;
    options.per_class = 0;
    auto val_set = std::make_shared<data::FashionMnistDataset>(options, eval);
    return {train_set, val_set,
            str("Fashion-MNIST: ", train_set->size(), " training and ", val_set->size(), " test images of ",
                train_set->classes().size(), " classes")};
  }
  const data::Splits splits =
      data::find_splits(config.data, config.val_data, config.val_fraction, config.seed);
  return {std::make_shared<data::ImageFolderDataset>(splits.train, train),
          std::make_shared<data::ImageFolderDataset>(splits.val, eval),
          str(splits.train.samples.size(), " training and ", splits.val.samples.size(),
              " validation files of ", splits.train.classes.size(), " classes (", splits.description, ")")};
}

// ---- model
// ----------------------------------------------------------------------------------------------------------

bool is_pretrained(const TrainConfig& c) {
  return !c.weights.empty() && c.weights != "none";
}

models::HeadSpec head_spec(const std::string& head, std::int64_t classes) {
  if (head.empty() || head == "linear") return {classes};
  if (head.rfind("mlp:", 0) == 0) {
    std::stringstream parts(head.substr(4));
    std::string hidden, dropout;
    std::getline(parts, hidden, ':');
    std::getline(parts, dropout, ':');
    try {
      const models::HeadSpec spec{classes, std::stoll(hidden), dropout.empty() ? 0.0 : std::stod(dropout)};
      // A hidden width of 0 would leave a head that sees nothing but its biases.
      TL_CHECK(spec.hidden >= 1, ValueError, "--head '", head, "': the hidden width must be at least 1");
      return spec;
    } catch (const ValueError&) {
      throw;
    } catch (const std::exception&) {
    }
  }
  throw ValueError(str("--head '", head, "': expected linear or mlp:HIDDEN:DROPOUT (e.g. mlp:512:0.3)"));
}

// The model for the data's classes: the pre-trained weights with a new head where asked, or random weights.
std::shared_ptr<models::Model> build_model(const TrainConfig& config, std::int64_t classes,
                                           const weights::WeightsFile* pretrained, std::string& note) {
  Generator generator(config.seed);
  if (!pretrained) {
    auto model = models::create_model(config.model, classes, config.seed);
    if (!config.head.empty() && config.head != "linear")
      model->replace_head(head_spec(config.head, classes), generator);
    note = "random initial weights";
    return model;
  }
  const weights::WeightsFile& file = *pretrained;
  const std::string arch = file.metadata.architecture;
  TL_CHECK(!arch.empty(), Error, config.weights, ": the file does not name its architecture");
  TL_CHECK(config.model.empty() || config.model == arch, ValueError, config.weights, " holds ", arch,
           " weights, but --model is ", config.model);
  auto model = models::create_model(arch, file.metadata.num_classes, config.seed);
  weights::load_pretrained(*model, file, config.weights);
  const bool head_fits = file.metadata.num_classes == classes;
  const bool new_head_asked = config.reset_head || !config.head.empty();
  TL_CHECK(
      head_fits || new_head_asked, ValueError, config.weights, " has a ", file.metadata.num_classes,
      "-class head and the data has ", classes,
      " classes: pass --reset-head (or --head linear / mlp:HIDDEN:DROPOUT) to keep the pre-trained backbone "
      "and train a new head");
  if (new_head_asked) {
    model->replace_head(head_spec(config.head, classes), generator);
    note = str("pre-trained weights from ", config.weights, ", new ",
               config.head.empty() ? "linear" : config.head, " head for ", classes, " classes");
  } else {
    note = str("pre-trained weights and head from ", config.weights);
  }
  return model;
}

// ---- optimisation
// -----------------------------------------------------------------------------------------------------

// The head at --lr (unless a --group-lr names it), then the user's groups, then "rest" at the base lr.
std::vector<optim::GroupSpec> group_specs(const TrainConfig& config, const models::Model& model) {
  const auto spec = [](const std::string& pattern, double lr, const std::string& name) {
    optim::GroupSpec s;
    s.pattern = pattern;
    s.lr = lr;
    s.name = name;
    return s;
  };
  std::vector<optim::GroupSpec> specs;
  bool head_named = false;
  for (const GroupLr& g : config.group_lrs) head_named = head_named || g.pattern == model.head_path();
  if (!head_named) specs.push_back(spec(model.head_path(), config.lr, "head"));
  for (const GroupLr& g : config.group_lrs) specs.push_back(spec(g.pattern, g.lr, ""));
  return specs;
}

// Everything but the head trains at --base-lr, by default a tenth of --lr for pre-trained weights (small
// steps keep what they learned) and --lr itself from random weights (nothing to protect).
optim::GroupPlanner make_planner(const TrainConfig& config, const models::Model& model) {
  const double base = config.base_lr > 0      ? config.base_lr
                      : is_pretrained(config) ? config.lr / 10
                                              : config.lr;
  return optim::GroupPlanner(model, group_specs(config, model),
                             {base, config.weight_decay, config.decay_norm_and_bias});
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& config,
                                                 std::vector<optim::ParamGroup> groups) {
  TL_CHECK(!groups.empty(), ValueError, "nothing to train: every parameter is frozen at the start");
  if (config.optimizer == "sgd") {
    optim::SgdOptions o;
    o.momentum = config.momentum;
    o.nesterov = config.nesterov;
    return optim::make_sgd(std::move(groups), o);
  }
  optim::AdamOptions o;
  o.decoupled_weight_decay = config.optimizer == "adamw";
  return optim::make_adam(std::move(groups), o);
}

// ---- state kept in last.h5
// ----------------------------------------------------------------------------------------

struct RunState {
  std::int64_t epochs_done = 0;
  std::vector<EpochRecord> history;
  std::int64_t best_epoch = 0;
  double best_accuracy = -1;
  std::vector<std::vector<std::int64_t>> best_confusion;
};

std::string state_json(const TrainConfig& config, const RunState& s, const models::Model& model) {
  nlohmann::json j;
  j["config"] = nlohmann::json::parse(to_json(config));
  j["epochs_done"] = s.epochs_done;
  j["best_epoch"] = s.best_epoch;
  j["best_accuracy"] = s.best_accuracy;
  j["best_confusion"] = s.best_confusion;
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord& r : s.history) history.push_back(nlohmann::json::parse(to_json(r)));
  j["history"] = history;
  nlohmann::json generators = nlohmann::json::object();
  for (const auto& [path, module] : model.named_modules())
    if (auto* d = dynamic_cast<Dropout*>(module))
      generators[path] = {d->generator().seed(), d->generator().offset()};
  j["dropout_generators"] = generators;
  return j.dump();
}

void restore_generators(const nlohmann::json& generators, models::Model& model) {
  for (const auto& [path, module] : model.named_modules())
    if (auto* d = dynamic_cast<Dropout*>(module); d && generators.contains(path))
      d->generator().set_state(generators[path][0].get<std::uint64_t>(),
                               generators[path][1].get<std::uint64_t>());
}

void save_checkpoint(const std::string& path, const models::Model& model,
                     const std::vector<std::string>& classes, const TrainConfig& config,
                     const std::string& training_state, const optim::Optimizer* optimizer) {
  weights::Metadata m;
  m.architecture = model.architecture();
  m.num_classes = model.num_classes();
  m.preprocessing = model.preprocessing();
  m.class_names = classes;
  m.source =
      str("tl_train on ", config.data, is_pretrained(config) ? " from " + config.weights : " from scratch");
  m.training_state = training_state;
  weights::save_weights(path, model.state_dict(), m, optimizer ? optimizer->state() : StateDict());
}

// ---- the run
// Before anything loads or trains: the run folder must exist or be creatable and be writable, and must not
// hold another run's checkpoints, which a new run would overwrite, unless asked to (--overwrite).
void prepare_run_folder(const TrainConfig& c) {
  std::error_code error;
  fs::create_directories(c.out, error);
  TL_CHECK(!error && fs::is_directory(c.out), Error, "--out ", c.out, ": cannot create the run folder (",
           error ? error.message() : std::string("a file of that name is in the way"), ")");
  TL_CHECK(::access(c.out.c_str(), W_OK) == 0, Error, "--out ", c.out, ": the run folder is not writable");
  if (c.overwrite) return;
  for (const char* name : {"last.h5", "best.h5"})
    TL_CHECK(!fs::exists(fs::path(c.out) / name), Error, "--out ", c.out, " already holds a run (", name,
             "): continue it with --resume ", c.out, ", or pass --overwrite to start again there");
}

// ---------------------------------------------------------------------------------------------------------

class Run {
 public:
  Run(TrainConfig config, const RunOptions& options) : config_(std::move(config)), options_(options) {}

  TrainResult start() {
    validate(config_);
    prepare_run_folder(config_);
    setup(/*resuming=*/nullptr);
    return loop();
  }

  TrainResult resume_from(const weights::WeightsFile& last, const nlohmann::json& state) {
    setup(&last);
    const StateDict& extra = last.extra;
    optimizer_->load_state(extra);
    state_.epochs_done = state.at("epochs_done");
    state_.best_epoch = state.at("best_epoch");
    state_.best_accuracy = state.at("best_accuracy");
    state_.best_confusion = state.at("best_confusion").get<std::vector<std::vector<std::int64_t>>>();
    for (const auto& r : state.at("history")) state_.history.push_back(record_from_json(r.dump()));
    restore_generators(state.at("dropout_generators"), *model_);
    say(str("resuming ", config_.out, " after epoch ", state_.epochs_done, " of ", config_.epochs));
    return loop();
  }

 private:
  void say(const std::string& line) const {
    if (!options_.quiet) std::printf("tl_train: %s\n", line.c_str());
    std::fflush(stdout);
  }

  void setup(const weights::WeightsFile* resuming) {
    // The preprocessing comes from the weights (their mean/std) or the architecture, at the asked image size.
    std::string model_note;
    if (resuming) {
      model_ =
          models::create_model(resuming->metadata.architecture, resuming->metadata.num_classes, config_.seed);
      const models::HeadSpec spec = head_spec(config_.head, resuming->metadata.num_classes);
      if (spec.hidden > 0) {
        Generator g(config_.seed);
        model_->replace_head(spec, g);
      }
      model_->load_state_dict(resuming->tensors, /*strict=*/true);
      model_->set_preprocessing(resuming->metadata.preprocessing);
      model_note = "restored from last.h5";
    }
    // The preprocessing is the weights' (their mean and std) or the architecture's; the model itself is built
    // once the data says how many classes there are.
    std::optional<weights::WeightsFile> pretrained;
    if (!resuming && is_pretrained(config_)) pretrained = weights::read_model_weights(config_.weights);
    Preprocessing pre = resuming     ? model_->preprocessing()
                        : pretrained ? pretrained->metadata.preprocessing
                                     : models::create_model(config_.model, 1)->preprocessing();
    if (config_.image_size > 0) pre.input_size = config_.image_size;
    data_ = load_data(config_, pre);
    classes_ = data_.train->classes();
    TL_CHECK(data_.val->classes() == classes_, ValueError,
             "the validation data's classes differ from the training data's");
    if (!resuming)
      model_ = build_model(config_, static_cast<std::int64_t>(classes_.size()),
                           pretrained ? &*pretrained : nullptr, model_note);
    model_->set_preprocessing(pre);
    // Weights are read on the host, then the model moves, before the optimizer creates its state there.
    model_->to(options_.device);

    plan_ = plan_strategy(config_, *model_, data_.train->size(), is_pretrained(config_));
    if (!config_.unfreeze_schedule.empty())
      unfreeze_steps_ = parse_unfreeze_schedule(config_.unfreeze_schedule, *model_);
    // Resuming: what trained during the last finished epoch (that epoch's unfreeze steps included); the loop
    // adds the next epoch's.
    apply_trainable(resuming ? state_epochs(resuming) - 1 : 0);
    if (config_.train_frozen_bn)
      for (const auto& [_, m] : model_->named_modules())
        if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) bn->set_train_when_frozen(true);
    planner_ = std::make_unique<optim::GroupPlanner>(make_planner(config_, *model_));
    optimizer_ = make_optimizer(config_, planner_->build());
    scheduler_ = optim::parse_schedule(config_.scheduler, config_.epochs);

    cached_ = plan_.strategy == "feature-extract" && unfreeze_steps_.empty() &&
              (config_.cache_features == "on" || (config_.cache_features == "auto" && !config_.augment));

    data::DataLoader::Options lo;
    lo.batch_size = config_.batch_size;
    lo.workers = config_.workers;
    lo.seed = config_.seed;
    lo.strict = config_.strict_data;
    lo.pinned = options_.device.is_cuda();
    // BatchNorm cannot train on a batch of one image (at small sizes that is one value per channel), so a
    // last batch that would hold a single image is left out of each epoch. The cached loop trains only the
    // head, which has no BatchNorm, and needs every sample in its cache.
    const std::int64_t train_size = data_.train->size();
    lo.drop_last = !cached_ && train_size > config_.batch_size && train_size % config_.batch_size == 1;
    train_loader_ = std::make_unique<data::DataLoader>(data_.train, lo);
    lo.drop_last = false;
    lo.shuffle = false;
    val_loader_ = std::make_unique<data::DataLoader>(data_.val, lo);
    if (train_loader_->samples_per_epoch() < train_size)
      say(str(train_size, " training images in batches of ", config_.batch_size,
              " leave a last batch of one image, which BatchNorm cannot train on: each epoch leaves that one "
              "(shuffled) image out"));
    TL_CHECK(!(config_.cache_features == "on" && !cached_), ValueError,
             "--cache-features on needs --strategy feature-extract without an unfreeze schedule");
    TL_CHECK(!(cached_ && config_.augment), ValueError,
             "--cache-features on needs --no-augment: augmented images differ every epoch");

    say(data_.description);
    if (options_.device.is_cuda())
      say(str("training on ", options_.device.str(), ": ", cuda::device_description(options_.device.index),
              cuda::tf32_allowed() ? ", TF32 allowed" : ""));
    say(str(model_->architecture(), ": ", model_note, "; ", tools_thousands(model_->parameter_count(true)),
            " of ", tools_thousands(model_->parameter_count()), " parameters train"));
    say(str("strategy ", plan_.strategy, ": ", plan_.reason));
    for (const optim::ParamGroup& g : optimizer_->groups())
      say(str("  group ", g.name, ": ", g.params.size(), " tensors, lr ", g.lr, ", weight decay ",
              g.weight_decay));
    say(str(config_.optimizer, ", schedule ", scheduler_->describe(), ", ", config_.epochs,
            " epochs of batch ", config_.batch_size, ", images ", pre.input_size, " px",
            config_.augment ? " with augmentation" : ""));
  }

  std::string epoch_line(const EpochRecord& r, bool best, double elapsed, double remaining) const {
    char text[512];
    std::snprintf(
        text, sizeof text,
        "epoch %lld/%lld  train loss %.4f acc %5.1f%%  val loss %.4f acc %5.1f%%%s  %.0f img/s  %s  "
        "elapsed %s  eta %s  lr",
        static_cast<long long>(r.epoch), static_cast<long long>(config_.epochs), r.train_loss,
        100 * r.train_accuracy, r.val_loss, 100 * r.val_accuracy, best ? " (best)" : "", r.images_per_second,
        format_duration(r.seconds).c_str(), format_duration(elapsed).c_str(),
        format_duration(remaining).c_str());
    std::string line = text;
    if (r.val_top5 >= 0)
      line.insert(line.find("%", line.find("val loss")) + 1, str(" top-5 ", 100 * r.val_top5, "%"));
    for (const auto& [g, lr] : r.learning_rates) {
      std::snprintf(text, sizeof text, " %s=%.3g", g.c_str(), lr);
      line += text;
    }
    return line;
  }

  static std::int64_t state_epochs(const weights::WeightsFile* f) {
    return nlohmann::json::parse(f->metadata.training_state).at("epochs_done");
  }

  static std::string tools_thousands(std::int64_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return out;
  }

  // The strategy's freezing, then every unfreeze step due by `epoch` (0-based).
  void apply_trainable(std::int64_t epoch) {
    if (unfreeze_steps_.empty()) {
      apply_freezing(*model_, plan_);
      return;
    }
    model_->freeze("*");
    for (const UnfreezeStep& s : unfreeze_steps_)
      if (s.epoch <= epoch) model_->unfreeze(s.pattern);
  }

  void unfreeze_for(std::int64_t epoch) {
    bool changed = false;
    for (const UnfreezeStep& s : unfreeze_steps_)
      if (s.epoch == epoch && epoch > 0) {
        model_->unfreeze(s.pattern);
        say(str("epoch ", epoch + 1, ": unfreezing ", s.pattern));
        changed = true;
      }
    if (changed) planner_->add_unfrozen(*optimizer_);
  }

  bool stop_requested() const { return options_.stop && options_.stop->load(); }

  // A data set of files none of which decode would otherwise train on nothing and report 0% accuracy.
  static void require_images(std::int64_t images, const char* what, const data::DataLoader& loader) {
    if (images > 0) return;
    const auto bad = loader.bad_samples();
    throw Error(str("no ", what, " image could be read: all ", loader.dataset().size(),
                    " files failed to load (the first: ",
                    bad.empty() ? std::string("none recorded") : bad.front().reason, ")"));
  }

  // ---- one epoch, uncached
  // --------------------------------------------------------------------------------------

  Accumulator train_epoch(std::int64_t epoch, std::int64_t& images) {
    const auto classes = static_cast<std::int64_t>(classes_.size());
    Accumulator acc(classes);
    model_->train();
    train_loader_->start_epoch(epoch);
    Progress progress(str("epoch ", epoch + 1, "/", config_.epochs, " train"),
                      train_loader_->batches_per_epoch());
    std::int64_t step = 0;
    while (auto batch = train_loader_->next()) {
      if (stop_requested()) return acc;
      const Tensor labels = batch->labels.to(options_.device);
      const Tensor logits = model_->forward(batch->images.to(options_.device));
      step_on(logits, labels, acc, epoch, ++step);
      images += batch->labels.numel();
      if (!options_.quiet) progress.update(step, acc.loss(), acc.accuracy(), images);
    }
    return acc;
  }

  void step_on(const Tensor& logits, const Tensor& labels, Accumulator& acc, std::int64_t epoch,
               std::int64_t step) {
    const Tensor loss = cross_entropy(logits, labels, config_.label_smoothing);
    const double value = loss.item<double>();
    if (!std::isfinite(value))
      throw DivergedError(str("the loss became ", value, " at epoch ", epoch + 1, ", step ", step,
                              "; stopping (the checkpoints of earlier epochs are kept). Lower --lr?"));
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    NoGradGuard no_grad;
    acc.add(logits.detach(), labels, value);
  }

  Accumulator evaluate() {
    Accumulator acc(static_cast<std::int64_t>(classes_.size()));
    model_->eval();
    NoGradGuard no_grad;
    val_loader_->start_epoch(0);
    while (auto batch = val_loader_->next()) {
      const Tensor labels = batch->labels.to(options_.device);
      const Tensor logits = model_->forward(batch->images.to(options_.device));
      acc.add(logits, labels, cross_entropy(logits, labels, config_.label_smoothing).item<double>());
    }
    return acc;
  }

  // ---- cached features (feature extraction without augmentation)
  // ---------------------------------------------

  // Features of every sample that loaded, and for each dataset index its row (-1: it could not be read).
  struct Cache {
    Tensor features, labels;
    std::vector<std::int64_t> row_of;
  };

  Cache extract(data::DataLoader& loader, const char* what) {
    model_->eval();
    NoGradGuard no_grad;
    loader.start_epoch(0);
    std::vector<Tensor> features, labels;
    std::vector<std::int64_t> row_of(static_cast<std::size_t>(loader.dataset().size()), -1);
    Progress progress(str("caching ", what, " features"), loader.batches_per_epoch(), /*show_metrics=*/false);
    std::int64_t done = 0, images = 0;
    while (auto batch = loader.next()) {
      // The cache stays in host memory (copy_ in concatenate brings it there); batches go up as they train.
      features.push_back(model_->head_input(batch->images.to(options_.device)));
      labels.push_back(batch->labels);
      for (const std::int64_t index : batch->indices) row_of[static_cast<std::size_t>(index)] = images++;
      if (!options_.quiet) progress.update(++done, 0, 0, images);
    }
    require_images(images, what, loader);
    return {concatenate(features), concatenate(labels), std::move(row_of)};
  }

  static Tensor concatenate(const std::vector<Tensor>& parts) {
    std::int64_t rows = 0;
    for (const Tensor& p : parts) rows += p.size(0);
    Shape shape = parts.at(0).shape();
    shape[0] = rows;
    Tensor out = empty(shape, parts[0].dtype());
    std::int64_t at = 0;
    for (const Tensor& p : parts) {
      out.narrow(0, at, p.size(0)).copy_(p);
      at += p.size(0);
    }
    return out;
  }

  Tensor head_forward(const Tensor& features) {
    Tensor h = features;
    if (Dropout* d = model_->pre_head_dropout()) h = d->forward(h);
    return model_->head().forward(h);
  }

  Accumulator train_epoch_cached(std::int64_t epoch, std::int64_t& images) {
    Accumulator acc(static_cast<std::int64_t>(classes_.size()));
    model_->train();
    // The loader's order and batches for this epoch (unreadable samples dropped from their batch, as the
    // loader does), so a cached run takes the same steps as an uncached one.
    const auto n = static_cast<std::int64_t>(train_cache_.row_of.size());
    const std::vector<std::int64_t> order =
        data::seeded_permutation(n, data::epoch_order_seed(config_.seed, epoch));
    std::int64_t step = 0;
    for (std::int64_t start = 0; start < n; start += config_.batch_size) {
      if (stop_requested()) return acc;
      std::vector<std::int64_t> rows;
      for (std::int64_t k = start; k < std::min(n, start + config_.batch_size); ++k)
        if (const std::int64_t row =
                train_cache_.row_of[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])];
            row >= 0)
          rows.push_back(row);
      if (rows.empty()) continue;
      const auto count = static_cast<std::int64_t>(rows.size());
      Tensor x = empty({count, train_cache_.features.size(1)});
      std::vector<std::int64_t> y(rows.size());
      for (std::int64_t r = 0; r < count; ++r) {
        const std::int64_t row = rows[static_cast<std::size_t>(r)];
        x.narrow(0, r, 1).copy_(train_cache_.features.narrow(0, row, 1));
        y[static_cast<std::size_t>(r)] = train_cache_.labels.data<std::int64_t>()[row];
      }
      step_on(head_forward(x.to(options_.device)), tensor(y, {count}).to(options_.device), acc, epoch,
              ++step);
      images += count;
    }
    return acc;
  }

  Accumulator evaluate_cached() {
    Accumulator acc(static_cast<std::int64_t>(classes_.size()));
    model_->eval();
    NoGradGuard no_grad;
    const Tensor labels = val_cache_.labels.to(options_.device);
    const Tensor logits = head_forward(val_cache_.features.to(options_.device));
    acc.add(logits, labels, cross_entropy(logits, labels, config_.label_smoothing).item<double>());
    return acc;
  }

  // ---- the epochs
  // -------------------------------------------------------------------------------------------------

  TrainResult loop() {
    const auto run_start = Clock::now();
    double cache_seconds = 0;
    if (cached_) {
      const auto t0 = Clock::now();
      train_cache_ = extract(*train_loader_, "training");
      val_cache_ = extract(*val_loader_, "validation");
      cache_seconds = seconds_since(t0);
      say(str("cached ", train_cache_.labels.numel(), " + ", val_cache_.labels.numel(),
              " feature vectors of width ", train_cache_.features.size(1), " in ",
              format_duration(cache_seconds), " (one pass of the frozen backbone)"));
    }
    TrainResult result;
    result.out = config_.out;
    result.strategy = plan_.strategy;
    double epoch_seconds_total = 0;
    std::int64_t epochs_run = 0;
    for (std::int64_t epoch = state_.epochs_done; epoch < config_.epochs; ++epoch) {
      unfreeze_for(epoch);
      scheduler_->apply(*optimizer_, epoch);
      const auto t0 = Clock::now();
      std::int64_t images = 0;
      const Accumulator train = cached_ ? train_epoch_cached(epoch, images) : train_epoch(epoch, images);
      if (stop_requested()) {
        result.interrupted = true;
        say(str("interrupted during epoch ", epoch + 1, "; ", config_.out, "/last.h5 holds epoch ",
                state_.epochs_done, " (continue with --resume ", config_.out, ")"));
        break;
      }
      require_images(images, "training", *train_loader_);
      const double train_seconds = seconds_since(t0);
      const Accumulator val = cached_ ? evaluate_cached() : evaluate();
      require_images(val.count(), "validation", *val_loader_);
      const double seconds = seconds_since(t0);
      epoch_seconds_total += seconds;
      ++epochs_run;

      EpochRecord r;
      r.epoch = epoch + 1;
      r.train_loss = train.loss();
      r.train_accuracy = train.accuracy();
      r.val_loss = val.loss();
      r.val_accuracy = val.accuracy();
      r.val_top5 = classes_.size() > 5 ? val.top5() : -1;
      for (const optim::ParamGroup& g : optimizer_->groups()) r.learning_rates.emplace_back(g.name, g.lr);
      r.images_per_second = train_seconds > 0 ? static_cast<double>(images) / train_seconds : 0;
      r.seconds = seconds;
      r.train_images = images;
      state_.history.push_back(r);
      state_.epochs_done = epoch + 1;

      const bool best = r.val_accuracy > state_.best_accuracy;
      // A failed write (a full disk) stops the run; every file is replaced atomically, so what the earlier
      // epochs wrote is intact and the run can continue from it once there is room.
      try {
        if (best) {
          state_.best_accuracy = r.val_accuracy;
          state_.best_epoch = r.epoch;
          state_.best_confusion = val.confusion();
          save_checkpoint(config_.out + "/best.h5", *model_, classes_, config_, "", nullptr);
        }
        save_checkpoint(config_.out + "/last.h5", *model_, classes_, config_,
                        state_json(config_, state_, *model_), optimizer_.get());
        write_metrics(config_.out, state_.history);
        write_curves(config_.out + "/curves.svg", state_.history);
      } catch (const Error& e) {
        throw Error(str("epoch ", r.epoch, ": ", e.what(),
                        " (the files of the earlier epochs are intact; make room, ",
                        "then continue with --resume ", config_.out, ")"));
      }

      const double remaining =
          (config_.epochs - epoch - 1) * (epoch_seconds_total / static_cast<double>(epochs_run));
      say(epoch_line(r, best, seconds_since(run_start), remaining));
    }
    if (cached_ && epochs_run > 0) {
      const double per_epoch = epoch_seconds_total / static_cast<double>(epochs_run);
      char text[256];
      std::snprintf(
          text, sizeof text,
          "cached features: an epoch took %.3f s; the backbone pass every uncached epoch repeats took "
          "%.1f s (%.0fx faster per epoch)",
          per_epoch, cache_seconds, cache_seconds / std::max(per_epoch, 1e-9));
      say(text);
    }
    result.history = state_.history;
    result.best_epoch = state_.best_epoch;
    result.best_val_accuracy = state_.best_accuracy;
    result.bad_samples = train_loader_->bad_samples();
    for (const auto& b : val_loader_->bad_samples()) result.bad_samples.push_back(b);
    if (!state_.best_confusion.empty()) {
      write_confusion_csv(config_.out + "/confusion.csv", classes_, state_.best_confusion);
      // A table wider than a terminal helps nobody: beyond 20 classes it is only in the CSV.
      if (classes_.size() > 20)
        say(str("the validation confusion matrix of the best epoch is in ", config_.out, "/confusion.csv"));
      else if (!options_.quiet)
        std::printf("%s", confusion_table(classes_, state_.best_confusion).c_str());
    }
    if (!result.bad_samples.empty()) {
      say(str(result.bad_samples.size(), " file(s) could not be read and were skipped:"));
      for (const auto& b : result.bad_samples) say("  " + b.reason);
    }
    char best[64];
    std::snprintf(best, sizeof best, "%.1f%%", 100 * state_.best_accuracy);
    say(str("best epoch ", state_.best_epoch, ": validation accuracy ", best, " -> ", config_.out,
            "/best.h5"));
    return result;
  }

  TrainConfig config_;
  RunOptions options_;
  Data data_;
  std::vector<std::string> classes_;
  std::shared_ptr<models::Model> model_;
  StrategyPlan plan_;
  std::vector<UnfreezeStep> unfreeze_steps_;
  std::unique_ptr<optim::GroupPlanner> planner_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::Scheduler> scheduler_;
  std::unique_ptr<data::DataLoader> train_loader_, val_loader_;
  bool cached_ = false;
  Cache train_cache_, val_cache_;
  RunState state_;
};

}  // namespace

TrainResult train(const TrainConfig& config, const RunOptions& options) {
  return Run(config, options).start();
}

TrainResult resume(const std::string& run_folder, std::int64_t epochs, const RunOptions& options) {
  const std::string last = run_folder + "/last.h5";
  TL_CHECK(fs::exists(last), Error, "--resume ", run_folder,
           ": no last.h5 in that folder (nothing to resume)");
  const weights::WeightsFile file = weights::load_weights(last);
  TL_CHECK(!file.metadata.training_state.empty(), Error, last,
           " holds no training state (not a tl_train checkpoint)");
  const nlohmann::json state = nlohmann::json::parse(file.metadata.training_state);
  TrainConfig config = config_from_json(state.at("config").dump());
  config.out = run_folder;
  TL_CHECK(epochs >= 0, ValueError, "--resume-epochs must be at least 1, got ", epochs);
  if (epochs > 0) config.epochs = epochs;
  validate(config);
  return Run(config, options).resume_from(file, state);
}

}  // namespace tl::train
