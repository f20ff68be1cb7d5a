// Learning-rate schedules, applied per epoch: each sets every group's lr to initial_lr * factor(epoch), the
// closed forms of torch.optim.lr_scheduler's epoch-stepped schedules (equal to torch's chained updates to
// rounding). A schedule holds no state: what it changes (every group's lr) is in Optimizer::state(), and the
// epoch and describe() are the trainer's to save, so a resumed run calls apply(optimizer, epoch) again.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/optim/optimizer.h"

namespace tl::optim {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // The multiplier of initial_lr in epoch `epoch` (0-based); throws ValueError for a negative epoch.
  virtual double factor(std::int64_t epoch) const = 0;
  // The parse_schedule text for it ("step:7:0.1", "warmup:2:0.1+cosine"); parse_schedule(describe(), epochs)
  // with the run's epochs gives the same schedule.
  virtual std::string describe() const = 0;
  // Sets every group's lr for `epoch`.
  void apply(Optimizer& optimizer, std::int64_t epoch) const;
};

std::unique_ptr<Scheduler> constant_schedule();
// lr * gamma^(epoch / step_size): StepLR. step_size >= 1, gamma > 0.
std::unique_ptr<Scheduler> step_schedule(std::int64_t step_size, double gamma);
// lr * gamma^(number of milestones <= epoch): MultiStepLR. Milestones >= 1 and increasing, gamma > 0.
std::unique_ptr<Scheduler> multistep_schedule(std::vector<std::int64_t> milestones, double gamma);
// Cosine annealing from lr to min_factor * lr over `epochs` epochs: CosineAnnealingLR with T_max = epochs and
// eta_min = min_factor * lr (per group), min_factor + (1 - min_factor) * (1 + cos(pi * epoch / epochs)) / 2.
// Past T_max it rises again, as torch's does. epochs >= 1, min_factor in [0, 1].
std::unique_ptr<Scheduler> cosine_schedule(std::int64_t epochs, double min_factor = 0.0);
// Linear warm-up from start_factor to 1 over `warmup_epochs` (torch's LinearLR with total_iters =
// warmup_epochs: start_factor + (1 - start_factor) * epoch / warmup_epochs), then `after` with its epochs
// counted from 0 at epoch warmup_epochs (SequentialLR with milestones = [warmup_epochs]). warmup_epochs >= 1,
// start_factor in (0, 1].
std::unique_ptr<Scheduler> warmup_schedule(std::int64_t warmup_epochs, double start_factor,
                                           std::unique_ptr<Scheduler> after);

// The start factor of "warmup:EPOCHS" without one: torch's LinearLR default.
inline constexpr double kDefaultWarmupStartFactor = 1.0 / 3.0;

// Parses the --scheduler syntax: "none", "step:STEP:GAMMA", "multistep:M1,M2,...:GAMMA",
// "cosine[:MIN_FACTOR]", each optionally prefixed "warmup:EPOCHS[:START_FACTOR]+" (e.g. "warmup:2+cosine");
// "warmup:EPOCHS[:START]" alone warms up to a constant lr. `epochs` is the run's length: cosine anneals over
// the epochs after the warm-up. Throws ValueError naming the text and what is wrong ("--scheduler
// 'step:0:0.1': step size must be at least 1").
std::unique_ptr<Scheduler> parse_schedule(const std::string& text, std::int64_t epochs);

}  // namespace tl::optim
