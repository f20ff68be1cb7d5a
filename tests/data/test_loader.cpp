// The threaded loader: the same batches for any worker count, resuming mid-epoch, drop_last, bad samples
// skipped and listed once (or thrown in strict mode, naming the file), errors of workers reaching the
// consumer, bounded prefetch, OpenMP kept to one thread inside workers, and the real hymenoptera folder.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "engine/data/loader.h"
#include "tests/support/fixtures.h"

namespace tl::data {
namespace {

// n samples of [3, 4, 5] drawn from the sample's generator, the index in the first element; label i % 3.
// Indices in `bad` fail to "decode"; `odd_shape` gives a [3, 4, 6] tensor. Counts calls and records the most
// OpenMP threads a parallel region inside get() would have had.
class Synthetic : public Dataset {
 public:
  explicit Synthetic(std::int64_t n, std::set<std::int64_t> bad = {}, std::int64_t odd_shape = -1)
      : n_(n), bad_(std::move(bad)), odd_shape_(odd_shape) {}
  std::int64_t size() const override { return n_; }
  std::int64_t label(std::int64_t i) const override { return i % 3; }
  Tensor get(std::int64_t i, Generator& g) const override {
    calls_.fetch_add(1);
    int threads = omp_get_max_threads(), seen = max_threads_.load();
    while (threads > seen && !max_threads_.compare_exchange_weak(seen, threads)) {
    }
    if (bad_.count(i)) throw ImageError(describe(i) + ": broken on purpose");
    Tensor t = uniform({3, 4, i == odd_shape_ ? 6 : 5}, 0, 1, g);
    t.data<float>()[0] = static_cast<float>(i);
    return t;
  }
  std::string describe(std::int64_t i) const override { return "synthetic #" + std::to_string(i); }
  const std::vector<std::string>& classes() const override { return classes_; }

  mutable std::atomic<int> calls_{0}, max_threads_{0};

 private:
  std::int64_t n_;
  std::set<std::int64_t> bad_;
  std::int64_t odd_shape_;
  std::vector<std::string> classes_{"a", "b", "c"};
};

struct Epoch {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<std::int64_t>> labels, indices;
};

Epoch run(DataLoader& loader, std::int64_t epoch, std::int64_t first_batch = 0) {
  loader.start_epoch(epoch, first_batch);
  Epoch out;
  while (auto b = loader.next()) {
    EXPECT_EQ(b->images.size(0), b->labels.size(0));
    EXPECT_EQ(static_cast<std::size_t>(b->images.size(0)), b->indices.size());
    out.images.push_back(b->images.to_vector<float>());
    out.labels.push_back(b->labels.to_vector<std::int64_t>());
    out.indices.push_back(b->indices);
  }
  return out;
}

std::vector<std::int64_t> flat(const std::vector<std::vector<std::int64_t>>& v) {
  std::vector<std::int64_t> out;
  for (const auto& x : v) out.insert(out.end(), x.begin(), x.end());
  return out;
}

DataLoader::Options options(std::int64_t batch, int workers, std::uint64_t seed = 3) {
  DataLoader::Options o;
  o.batch_size = batch;
  o.workers = workers;
  o.seed = seed;
  return o;
}

template <typename E, typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

std::shared_ptr<const Dataset> folder_dataset(const std::string& root, std::int64_t size) {
  AugmentOptions a;
  a.size = size;
  return std::make_shared<ImageFolderDataset>(ImageFolder::scan(root), train_transform(a, Preprocessing{}));
}

TEST(DataLoader, RefusesBadOptions) {
  const auto ds = std::make_shared<Synthetic>(10);
  auto o = options(0, 1);
  EXPECT_NE(message_of<ValueError>([&] { DataLoader(ds, o); }).find("batch_size must be at least 1, got 0"),
            std::string::npos);
  o = options(4, -1);
  EXPECT_NE(message_of<ValueError>([&] { DataLoader(ds, o); }).find("workers"), std::string::npos);
  o = options(4, 1);
  o.prefetch_batches = 0;
  EXPECT_NE(message_of<ValueError>([&] { DataLoader(ds, o); }).find("prefetch_batches"), std::string::npos);
  EXPECT_NE(message_of<ValueError>([&] {
              DataLoader(std::make_shared<Synthetic>(0), options(4, 1));
            }).find("empty"),
            std::string::npos);
  o = options(16, 1);
  o.drop_last = true;
  EXPECT_NE(message_of<ValueError>([&] { DataLoader(ds, o); }).find("leaves no batch"), std::string::npos);
  DataLoader loader(ds, options(4, 1));
  EXPECT_THROW(loader.start_epoch(-1), ValueError);
  EXPECT_THROW(loader.start_epoch(0, 4), ValueError);
}

TEST(DataLoader, BatchCountsAndDropLast) {
  const auto ds = std::make_shared<Synthetic>(10);
  DataLoader keep(ds, options(4, 2));
  EXPECT_EQ(keep.batches_per_epoch(), 3);
  EXPECT_EQ(keep.samples_per_epoch(), 10);
  const Epoch all = run(keep, 0);
  ASSERT_EQ(all.labels.size(), 3u);
  EXPECT_EQ(all.labels[2].size(), 2u);
  auto o = options(4, 2);
  o.drop_last = true;
  DataLoader drop(ds, o);
  EXPECT_EQ(drop.batches_per_epoch(), 2);
  EXPECT_EQ(drop.samples_per_epoch(), 8);
  const Epoch dropped = run(drop, 0);
  ASSERT_EQ(dropped.labels.size(), 2u);
  EXPECT_EQ(dropped.indices[0], all.indices[0]);
  EXPECT_EQ(dropped.indices[1], all.indices[1]);
}

TEST(DataLoader, WithoutShuffleInOrderAndWithShuffleASeededPermutation) {
  const auto ds = std::make_shared<Synthetic>(23);
  auto o = options(5, 2);
  o.shuffle = false;
  DataLoader ordered(ds, o);
  std::vector<std::int64_t> iota(23);
  for (std::int64_t i = 0; i < 23; ++i) iota[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(flat(run(ordered, 0).indices), iota);
  EXPECT_EQ(flat(run(ordered, 5).indices), iota);

  DataLoader shuffled(ds, options(5, 2, 11));
  const auto e0 = flat(run(shuffled, 0).indices), e1 = flat(run(shuffled, 1).indices);
  EXPECT_EQ(e0, seeded_permutation(23, epoch_order_seed(11, 0)));
  EXPECT_EQ(e1, seeded_permutation(23, epoch_order_seed(11, 1)));
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, iota);
  EXPECT_EQ(flat(run(shuffled, 0).indices), e0);
  DataLoader other_seed(ds, options(5, 2, 12));
  EXPECT_NE(flat(run(other_seed, 0).indices), e0);
  // Labels travel with their rows.
  const Epoch e = run(shuffled, 0);
  for (std::size_t b = 0; b < e.indices.size(); ++b)
    for (std::size_t r = 0; r < e.indices[b].size(); ++r) EXPECT_EQ(e.labels[b][r], e.indices[b][r] % 3);
}

TEST(DataLoader, RowsAreTheSamplesDrawnWithTheirOwnSeeds) {
  const auto ds = std::make_shared<Synthetic>(9);
  DataLoader loader(ds, options(4, 2, 5));
  loader.start_epoch(3);
  const auto b = loader.next();
  ASSERT_TRUE(b);
  const auto rows = b->images.to_vector<float>();
  for (std::size_t r = 0; r < b->indices.size(); ++r) {
    Generator g(sample_seed(5, 3, b->indices[r]));
    const auto expected = ds->get(b->indices[r], g).to_vector<float>();
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), rows.begin() + static_cast<long>(r * 60)));
  }
  EXPECT_EQ(b->images.shape(), (Shape{4, 3, 4, 5}));
}

TEST(DataLoader, SameBatchesForAnyWorkerCount) {
  TL_REQUIRE_FIXTURE(root, "data/trees/many");
  const auto ds = folder_dataset(root, 24);  // real decoding and augmentation
  DataLoader serial(ds, options(5, 0));
  const Epoch e0 = run(serial, 0), e1 = run(serial, 1);
  ASSERT_EQ(e0.images.size(), 6u);  // 27 images
  EXPECT_NE(e0.images, e1.images);
  for (int workers : {1, 3}) {
    for (int prefetch : {1, 2}) {
      SCOPED_TRACE(::testing::Message() << workers << " workers, prefetch " << prefetch);
      auto o = options(5, workers);
      o.prefetch_batches = prefetch;
      DataLoader loader(ds, o);
      const Epoch a = run(loader, 0), b = run(loader, 1);
      EXPECT_EQ(a.images, e0.images);
      EXPECT_EQ(a.labels, e0.labels);
      EXPECT_EQ(a.indices, e0.indices);
      EXPECT_EQ(b.images, e1.images);
      EXPECT_EQ(b.indices, e1.indices);
    }
  }
}

TEST(DataLoader, ResumesMidEpochExactly) {
  TL_REQUIRE_FIXTURE(root, "data/trees/many");
  const auto ds = folder_dataset(root, 16);
  DataLoader loader(ds, options(4, 2));
  const Epoch full = run(loader, 2);
  ASSERT_EQ(full.images.size(), 7u);
  for (std::int64_t k : {1, 4, 6}) {
    const Epoch rest = run(loader, 2, k);
    ASSERT_EQ(rest.images.size(), 7u - static_cast<std::size_t>(k));
    for (std::size_t i = 0; i < rest.images.size(); ++i) {
      EXPECT_EQ(rest.images[i], full.images[static_cast<std::size_t>(k) + i]) << "batch " << k + 1;
      EXPECT_EQ(rest.indices[i], full.indices[static_cast<std::size_t>(k) + i]);
    }
  }
  EXPECT_TRUE(run(loader, 2, 7).images.empty());
}

TEST(DataLoader, AnAbandonedEpochLeavesNoTrace) {
  const auto ds = std::make_shared<Synthetic>(40);
  DataLoader reference(ds, options(3, 0));
  const Epoch expected = run(reference, 1);
  DataLoader loader(ds, options(3, 3));
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next());  // workers are now preparing epoch 0 ahead
  const Epoch again = run(loader, 1);
  EXPECT_EQ(again.images, expected.images);
  EXPECT_EQ(again.indices, expected.indices);
  // Destroyed mid-epoch with batches in flight: joins without hanging.
  {
    DataLoader busy(ds, options(2, 3));
    busy.start_epoch(0);
    ASSERT_TRUE(busy.next());
  }
  // next() before any start_epoch starts epoch 0; after the end it keeps returning nothing.
  DataLoader fresh(ds, options(20, 2));
  ASSERT_TRUE(fresh.next());
  ASSERT_TRUE(fresh.next());
  EXPECT_FALSE(fresh.next());
  EXPECT_FALSE(fresh.next());
}

TEST(DataLoader, PrefetchIsBounded) {
  const auto ds = std::make_shared<Synthetic>(200);
  auto o = options(2, 2);
  o.prefetch_batches = 1;  // at most 2 batches held: 4 samples
  DataLoader loader(ds, o);
  // Waits until the workers have done `calls` (on a busy machine they may take a while), then gives them time
  // to run further ahead than they may.
  const auto settle = [&](int calls) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ds->calls_.load() < calls && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return ds->calls_.load();
  };
  loader.start_epoch(0);
  EXPECT_EQ(settle(4), 4);
  ASSERT_TRUE(loader.next());
  EXPECT_EQ(settle(6), 6);
}

TEST(DataLoader, WorkersRunOpenMpSingleThreaded) {
  const int main_threads = omp_get_max_threads();
  const auto ds = std::make_shared<Synthetic>(30);
  DataLoader loader(ds, options(4, 2));
  run(loader, 0);
  EXPECT_EQ(ds->max_threads_.load(), 1);
  EXPECT_EQ(omp_get_max_threads(), main_threads);  // the training thread keeps its cores
  if (main_threads == 1) GTEST_SKIP() << "OpenMP has one thread here, so the check above proves nothing";
}

TEST(DataLoader, BadSamplesAreSkippedAndListedOnce) {
  const auto ds = std::make_shared<Synthetic>(20, std::set<std::int64_t>{3, 7});
  DataLoader loader(ds, options(4, 2));
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto seen = flat(run(loader, epoch).indices);
    EXPECT_EQ(seen.size(), 18u);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 3), 0);
  }
  const auto bad = loader.bad_samples();
  ASSERT_EQ(bad.size(), 2u);
  std::set<std::string> names{bad[0].name, bad[1].name};
  EXPECT_EQ(names, (std::set<std::string>{"synthetic #3", "synthetic #7"}));
  EXPECT_NE(bad[0].reason.find("broken on purpose"), std::string::npos) << bad[0].reason;
}

TEST(DataLoader, ABatchWithNothingLoadableIsSkipped) {
  const auto ds = std::make_shared<Synthetic>(12, std::set<std::int64_t>{4, 5, 6, 7});
  for (int workers : {0, 2}) {
    auto o = options(4, workers);
    o.shuffle = false;
    DataLoader loader(ds, o);
    const Epoch e = run(loader, 0);
    ASSERT_EQ(e.indices.size(), 2u);
    EXPECT_EQ(e.indices[0], (std::vector<std::int64_t>{0, 1, 2, 3}));
    EXPECT_EQ(e.indices[1], (std::vector<std::int64_t>{8, 9, 10, 11}));
    EXPECT_EQ(loader.bad_samples().size(), 4u);
  }
}

TEST(DataLoader, RealBadFilesAreNamedAndSkipped) {
  TL_REQUIRE_FIXTURE(root, "data/trees/with_bad");
  const auto ds = folder_dataset(root, 16);
  DataLoader loader(ds, options(4, 2));
  EXPECT_EQ(flat(run(loader, 0).indices).size(), 11u);
  EXPECT_EQ(flat(run(loader, 1).indices).size(), 11u);
  std::set<std::string> names;
  for (const auto& b : loader.bad_samples()) {
    names.insert(std::filesystem::path(b.name).filename().string());
    EXPECT_NE(b.reason.find(b.name), std::string::npos) << b.reason;
  }
  EXPECT_EQ(names, (std::set<std::string>{"empty.jpg", "text.jpg", "truncated.jpg"}));
}

TEST(DataLoader, StrictModeThrowsNamingTheFileWhenItsBatchIsDue) {
  TL_REQUIRE_FIXTURE(root, "data/trees/with_bad");
  const auto ds = folder_dataset(root, 16);
  for (int workers : {0, 3}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    auto o = options(1, workers);
    o.shuffle = false;
    o.strict = true;
    DataLoader loader(ds, o);
    loader.start_epoch(0);
    // a0.jpg a1.png a2.jpg a3.jpg a4.png load; empty.jpg is the sixth file of class a.
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(loader.next()) << i;
    const std::string m = message_of<ImageError>([&] { loader.next(); });
    EXPECT_NE(m.find(root + "/a/empty.jpg: empty file"), std::string::npos) << m;
    EXPECT_TRUE(loader.bad_samples().empty());
  }
}

TEST(DataLoader, OtherErrorsOfWorkersReachTheConsumer) {
  const auto ds = std::make_shared<Synthetic>(8, std::set<std::int64_t>{}, 5);
  for (int workers : {0, 2}) {
    auto o = options(4, workers);
    o.shuffle = false;
    DataLoader loader(ds, o);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next());
    const std::string m = message_of<ValueError>([&] { loader.next(); });
    EXPECT_NE(m.find("synthetic #5 became float32[3, 4, 6]"), std::string::npos) << m;
  }
}

// ---- the real photos
// ----------------------------------------------------------------------------------------

TEST(DataHymenoptera, EveryFileIsASampleAndOnlyTheGifFails) {
  TL_REQUIRE_SHARED(train, "data/hymenoptera/train");
  const ImageFolder folder = ImageFolder::scan(train);
  EXPECT_EQ(folder.classes, (std::vector<std::string>{"ants", "bees"}));
  ASSERT_EQ(folder.samples.size(), 245u);
  EXPECT_EQ(folder.count(0), 124);
  EXPECT_EQ(folder.count(1), 121);
  AugmentOptions a;
  a.size = 32;  // small, so the epoch is decoding-bound and quick
  DataLoader loader(std::make_shared<ImageFolderDataset>(folder, train_transform(a, Preprocessing{})),
                    options(32, 2));
  const Epoch e = run(loader, 0);
  EXPECT_EQ(flat(e.indices).size(), 244u);
  ASSERT_EQ(loader.bad_samples().size(), 1u);
  EXPECT_EQ(loader.bad_samples()[0].name, train + "/ants/imageNotFound.gif");
  EXPECT_NE(loader.bad_samples()[0].reason.find("a GIF image"), std::string::npos);
}

TEST(DataHymenoptera, StrictModeStopsAtTheGif) {
  TL_REQUIRE_SHARED(train, "data/hymenoptera/train");
  ImageFolder folder = ImageFolder::scan(train);
  // The GIF and two photos around it, so the test decodes three files, not 245.
  std::vector<Sample> few;
  for (std::size_t i = 0; i < folder.samples.size(); ++i)
    if (folder.samples[i].path.ends_with(".gif"))
      few = {folder.samples[i - 1], folder.samples[i], folder.samples[i + 1]};
  ASSERT_EQ(few.size(), 3u);
  folder.samples = few;
  auto o = options(3, 1);
  o.strict = true;
  DataLoader loader(std::make_shared<ImageFolderDataset>(folder, eval_transform_of(Preprocessing{}, 32)), o);
  const std::string m = message_of<ImageError>([&] { loader.next(); });
  EXPECT_NE(m.find(train + "/ants/imageNotFound.gif: a GIF image"), std::string::npos) << m;
}

}  // namespace
}  // namespace tl::data
