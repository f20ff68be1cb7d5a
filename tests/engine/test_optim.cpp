// Optimizers, schedules and parameter groups. The updates and schedules are held to torch.optim 1.13 on the
// fixtures of tests/fixtures/make_optim_fixtures.py (every step, float64 to 1e-12 and float32 to 1e-6), a
// state round trip must continue bit for bit, and the groups are built on a real ResNet-18.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "engine/error.h"
#include "engine/npy.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/param_groups.h"
#include "engine/optim/scheduler.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops.h"
#include "models/registry.h"
#include "tests/support/fixtures.h"

namespace tl::optim {
namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) out.push_back(part);
  return out;
}

// Runs `fn`, expecting a ValueError whose message contains every fragment.
template <typename Fn>
void expect_value_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no ValueError; expected one mentioning '" << fragments.front() << "'";
  } catch (const ValueError& e) {
    for (const std::string& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "'" << e.what() << "' lacks '" << f << "'";
  }
}

// ---- the torch fixtures: one line of cases.txt
// ----------------------------------------------------------------

struct Case {
  std::string name;
  std::map<std::string, std::string> keys;                             // single-valued keys
  std::map<std::string, std::vector<std::vector<std::string>>> lists;  // group=, join=, newgroup=, nograd=
  std::string get(const std::string& k, const std::string& fallback) const {
    const auto it = keys.find(k);
    return it == keys.end() ? fallback : it->second;
  }
  double number(const std::string& k, double fallback) const {
    const auto it = keys.find(k);
    return it == keys.end() ? fallback : std::stod(it->second);
  }
};

std::map<std::string, Case> read_cases(const std::string& path) {
  std::map<std::string, Case> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> tokens = split(line, ' ');
    if (tokens.empty()) continue;
    Case c;
    c.name = tokens[0];
    for (std::size_t i = 1; i < tokens.size(); ++i) {
      const std::size_t eq = tokens[i].find('=');
      const std::string k = tokens[i].substr(0, eq), v = tokens[i].substr(eq + 1);
      if (k == "group" || k == "join" || k == "newgroup" || k == "nograd")
        c.lists[k].push_back(split(v, ','));
      else
        c.keys[k] = v;
    }
    out[c.name] = c;
  }
  return out;
}

// The parameters of a case and their fixture arrays.
struct CaseData {
  std::map<std::string, Tensor> params, grads, expect;  // grads / expect: [steps, *shape]
};

CaseData load_case(const std::string& folder) {
  CaseData d;
  for (const char* n : {"a", "b", "c", "d", "e"}) {
    const std::string base = folder + "/" + n;
    d.params[n] = load_npy(base + ".init.npy").set_requires_grad(true);
    d.grads[n] = load_npy(base + ".grads.npy");
    d.expect[n] = load_npy(base + ".expect.npy");
  }
  return d;
}

Tensor row(const Tensor& stacked, std::int64_t i) {
  return stacked.narrow(0, i, 1).squeeze(0).clone();
}

std::unique_ptr<Optimizer> make_optimizer(const Case& c, std::vector<ParamGroup> groups) {
  const std::string kind = c.get("kind", "");
  if (kind == "sgd") {
    SgdOptions o;
    o.momentum = c.number("momentum", 0);
    o.dampening = c.number("dampening", 0);
    o.nesterov = c.get("nesterov", "0") == "1";
    return make_sgd(std::move(groups), o);
  }
  AdamOptions o;
  o.betas = {c.number("beta1", 0.9), c.number("beta2", 0.999)};
  o.eps = c.number("eps", 1e-8);
  o.decoupled_weight_decay = kind == "adamw";
  return make_adam(std::move(groups), o);
}

std::vector<ParamGroup> initial_groups(const Case& c, const CaseData& d) {
  std::vector<ParamGroup> groups;
  for (const auto& f : c.lists.at("group")) {
    ParamGroup g;
    g.name = f[0];
    g.lr = std::stod(f[1]);
    g.weight_decay = std::stod(f[2]);
    for (const std::string& p : split(f[3], '/')) g.params.emplace_back(p, d.params.at(p));
    for (std::size_t i = 4; i < f.size(); ++i) {
      const std::vector<std::string> kv = split(f[i], ':');
      if (kv[0] == "momentum") g.momentum = std::stod(kv[1]);
      if (kv[0] == "betas") {
        const std::vector<std::string> b = split(kv[1], '/');
        g.betas = std::array<double, 2>{std::stod(b[0]), std::stod(b[1])};
      }
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

bool at_step(const Case& c, const std::string& list, std::size_t field, std::int64_t step,
             const std::string& value) {
  const auto it = c.lists.find(list);
  if (it == c.lists.end()) return false;
  for (const auto& f : it->second)
    if (std::stoll(f[0]) == step && f[field] == value) return true;
  return false;
}

// Runs a case from its initial parameters; returns every parameter after every step ([step][param] values).
// With round_trip, the optimizer is rebuilt before step `roundtrip` from perturbed groups and load_state.
std::vector<std::map<std::string, std::vector<double>>> run_case(const Case& c, const std::string& folder,
                                                                 bool round_trip) {
  CaseData d = load_case(folder);
  std::unique_ptr<Optimizer> opt = make_optimizer(c, initial_groups(c, d));
  std::unique_ptr<Scheduler> schedule;
  if (c.keys.count("schedule"))
    schedule = parse_schedule(c.get("schedule", ""), std::stoll(c.get("epochs", "0")));
  const std::int64_t steps = std::stoll(c.get("steps", "0"));
  const std::int64_t per_epoch = std::stoll(c.get("steps_per_epoch", std::to_string(steps)));
  const std::int64_t roundtrip_at = round_trip ? std::stoll(c.get("roundtrip", "-1")) : -1;

  std::vector<std::map<std::string, std::vector<double>>> out;
  for (std::int64_t step = 0; step < steps; ++step) {
    if (c.lists.count("join"))
      for (const auto& f : c.lists.at("join"))
        if (std::stoll(f[0]) == step) opt->add_params(f[2], {{f[1], d.params.at(f[1])}});
    if (c.lists.count("newgroup"))
      for (const auto& f : c.lists.at("newgroup"))
        if (std::stoll(f[0]) == step) {
          ParamGroup g;
          g.name = f[1];
          g.lr = std::stod(f[2]);
          g.weight_decay = std::stod(f[3]);
          g.params = {{f[4], d.params.at(f[4])}};
          opt->add_group(g);
        }
    if (step == roundtrip_at) {
      const StateDict state = opt->state();
      std::vector<ParamGroup> groups = opt->groups();
      for (ParamGroup& g : groups) g.lr *= 3;  // load_state must put the saved lr (and initial_lr) back
      opt = make_optimizer(c, std::move(groups));
      opt->load_state(state);
    }
    if (schedule && step % per_epoch == 0) schedule->apply(*opt, step / per_epoch);

    std::set<std::string> held;
    for (const ParamGroup& g : opt->groups())
      for (const auto& [n, _] : g.params) held.insert(n);
    for (const auto& [n, p] : d.params) {
      if (held.count(n) && !at_step(c, "nograd", 1, step, n))
        p.set_grad(row(d.grads.at(n), step));
      else
        p.zero_grad();
    }
    opt->step();
    auto& after = out.emplace_back();
    for (const auto& [n, p] : d.params) after[n] = p.to_vector<double>();
  }
  return out;
}

// The fixture's cases; cases.txt must list exactly these (test discovery runs before the fixture exists).
std::vector<std::string> case_names() {
  std::vector<std::string> out;
  for (const char* base :
       {"sgd_plain", "sgd_momentum", "sgd_nesterov", "adam", "adam_wd", "adamw", "groups_sgd", "groups_adamw",
        "groups_adam", "sched_step", "sched_multistep", "sched_cosine", "sched_cosine_min", "sched_warmup"})
    for (const char* bits : {"_64", "_32"}) out.push_back(std::string(base) + bits);
  return out;
}

class OptimTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimTorch, EveryStepMatchesTorch) {
  TL_REQUIRE_FIXTURE(cases_file, "optim/cases.txt");
  const auto cases = read_cases(cases_file);
  ASSERT_TRUE(cases.count(GetParam())) << GetParam() << " is not in " << cases_file;
  const Case& c = cases.at(GetParam());
  TL_REQUIRE_FIXTURE(folder, "optim/" + c.name);
  const CaseData d = load_case(folder);
  const bool f64 = c.get("dtype", "") == "float64";
  // Relative to max(|expected|, 1): the parameters are of order 1.
  const double tolerance = f64 ? 1e-12 : 1e-6;

  const auto straight = run_case(c, folder, false);
  ASSERT_FALSE(HasFailure());
  const std::int64_t steps = std::stoll(c.get("steps", "0"));
  ASSERT_EQ(static_cast<std::int64_t>(straight.size()), steps);
  double worst = 0;
  for (std::int64_t step = 0; step < steps; ++step) {
    for (const auto& [n, values] : straight[step]) {
      const std::vector<double> expected = row(d.expect.at(n), step).to_vector<double>();
      ASSERT_EQ(values.size(), expected.size());
      for (std::size_t i = 0; i < values.size(); ++i) {
        const double err = std::abs(values[i] - expected[i]) / std::max(std::abs(expected[i]), 1.0);
        worst = std::max(worst, err);
        ASSERT_LE(err, tolerance) << c.name << ": parameter " << n << "[" << i << "] after step " << step + 1
                                  << " is " << values[i] << ", torch has " << expected[i];
      }
    }
  }
  RecordProperty("worst_relative_error", str(worst));

  if (c.keys.count("roundtrip")) {
    const auto resumed = run_case(c, folder, true);
    // Bit for bit: a resumed run is the same run.
    for (std::int64_t step = 0; step < steps; ++step)
      for (const auto& [n, values] : straight[step])
        ASSERT_EQ(resumed[step].at(n), values)
            << c.name << ": " << n << " after step " << step + 1 << " differs after the state round trip";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, OptimTorch, ::testing::ValuesIn(case_names()),
                         [](const auto& info) { return info.param; });

TEST(OptimTorchFixture, ListsTheCasesThisTestRuns) {
  TL_REQUIRE_FIXTURE(cases_file, "optim/cases.txt");
  std::vector<std::string> listed;
  for (const auto& [name, _] : read_cases(cases_file)) listed.push_back(name);
  std::vector<std::string> expected = case_names();
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed, expected);
}

// ---- schedules
// ----------------------------------------------------------------------------------------------

TEST(ScheduleTorch, FactorsMatchTorchSchedulersEveryEpoch) {
  TL_REQUIRE_FIXTURE(list, "optim/schedules.txt");
  std::ifstream in(list);
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    const std::vector<std::string> f = split(line, ' ');
    ASSERT_EQ(f.size(), 4u) << line;
    const std::int64_t epochs = std::stoll(f[2]);
    std::vector<double> bases;
    for (const std::string& b : split(f[3], ',')) bases.push_back(std::stod(b));
    const auto schedule = parse_schedule(f[1], epochs);
    EXPECT_EQ(schedule->describe(), f[1]);
    const auto reparsed = parse_schedule(schedule->describe(), epochs);
    const Tensor torch_lrs = load_npy(::tl::testing::fixture_path("optim/schedules/" + f[0] + ".npy"));
    ASSERT_EQ(torch_lrs.shape(), (Shape{epochs + 3, static_cast<std::int64_t>(bases.size())})) << f[0];
    const std::vector<double> lrs = torch_lrs.to_vector<double>();
    for (std::int64_t e = 0; e < epochs + 3; ++e) {
      EXPECT_EQ(reparsed->factor(e), schedule->factor(e)) << f[1] << " epoch " << e;
      for (std::size_t g = 0; g < bases.size(); ++g) {
        const double torch_lr = lrs[e * bases.size() + g];
        EXPECT_NEAR(bases[g] * schedule->factor(e), torch_lr, 1e-12 * bases[g])
            << f[1] << " over " << epochs << " epochs, epoch " << e << ", base lr " << bases[g];
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(Schedule, ApplyScalesEveryGroupFromItsInitialLr) {
  ParamGroup a, b;
  a.name = "a";
  a.lr = 0.1;
  a.params = {{"x", zeros({2}).set_requires_grad(true)}};
  b.name = "b";
  b.lr = 0.01;
  b.params = {{"y", zeros({3}).set_requires_grad(true)}};
  auto opt = make_sgd({a, b}, {});
  const auto schedule = step_schedule(2, 0.5);
  schedule->apply(*opt, 5);  // 0.5^2
  EXPECT_DOUBLE_EQ(opt->group("a").lr, 0.025);
  EXPECT_DOUBLE_EQ(opt->group("b").lr, 0.0025);
  EXPECT_DOUBLE_EQ(opt->group("a").initial_lr, 0.1);
  schedule->apply(*opt, 0);
  EXPECT_DOUBLE_EQ(opt->group("b").lr, 0.01);
}

TEST(Schedule, ClosedForms) {
  EXPECT_EQ(constant_schedule()->factor(100), 1.0);
  const auto multi = multistep_schedule({2, 4}, 0.1);
  EXPECT_EQ(multi->factor(1), 1.0);
  EXPECT_DOUBLE_EQ(multi->factor(2), 0.1);
  EXPECT_DOUBLE_EQ(multi->factor(4), 0.1 * 0.1);
  const auto cosine = cosine_schedule(4, 0.2);
  EXPECT_DOUBLE_EQ(cosine->factor(0), 1.0);
  EXPECT_DOUBLE_EQ(cosine->factor(2), 0.6);
  EXPECT_DOUBLE_EQ(cosine->factor(4), 0.2);
  const auto warm = warmup_schedule(4, 0.2, step_schedule(1, 0.5));
  EXPECT_DOUBLE_EQ(warm->factor(0), 0.2);
  EXPECT_DOUBLE_EQ(warm->factor(2), 0.6);
  EXPECT_DOUBLE_EQ(warm->factor(4), 1.0);  // the second schedule's epoch 0
  EXPECT_DOUBLE_EQ(warm->factor(6), 0.25);
  EXPECT_EQ(warm->describe(), "warmup:4:0.2+step:1:0.5");
  EXPECT_EQ(parse_schedule("warmup:3", 10)->describe(), "warmup:3+none");
  EXPECT_DOUBLE_EQ(parse_schedule("warmup:3", 10)->factor(0), 1.0 / 3.0);
  EXPECT_EQ(parse_schedule("cosine:0.01", 10)->describe(), "cosine:0.01");
  expect_value_error([&] { warm->factor(-1); }, {"epoch -1"});
}

TEST(ScheduleParse, ErrorsNameTheTextAndTheProblem) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"step:0:0.1", "step size must be at least 1"},
      {"step:2", "expected step:STEP:GAMMA"},
      {"step:x:0.1", "step size 'x' is not a whole number"},
      {"step:2:-1", "gamma must be positive"},
      {"step:2:0.1x", "gamma '0.1x' is not a number"},
      {"multistep:3,2:0.1", "milestones must increase"},
      {"multistep:0,2:0.1", "milestones must be at least 1"},
      {"multistep:,2:0.1", "milestone '' is not a whole number"},
      {"cosine:2", "minimum factor must be in [0, 1]"},
      {"cosine:nan", "minimum factor 'nan' is not a number"},
      {"warmup:0+cosine", "warm-up epochs must be at least 1"},
      {"warmup:2:0+cosine", "start factor must be in (0, 1]"},
      {"warmup:10+cosine", "leaves no epochs to anneal over"},
      {"warmup+cosine", "expected warmup:EPOCHS"},
      {"warmup:1+warmup:1+none", "only one warm-up"},
      {"none:1", "'none' takes no arguments"},
      {"exponential:0.9", "unknown schedule 'exponential'"},
      {"", "unknown schedule ''"},
  };
  for (const auto& [text, why] : bad)
    expect_value_error([&text = text] { parse_schedule(text, 10); }, {"--scheduler '" + text + "': ", why});
  expect_value_error([] { parse_schedule("cosine", 0); }, {"--scheduler 'cosine'", "at least 1 epoch"});
}

// ---- kernels
// ------------------------------------------------------------------------------------------------

// The OpenMP split must not change a value: one call over many elements equals calls on small chunks.
TEST(OptimKernels, ParallelUpdatesEqualSerialChunks) {
  const std::int64_t n = 4 * kernels::cpu::kParallelGrain + 7, chunk = 1000;
  std::vector<float> g(n), p0(n);
  for (std::int64_t i = 0; i < n; ++i) {
    g[i] = std::sin(0.37f * static_cast<float>(i));
    p0[i] = std::cos(0.11f * static_cast<float>(i));
  }
  const kernels::Context ctx = kernels::Context::current();
  kernels::AdamStep a;
  a.lr = 1e-3;
  a.weight_decay = 0.01;
  a.step = 3;
  std::vector<float> p1 = p0, m1(n, 0.1f), v1(n, 0.2f);
  kernels::adam_update<float>(ctx, a, n, p1.data(), g.data(), m1.data(), v1.data());
  std::vector<float> p2 = p0, m2(n, 0.1f), v2(n, 0.2f);
  for (std::int64_t i = 0; i < n; i += chunk)
    kernels::adam_update<float>(ctx, a, std::min(chunk, n - i), p2.data() + i, g.data() + i, m2.data() + i,
                                v2.data() + i);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(v1, v2);

  kernels::SgdStep s;
  s.lr = 0.1;
  s.momentum = 0.9;
  s.nesterov = true;
  std::vector<float> q1 = p0, b1(n, 0.5f), q2 = p0, b2(n, 0.5f);
  kernels::sgd_update<float>(ctx, s, n, q1.data(), g.data(), b1.data());
  for (std::int64_t i = 0; i < n; i += chunk)
    kernels::sgd_update<float>(ctx, s, std::min(chunk, n - i), q2.data() + i, g.data() + i, b2.data() + i);
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(b1, b2);
}

TEST(OptimKernels, SgdFirstStepSetsTheBufferToTheGradient) {
  const kernels::Context ctx = kernels::Context::current();
  kernels::SgdStep s;
  s.lr = 0.5;
  s.momentum = 0.9;
  s.dampening = 0.5;
  s.first_step = true;
  double p[2] = {1.0, 2.0}, g[2] = {0.25, -1.0}, buf[2] = {NAN, NAN};  // the buffer is written, never read
  kernels::sgd_update<double>(ctx, s, 2, p, g, buf);
  EXPECT_EQ(buf[0], 0.25);  // not (1 - dampening) * g: torch clones d on the first step
  EXPECT_EQ(buf[1], -1.0);
  EXPECT_EQ(p[0], 1.0 - 0.5 * 0.25);
  EXPECT_EQ(p[1], 2.0 + 0.5);
}

// ---- optimizer state and errors
// -----------------------------------------------------------------------------

struct TwoGroups {
  Tensor w = tensor(std::vector<double>{1, 2, 3, 4}, {2, 2}).set_requires_grad(true);
  Tensor b = tensor(std::vector<double>{0.5, -0.5}, {2}).set_requires_grad(true);
  std::vector<ParamGroup> groups() const {
    ParamGroup g0, g1;
    g0.name = "g0";
    g0.lr = 0.1;
    g0.weight_decay = 0.01;
    g0.params = {{"w", w}};
    g1.name = "g1";
    g1.lr = 0.01;
    g1.params = {{"b", b}};
    return {g0, g1};
  }
  void set_grads() const {
    w.set_grad(tensor(std::vector<double>{0.1, -0.2, 0.3, -0.4}, {2, 2}));
    b.set_grad(tensor(std::vector<double>{1, 2}, {2}));
  }
};

TEST(OptimState, EntriesAreNamedByParameterAndGroup) {
  TwoGroups t;
  auto adam = make_adam(t.groups(), {});
  EXPECT_EQ(adam->kind(), "adam");
  t.set_grads();
  adam->step();
  adam->step();
  const StateDict s = adam->state();
  std::vector<std::string> names;
  for (const auto& [n, _] : s) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"group.g0.lr", "group.g0.initial_lr", "group.g1.lr",
                                             "group.g1.initial_lr", "w.exp_avg", "w.exp_avg_sq", "w.step",
                                             "b.exp_avg", "b.exp_avg_sq", "b.step"}));
  EXPECT_EQ(s.at("w.step").dtype(), DType::Int64);
  EXPECT_EQ(s.at("w.step").item<std::int64_t>(), 2);
  EXPECT_EQ(s.at("group.g1.lr").item<double>(), 0.01);
  EXPECT_EQ(s.at("b.exp_avg").shape(), (Shape{2}));
  // A snapshot: stepping on does not change it.
  const double before = s.at("w.exp_avg").to_vector<double>()[0];
  adam->step();
  EXPECT_EQ(s.at("w.exp_avg").to_vector<double>()[0], before);

  auto sgd = make_sgd(t.groups(), SgdOptions{0.9, 0, false});
  sgd->step();
  EXPECT_TRUE(sgd->state().contains("w.momentum_buffer"));
  EXPECT_EQ(make_adam(t.groups(), AdamOptions{{0.9, 0.999}, 1e-8, true})->kind(), "adamw");
}

TEST(OptimState, LoadStateRejectsWhatDoesNotFitAndChangesNothing) {
  TwoGroups t;
  auto adam = make_adam(t.groups(), {});
  t.set_grads();
  adam->step();
  const StateDict good = adam->state();
  const auto with = [&](const std::string& name, const Tensor& value) {
    StateDict s;
    for (const auto& [n, v] : good)
      if (n != name) s.insert(n, v);
    if (value.defined()) s.insert(name, value);
    return s;
  };
  const auto rejects = [&](const StateDict& s, const std::vector<std::string>& fragments) {
    expect_value_error([&] { adam->load_state(s); }, fragments);
  };
  rejects(with("w.exp_avg", zeros({4}, DType::Float64)), {"'w.exp_avg'", "[4]", "[2, 2]"});
  rejects(with("zz.exp_avg", zeros({2}, DType::Float64)), {"'zz.exp_avg'", "parameter 'zz'", "no group"});
  rejects(with("group.nope.lr", tensor(std::vector<double>{1}, {1})), {"group 'nope'", "'g0', 'g1'"});
  rejects(with("group.g1.lr", Tensor()), {"group.g1.lr", "group 'g1'"});
  rejects(with("b.exp_avg_sq", Tensor()), {"'b.exp_avg_sq' is missing"});
  rejects(with("w.momentum_buffer", zeros({2, 2}, DType::Float64)), {"'w.momentum_buffer'", "adam state"});
  rejects(with("w.step", tensor(std::vector<std::int64_t>{0}, {1})), {"'w.step' is 0"});
  rejects(with("group.g0.lr", tensor(std::vector<double>{-1}, {1})), {"'group.g0.lr' is -1"});

  // All or nothing: a state with a new lr and one bad entry leaves the lr alone.
  StateDict partly = with("w.exp_avg", zeros({3}, DType::Float64));
  partly.set("group.g0.lr", tensor(std::vector<double>{42}, {1}));
  rejects(partly, {"'w.exp_avg'"});
  EXPECT_EQ(adam->group("g0").lr, 0.1);

  auto sgd = make_sgd(t.groups(), SgdOptions{0.9, 0, false});
  expect_value_error([&] { sgd->load_state(good); }, {"'w.exp_avg' is not an entry of sgd state"});
}

TEST(OptimState, LoadingFreshStateForgetsTheMoments) {
  TwoGroups t;
  auto sgd = make_sgd(t.groups(), SgdOptions{0.9, 0, false});
  const StateDict fresh = sgd->state();
  t.set_grads();
  sgd->step();
  sgd->load_state(fresh);  // the buffers go: the next step is a first step again
  EXPECT_FALSE(sgd->state().contains("w.momentum_buffer"));
}

TEST(OptimErrors, GroupsAndParametersAreChecked) {
  TwoGroups t;
  auto opt = make_sgd(t.groups(), {});
  const Tensor extra = zeros({3}, DType::Float64).set_requires_grad(true);
  expect_value_error([&] { opt->add_params("nope", {{"x", extra}}); }, {"'nope'", "'g0', 'g1'"});
  expect_value_error([&] { opt->add_params("g1", {{"w", extra}}); }, {"'w'", "already in group 'g0'"});
  expect_value_error(
      [&] {
        opt->add_params("g1", {{"other", t.w}});
      },
      {"'other'", "already in group 'g0' as 'w'"});
  ParamGroup dup;
  dup.name = "g0";
  dup.params = {{"x", extra}};
  expect_value_error([&] { opt->add_group(dup); }, {"already a parameter group 'g0'"});
  dup.name = "late";
  dup.lr = -1;
  expect_value_error([&] { opt->add_group(dup); }, {"group 'late'", "learning rate -1"});
  dup.lr = 0.5;
  opt->add_group(dup);
  EXPECT_EQ(opt->group("late").initial_lr, 0.5);
  expect_value_error([&] { opt->group("missing"); }, {"no parameter group 'missing'", "'late'"});

  std::vector<ParamGroup> twice = t.groups();
  twice[1].params.emplace_back("w", t.w);
  expect_value_error([&] { make_sgd(twice, {}); }, {"'w'", "already in group 'g0'"});
  expect_value_error([&] { make_sgd(t.groups(), SgdOptions{0, 0, true}); }, {"Nesterov", "group 'g0'"});
  expect_value_error(
      [&] {
        make_sgd(t.groups(), SgdOptions{0.9, 0.5, true});
      },
      {"Nesterov", "dampening 0.5"});
  std::vector<ParamGroup> betas = t.groups();
  betas[1].betas = std::array<double, 2>{0.9, 1.0};
  expect_value_error([&] { make_adam(betas, {}); }, {"group 'g1'", "beta2 1"});

  t.w.set_grad(zeros({2, 2}, DType::Float32));
  try {
    opt->step();
    ADD_FAILURE() << "a gradient of the wrong shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient of 'w' is float32[2, 2]"), std::string::npos) << e.what();
  }
}

TEST(OptimErrors, ZeroGradDropsEveryGradient) {
  TwoGroups t;
  auto opt = make_sgd(t.groups(), {});
  t.set_grads();
  opt->zero_grad();
  EXPECT_FALSE(t.w.grad().defined());
  EXPECT_FALSE(t.b.grad().defined());
  const std::vector<double> before = t.w.to_vector<double>();
  opt->step();  // nothing has a gradient: nothing moves
  EXPECT_EQ(t.w.to_vector<double>(), before);
}

// ---- parameter groups on a real model
// -----------------------------------------------------------------------

std::vector<std::string> names_of(const ParamGroup& g) {
  std::vector<std::string> out;
  for (const auto& [n, _] : g.params) out.push_back(n);
  return out;
}

const ParamGroup* find_group(const std::vector<ParamGroup>& groups, const std::string& name) {
  for (const ParamGroup& g : groups)
    if (g.name == name) return &g;
  return nullptr;
}

class ParamGroupResnet : public ::testing::Test {
 protected:
  void SetUp() override {
    model = models::create_model("resnet18", 10);
    model->freeze("*");
    model->unfreeze("layer4");
    model->unfreeze("fc");
  }
  std::shared_ptr<models::Model> model;
  const std::vector<GroupSpec> specs{{"layer4", 1e-4}, {"fc", 1e-3}};
};

TEST_F(ParamGroupResnet, LayerFourAndHeadWithNoDecayTwins) {
  const std::vector<ParamGroup> groups = make_param_groups(*model, specs, 1e-5, 1e-4);
  std::vector<std::string> group_names;
  for (const ParamGroup& g : groups) group_names.push_back(g.name);
  EXPECT_EQ(group_names, (std::vector<std::string>{"layer4", "layer4.no_decay", "fc", "fc.no_decay"}));

  const std::vector<std::string> convs = {"layer4.0.conv1.weight", "layer4.0.conv2.weight",
                                          "layer4.0.downsample.0.weight", "layer4.1.conv1.weight",
                                          "layer4.1.conv2.weight"};
  std::vector<std::string> norms;
  for (const char* bn :
       {"layer4.0.bn1", "layer4.0.bn2", "layer4.0.downsample.1", "layer4.1.bn1", "layer4.1.bn2"})
    for (const char* p : {".weight", ".bias"}) norms.push_back(std::string(bn) + p);
  const auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(names_of(groups[0])), sorted(convs));
  EXPECT_EQ(sorted(names_of(groups[1])), sorted(norms));
  EXPECT_EQ(names_of(groups[2]), (std::vector<std::string>{"fc.weight"}));
  EXPECT_EQ(names_of(groups[3]), (std::vector<std::string>{"fc.bias"}));
  for (std::size_t i : {0u, 1u}) EXPECT_EQ(groups[i].lr, 1e-4);
  for (std::size_t i : {2u, 3u}) EXPECT_EQ(groups[i].lr, 1e-3);
  for (const ParamGroup& g : groups) EXPECT_EQ(g.initial_lr, g.lr);
  EXPECT_EQ(groups[0].weight_decay, 1e-4);
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_EQ(groups[2].weight_decay, 1e-4);
  EXPECT_EQ(groups[3].weight_decay, 0.0);

  // Exactly the trainable parameters, each once; the frozen ones are in no group.
  std::set<std::string> grouped;
  std::size_t count = 0;
  for (const ParamGroup& g : groups)
    for (const auto& [n, p] : g.params) {
      grouped.insert(n);
      ++count;
      EXPECT_TRUE(p.requires_grad()) << n;
    }
  EXPECT_EQ(grouped.size(), count);
  std::int64_t elements = 0;
  for (const auto& [n, p] : model->named_parameters()) {
    EXPECT_EQ(grouped.count(n) == 1, p.requires_grad()) << n;
    if (grouped.count(n)) elements += p.numel();
  }
  EXPECT_EQ(elements, model->parameter_count(true));
  EXPECT_FALSE(grouped.count("conv1.weight"));
  EXPECT_FALSE(grouped.count("layer3.1.bn2.weight"));

  // The groups drive an optimizer as they are.
  auto opt = make_adam(groups, {});
  EXPECT_EQ(opt->groups().size(), 4u);
}

TEST_F(ParamGroupResnet, DecayEverywhereOrNowhereMeansNoTwins) {
  for (const auto& groups :
       {make_param_groups(*model, specs, 1e-5, 1e-4, true), make_param_groups(*model, specs, 1e-5, 0)}) {
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(groups[0].name, "layer4");
    EXPECT_EQ(groups[0].params.size(), 15u);
    EXPECT_EQ(groups[1].name, "fc");
    EXPECT_EQ(groups[1].params.size(), 2u);
  }
}

TEST_F(ParamGroupResnet, EverythingTrainableGoesToRestWithTheBaseLr) {
  model->unfreeze("*");
  const auto groups = make_param_groups(*model, specs, 1e-5, 1e-4);
  ASSERT_EQ(groups.size(), 6u);
  const ParamGroup* rest = find_group(groups, "rest");
  const ParamGroup* rest_nd = find_group(groups, "rest.no_decay");
  ASSERT_TRUE(rest && rest_nd);
  EXPECT_EQ(rest->lr, 1e-5);
  EXPECT_EQ(rest->weight_decay, 1e-4);
  EXPECT_EQ(rest_nd->weight_decay, 0.0);
  EXPECT_EQ(names_of(*rest).front(), "conv1.weight");
  EXPECT_EQ(names_of(*rest_nd).front(), "bn1.weight");
  for (const std::string& n : names_of(*rest)) EXPECT_TRUE(n.ends_with(".weight")) << n;  // convolutions
}

TEST_F(ParamGroupResnet, UnfrozenParametersJoinTheirGroupOrCreateIt) {
  // layer3 has a spec but is frozen when the optimizer is built: its groups do not exist yet.
  model->freeze("layer4.1");
  const std::vector<GroupSpec> with_layer3{{"layer3", 5e-5}, {"layer4", 1e-4}, {"fc", 1e-3}};
  const GroupPlanner planner(*model, with_layer3, {1e-5, 1e-4, false});
  auto opt = make_sgd(planner.build(), SgdOptions{0.9, 0, false});
  EXPECT_FALSE(opt->has_group("layer3"));
  const std::size_t layer4_before = opt->group("layer4").params.size();

  EXPECT_TRUE(planner.add_unfrozen(*opt).empty());
  model->unfreeze("layer4.1");
  model->unfreeze("layer3");
  model->unfreeze("bn1");
  const std::vector<std::string> added = planner.add_unfrozen(*opt);
  EXPECT_EQ(added.size(), 2u + 15u + 6u);  // bn1, layer3, layer4.1
  EXPECT_EQ(added.front(), "bn1.weight");
  EXPECT_EQ(opt->group("layer4").params.size(), layer4_before + 2);  // layer4.1's two convs
  EXPECT_EQ(opt->group("layer4.no_decay").params.size(), 6u + 4u);
  EXPECT_EQ(opt->group("layer3").lr, 5e-5);
  EXPECT_EQ(opt->group("layer3").weight_decay, 1e-4);
  EXPECT_EQ(opt->group("layer3.no_decay").params.size(), 10u);
  EXPECT_EQ(opt->group("layer3.no_decay").weight_decay, 0.0);
  EXPECT_EQ(opt->group("rest.no_decay").lr, 1e-5);
  EXPECT_EQ(names_of(opt->group("rest.no_decay")), (std::vector<std::string>{"bn1.weight", "bn1.bias"}));
  EXPECT_FALSE(opt->has_group("rest"));
  EXPECT_TRUE(planner.add_unfrozen(*opt).empty());  // idempotent

  const ParamGroup g = planner.group_of("layer3.0.bn1.bias");
  EXPECT_EQ(g.name, "layer3.no_decay");
  EXPECT_EQ(g.lr, 5e-5);
  EXPECT_TRUE(g.params.empty());
  EXPECT_EQ(planner.group_of("conv1.weight").name, "rest");
  EXPECT_EQ(planner.group_of("fc.bias").name, "fc.no_decay");
  expect_value_error([&] { planner.group_of("layer9.weight"); }, {"no parameter 'layer9.weight'"});
}

TEST_F(ParamGroupResnet, SpecOverridesReachTheGroups) {
  GroupSpec head("fc", 1e-3, "head");
  head.weight_decay = 0.05;
  head.momentum = 0.5;
  head.betas = std::array<double, 2>{0.8, 0.9};
  const auto groups = make_param_groups(*model, {head}, 1e-5, 1e-4);
  const ParamGroup* g = find_group(groups, "head");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->weight_decay, 0.05);
  EXPECT_EQ(g->momentum, 0.5);
  EXPECT_EQ(g->betas, (std::array<double, 2>{0.8, 0.9}));
  EXPECT_TRUE(find_group(groups, "head.no_decay"));
  EXPECT_TRUE(find_group(groups, "rest"));  // layer4, by the base lr
}

TEST_F(ParamGroupResnet, BadSpecsAreValueErrorsNamingThePattern) {
  expect_value_error(
      [&] {
        make_param_groups(*model, {{"layer9", 1e-3}}, 1e-5, 0);
      },
      {"pattern 'layer9' matches no parameter", "conv1.weight"});
  expect_value_error(
      [&] {
        make_param_groups(*model, {{"layer4", 1e-3}, {"layer4.1", 1e-2}}, 1e-5, 0);
      },
      {"pattern 'layer4.1'", "earlier pattern 'layer4'"});
  expect_value_error(
      [&] {
        make_param_groups(*model, {{"fc", 1e-3}, {"fc.*", 1e-2, "fc"}}, 1e-5, 0);
      },
      {"group name 'fc' is taken"});
  expect_value_error(
      [&] {
        make_param_groups(*model, {{"fc", 1e-3, "rest"}}, 1e-5, 0);
      },
      {"'rest' is taken"});
  expect_value_error(
      [&] {
        make_param_groups(*model, {{"fc", -1e-3}}, 1e-5, 0);
      },
      {"group 'fc'", "learning rate"});
  expect_value_error([&] { make_param_groups(*model, {{"", 1e-3}}, 1e-5, 0); }, {"empty pattern"});
  // A pattern that matches only frozen parameters is fine: its group is simply absent.
  const auto groups = make_param_groups(*model, {{"layer1", 1e-3}, {"fc", 1e-3}}, 1e-5, 0);
  EXPECT_FALSE(find_group(groups, "layer1"));
  EXPECT_TRUE(find_group(groups, "rest"));
  // Globs work as in freeze: every bias of layer4, then the rest of layer4.
  const auto globbed = make_param_groups(*model, {{"layer4.*.bias", 1e-3}, {"layer4", 1e-4}}, 1e-5, 0);
  ASSERT_TRUE(find_group(globbed, "layer4.*.bias"));
  EXPECT_EQ(find_group(globbed, "layer4.*.bias")->params.size(), 5u);
  EXPECT_EQ(find_group(globbed, "layer4")->params.size(), 10u);
}

}  // namespace
}  // namespace tl::optim
