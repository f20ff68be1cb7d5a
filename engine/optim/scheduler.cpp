// The schedules as closed forms of the epoch, and the --scheduler parser. Closed forms rather than torch's
// chained updates (lr *= ratio each epoch) because a resumed run must land on the same lr from the epoch
// alone; the two agree to rounding (tests hold them to 1e-12 of torch's values).
#include "engine/optim/scheduler.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <sstream>
#include <system_error>

#include "engine/error.h"

namespace tl::optim {
namespace {

// The shortest text that reads back as the same double ("0.1", not "0.10000000000000001").
std::string number(double v) {
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, result.ptr);
}

void check_epoch(std::int64_t epoch) {
  TL_CHECK(epoch >= 0, ValueError, "schedule: epoch ", epoch, " is negative (epochs count from 0)");
}

class Constant final : public Scheduler {
 public:
  double factor(std::int64_t epoch) const override {
    check_epoch(epoch);
    return 1.0;
  }
  std::string describe() const override { return "none"; }
};

class Step final : public Scheduler {
 public:
  Step(std::int64_t step_size, double gamma) : step_size_(step_size), gamma_(gamma) {}
  double factor(std::int64_t epoch) const override {
    check_epoch(epoch);
    return std::pow(gamma_, static_cast<double>(epoch / step_size_));
  }
  std::string describe() const override { return str("step:", step_size_, ":", number(gamma_)); }

 private:
  std::int64_t step_size_;
  double gamma_;
};

class MultiStep final : public Scheduler {
 public:
  MultiStep(std::vector<std::int64_t> milestones, double gamma)
      : milestones_(std::move(milestones)), gamma_(gamma) {}
  double factor(std::int64_t epoch) const override {
    check_epoch(epoch);
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
    return std::pow(gamma_, static_cast<double>(passed));
  }
  std::string describe() const override {
    std::ostringstream out;
    out << "multistep:";
    for (std::size_t i = 0; i < milestones_.size(); ++i) out << (i ? "," : "") << milestones_[i];
    out << ":" << number(gamma_);
    return out.str();
  }

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

class Cosine final : public Scheduler {
 public:
  Cosine(std::int64_t epochs, double min_factor) : epochs_(epochs), min_factor_(min_factor) {}
  double factor(std::int64_t epoch) const override {
    check_epoch(epoch);
    const double c =
        (1.0 + std::cos(std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(epochs_))) / 2;
    return min_factor_ + (1.0 - min_factor_) * c;
  }
  std::string describe() const override {
    return min_factor_ == 0 ? "cosine" : str("cosine:", number(min_factor_));
  }

 private:
  std::int64_t epochs_;
  double min_factor_;
};

class Warmup final : public Scheduler {
 public:
  Warmup(std::int64_t epochs, double start_factor, std::unique_ptr<Scheduler> after)
      : epochs_(epochs), start_factor_(start_factor), after_(std::move(after)) {}
  double factor(std::int64_t epoch) const override {
    check_epoch(epoch);
    if (epoch >= epochs_) return after_->factor(epoch - epochs_);
    // torch's LinearLR closed form, in its order of operations.
    return start_factor_ + (1.0 - start_factor_) * static_cast<double>(epoch) / static_cast<double>(epochs_);
  }
  std::string describe() const override {
    const std::string start =
        start_factor_ == kDefaultWarmupStartFactor ? std::string() : str(":", number(start_factor_));
    return str("warmup:", epochs_, start, "+", after_->describe());
  }

 private:
  std::int64_t epochs_;
  double start_factor_;
  std::unique_ptr<Scheduler> after_;
};

// ---- parsing
// ------------------------------------------------------------------------------------------------

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out(1);
  for (char c : text) {
    if (c == sep)
      out.emplace_back();
    else
      out.back() += c;
  }
  return out;
}

// Builds the schedules' own errors (ValueError from the constructors) and the parser's with one prefix.
class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw ValueError(str("--scheduler '", text_, "': ", why));
  }

  std::int64_t integer(const std::string& s, const char* what) const {
    std::int64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size())
      fail(str(what, " '", s, "' is not a whole number"));
    return v;
  }

  double real(const std::string& s, const char* what) const {
    double v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v))
      fail(str(what, " '", s, "' is not a number"));
    return v;
  }

  // Runs a constructor, re-throwing its ValueError with the text in front.
  template <typename Fn>
  std::unique_ptr<Scheduler> build(Fn&& fn) const {
    try {
      return fn();
    } catch (const ValueError& e) {
      std::string why = e.what();
      const std::size_t colon = why.find(": ");  // drop the constructor's own "step_schedule: " prefix
      fail(colon == std::string::npos ? why : why.substr(colon + 2));
    }
  }

  std::unique_ptr<Scheduler> schedule(const std::string& part, std::int64_t epochs) const {
    const std::vector<std::string> f = split(part, ':');
    const std::string& kind = f[0];
    if (kind == "none") {
      if (f.size() != 1) fail("'none' takes no arguments");
      return constant_schedule();
    }
    if (kind == "step") {
      if (f.size() != 3) fail("expected step:STEP:GAMMA, e.g. step:7:0.1");
      const std::int64_t step = integer(f[1], "step size");
      const double gamma = real(f[2], "gamma");
      return build([&] { return step_schedule(step, gamma); });
    }
    if (kind == "multistep") {
      if (f.size() != 3) fail("expected multistep:M1,M2,...:GAMMA, e.g. multistep:30,60:0.1");
      std::vector<std::int64_t> milestones;
      for (const std::string& m : split(f[1], ',')) milestones.push_back(integer(m, "milestone"));
      const double gamma = real(f[2], "gamma");
      return build([&] { return multistep_schedule(milestones, gamma); });
    }
    if (kind == "cosine") {
      if (f.size() > 2) fail("expected cosine or cosine:MIN_FACTOR, e.g. cosine:0.01");
      const double min_factor = f.size() == 2 ? real(f[1], "minimum factor") : 0.0;
      return build([&] { return cosine_schedule(epochs, min_factor); });
    }
    if (kind == "warmup") fail("only one warm-up, at the front (warmup:EPOCHS[:START_FACTOR]+SCHEDULE)");
    fail(
        str("unknown schedule '", kind,
            "' (expected none, step:STEP:GAMMA, multistep:M1,M2,...:GAMMA or cosine[:MIN_FACTOR], optionally "
            "prefixed warmup:EPOCHS[:START_FACTOR]+)"));
  }

 private:
  const std::string& text_;
};

}  // namespace

void Scheduler::apply(Optimizer& optimizer, std::int64_t epoch) const {
  const double f = factor(epoch);
  for (ParamGroup& g : optimizer.groups()) g.lr = g.initial_lr * f;
}

std::unique_ptr<Scheduler> constant_schedule() {
  return std::make_unique<Constant>();
}

std::unique_ptr<Scheduler> step_schedule(std::int64_t step_size, double gamma) {
  TL_CHECK(step_size >= 1, ValueError, "step_schedule: step size must be at least 1, got ", step_size);
  TL_CHECK(std::isfinite(gamma) && gamma > 0, ValueError, "step_schedule: gamma must be positive, got ",
           gamma);
  return std::make_unique<Step>(step_size, gamma);
}

std::unique_ptr<Scheduler> multistep_schedule(std::vector<std::int64_t> milestones, double gamma) {
  TL_CHECK(!milestones.empty(), ValueError, "multistep_schedule: needs at least one milestone");
  for (std::size_t i = 0; i < milestones.size(); ++i) {
    TL_CHECK(milestones[i] >= 1, ValueError, "multistep_schedule: milestones must be at least 1, got ",
             milestones[i]);
    TL_CHECK(i == 0 || milestones[i] > milestones[i - 1], ValueError,
             "multistep_schedule: milestones must increase, got ", milestones[i - 1], " then ",
             milestones[i]);
  }
  TL_CHECK(std::isfinite(gamma) && gamma > 0, ValueError, "multistep_schedule: gamma must be positive, got ",
           gamma);
  return std::make_unique<MultiStep>(std::move(milestones), gamma);
}

std::unique_ptr<Scheduler> cosine_schedule(std::int64_t epochs, double min_factor) {
  TL_CHECK(epochs >= 1, ValueError, "cosine_schedule: needs at least 1 epoch to anneal over, got ", epochs);
  TL_CHECK(std::isfinite(min_factor) && min_factor >= 0 && min_factor <= 1, ValueError,
           "cosine_schedule: minimum factor must be in [0, 1], got ", min_factor);
  return std::make_unique<Cosine>(epochs, min_factor);
}

std::unique_ptr<Scheduler> warmup_schedule(std::int64_t warmup_epochs, double start_factor,
                                           std::unique_ptr<Scheduler> after) {
  TL_CHECK(warmup_epochs >= 1, ValueError, "warmup_schedule: warm-up epochs must be at least 1, got ",
           warmup_epochs);
  TL_CHECK(std::isfinite(start_factor) && start_factor > 0 && start_factor <= 1, ValueError,
           "warmup_schedule: start factor must be in (0, 1], got ", start_factor);
  TL_CHECK(after != nullptr, ValueError, "warmup_schedule: needs a schedule to follow the warm-up");
  return std::make_unique<Warmup>(warmup_epochs, start_factor, std::move(after));
}

std::unique_ptr<Scheduler> parse_schedule(const std::string& text, std::int64_t epochs) {
  const Parser parser(text);
  if (text.rfind("warmup", 0) != 0) return parser.schedule(text, epochs);

  const std::size_t plus = text.find('+');
  const std::vector<std::string> f = split(text.substr(0, plus), ':');
  if (f.size() < 2 || f.size() > 3)
    parser.fail("expected warmup:EPOCHS[:START_FACTOR]+SCHEDULE, e.g. warmup:2+cosine");
  const std::int64_t warmup = parser.integer(f[1], "warm-up epochs");
  const double start = f.size() == 3 ? parser.real(f[2], "start factor") : kDefaultWarmupStartFactor;
  if (warmup < 1) parser.fail(str("warm-up epochs must be at least 1, got ", warmup));
  std::unique_ptr<Scheduler> after;
  if (plus == std::string::npos) {
    after = constant_schedule();
  } else {
    const std::string rest = text.substr(plus + 1);
    if (rest.rfind("cosine", 0) == 0 && epochs - warmup < 1)
      parser.fail(str("the warm-up (", warmup, " epochs) leaves no epochs to anneal over in a run of ",
                      epochs, " epochs"));
    after = parser.schedule(rest, epochs - warmup);
  }
  return parser.build([&] { return warmup_schedule(warmup, start, std::move(after)); });
}

}  // namespace tl::optim
