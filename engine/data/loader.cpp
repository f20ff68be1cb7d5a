#include "engine/data/loader.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "engine/error.h"

namespace tl::data {
namespace {

// Stream tags keep the epoch orders, the samples' generators and find_splits' permutations apart even when
// they share one user seed.
constexpr std::uint64_t kOrderStream = 0x4F52444552ull;     // "ORDER"
constexpr std::uint64_t kSampleStream = 0x53414D504C45ull;  // "SAMPLE"

// One batch as a worker left it. Bad samples travel with their batch and are recorded by the consumer when
// the batch is delivered, so the list's order does not depend on thread timing.
struct Prepared {
  std::optional<Batch> batch;  // empty when every sample failed
  std::vector<std::pair<std::int64_t, BadSample>> bad;
  std::exception_ptr error;
};

}  // namespace

std::uint64_t epoch_order_seed(std::uint64_t seed, std::int64_t epoch) {
  return mix_seed({kOrderStream, seed, static_cast<std::uint64_t>(epoch)});
}

std::uint64_t sample_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t index) {
  return mix_seed(
      {kSampleStream, seed, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(index)});
}

struct DataLoader::State {
  std::int64_t size = 0;  // of the dataset
  std::int64_t batches = 0;

  // The current epoch. `order` and `epoch` change only while no worker runs.
  bool started = false;
  std::int64_t epoch = 0;
  std::vector<std::int64_t> order;

  // Shared with the workers, under `mutex`: the next batch to hand out (next_batch, the consumer's) and to
  // prepare (next_claim, the workers'), and the prepared batches not yet delivered. A worker claims batch b
  // only while b < next_batch + capacity, which bounds the batches held (ready or in the making).
  std::mutex mutex;
  std::condition_variable work_cv, ready_cv;
  std::int64_t next_batch = 0, next_claim = 0;
  std::map<std::int64_t, Prepared> ready;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;

  // Seen by the consumer only.
  std::set<std::int64_t> bad_indices;
  std::vector<BadSample> bad;

  // Raises `stop` and joins every worker; a worker in the middle of a batch drops it at the next sample.
  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    work_cv.notify_all();
    ready_cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
  }
};

namespace {

// Loads batch `b` of the epoch: every sample of it with its own generator, the failures set aside (or, in
// strict mode, thrown). Returns early, incomplete, when `stop` is raised.
Prepared prepare_batch(const Dataset& dataset, const DataLoader::Options& options,
                       const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t b,
                       const std::atomic<bool>* stop) {
  const auto n = static_cast<std::int64_t>(order.size());
  const std::int64_t begin = b * options.batch_size, end = std::min(begin + options.batch_size, n);
  Prepared out;
  std::vector<Tensor> rows;
  std::vector<std::int64_t> labels, indices;
  for (std::int64_t pos = begin; pos < end; ++pos) {
    if (stop && stop->load(std::memory_order_relaxed)) return out;
    const std::int64_t index = order[static_cast<std::size_t>(pos)];
    Generator generator(sample_seed(options.seed, epoch, index));
    Tensor t;
    try {
      t = dataset.get(index, generator);
    } catch (const ImageError& e) {
      if (options.strict) throw;
      out.bad.push_back({index, {dataset.describe(index), e.what()}});
      continue;
    }
    TL_CHECK(t.dtype() == DType::Float32 && t.dim() == 3, ValueError, "DataLoader: ", dataset.describe(index),
             " became ", t.description(), "; a dataset must give [C, H, W] float32 tensors");
    TL_CHECK(rows.empty() || t.shape() == rows[0].shape(), ValueError,
             "DataLoader: ", dataset.describe(index), " became ", t.description(), " but ",
             dataset.describe(indices[0]), " ", rows[0].description(),
             "; every sample of a batch needs the same shape (resize or crop them to one size)");
    rows.push_back(t.contiguous());
    labels.push_back(dataset.label(index));
    indices.push_back(index);
  }
  if (rows.empty()) return out;
  Shape shape = rows[0].shape();
  shape.insert(shape.begin(), static_cast<std::int64_t>(rows.size()));
  Batch batch{options.pinned ? empty_pinned(shape, DType::Float32) : empty(shape),
              tensor(labels, {static_cast<std::int64_t>(labels.size())}), std::move(indices)};
  const auto row_bytes = static_cast<std::size_t>(rows[0].numel()) * sizeof(float);
  auto* dst = static_cast<unsigned char*>(batch.images.raw_data());
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::memcpy(dst + i * row_bytes, rows[i].data<float>(), row_bytes);
  out.batch = std::move(batch);
  return out;
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, Options options)
    : dataset_(std::move(dataset)), options_(options), state_(std::make_unique<State>()) {
  TL_CHECK(dataset_ != nullptr, ValueError, "DataLoader: no dataset");
  TL_CHECK(options_.batch_size >= 1, ValueError, "DataLoader: batch_size must be at least 1, got ",
           options_.batch_size);
  TL_CHECK(options_.workers >= 0, ValueError,
           "DataLoader: workers must be 0 (load on the calling thread) or more, got ", options_.workers);
  TL_CHECK(options_.prefetch_batches >= 1, ValueError,
           "DataLoader: prefetch_batches must be at least 1, got ", options_.prefetch_batches);
  state_->size = dataset_->size();
  TL_CHECK(state_->size >= 1, ValueError, "DataLoader: the dataset is empty");
  state_->batches = options_.drop_last ? state_->size / options_.batch_size
                                       : (state_->size + options_.batch_size - 1) / options_.batch_size;
  TL_CHECK(state_->batches >= 1, ValueError, "DataLoader: drop_last with batch_size ", options_.batch_size,
           " and only ", state_->size,
           " samples leaves no batch; lower the batch size or turn drop_last off");
}

DataLoader::~DataLoader() {
  state_->stop_workers();
}

std::int64_t DataLoader::batches_per_epoch() const {
  return state_->batches;
}

std::int64_t DataLoader::samples_per_epoch() const {
  return options_.drop_last ? state_->batches * options_.batch_size : state_->size;
}

std::vector<BadSample> DataLoader::bad_samples() const {
  return state_->bad;
}

void DataLoader::start_epoch(std::int64_t epoch, std::int64_t first_batch) {
  State& s = *state_;
  TL_CHECK(epoch >= 0, ValueError, "DataLoader: epoch must not be negative, got ", epoch);
  TL_CHECK(first_batch >= 0 && first_batch <= s.batches, ValueError, "DataLoader: first batch ", first_batch,
           " is outside the epoch's ", s.batches, " batches");
  s.stop_workers();
  s.epoch = epoch;
  if (options_.shuffle) {
    s.order = seeded_permutation(s.size, epoch_order_seed(options_.seed, epoch));
  } else {
    s.order.resize(static_cast<std::size_t>(s.size));
    std::iota(s.order.begin(), s.order.end(), 0);
  }
  s.started = true;
  s.next_batch = s.next_claim = first_batch;
  s.ready.clear();
  s.stop = false;
  if (options_.workers == 0) return;

  const std::int64_t capacity = static_cast<std::int64_t>(options_.prefetch_batches) * options_.workers;
  const auto work = [this, &s, capacity] {
    // One OpenMP thread inside this worker (the setting is per thread): the workers are the parallelism, and
    // the training thread's kernels keep the cores.
    omp_set_num_threads(1);
    for (;;) {
      std::int64_t b = 0;
      {
        std::unique_lock<std::mutex> lock(s.mutex);
        s.work_cv.wait(lock, [&] {
          return s.stop || s.next_claim >= s.batches || s.next_claim < s.next_batch + capacity;
        });
        if (s.stop || s.next_claim >= s.batches) return;
        b = s.next_claim++;
      }
      Prepared p;
      try {
        p = prepare_batch(*dataset_, options_, s.order, s.epoch, b, &s.stop);
      } catch (...) {
        p.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(s.mutex);
        if (s.stop) return;
        s.ready.emplace(b, std::move(p));
      }
      s.ready_cv.notify_all();
    }
  };
  try {
    for (int w = 0; w < options_.workers; ++w) s.threads.emplace_back(work);
  } catch (...) {
    s.stop_workers();
    throw;
  }
}

std::optional<Batch> DataLoader::next() {
  State& s = *state_;
  if (!s.started) start_epoch(0);
  for (;;) {
    Prepared p;
    if (options_.workers == 0) {
      if (s.next_batch >= s.batches) return std::nullopt;
      p = prepare_batch(*dataset_, options_, s.order, s.epoch, s.next_batch++, nullptr);
    } else {
      {
        std::unique_lock<std::mutex> lock(s.mutex);
        if (s.next_batch >= s.batches) return std::nullopt;
        s.ready_cv.wait(lock, [&] { return s.ready.count(s.next_batch) > 0; });
        auto node = s.ready.extract(s.next_batch++);
        p = std::move(node.mapped());
      }
      s.work_cv.notify_all();
    }
    if (p.error) std::rethrow_exception(p.error);
    for (auto& [index, bad] : p.bad)
      if (s.bad_indices.insert(index).second) s.bad.push_back(std::move(bad));
    if (p.batch) return std::move(p.batch);
  }
}

}  // namespace tl::data
