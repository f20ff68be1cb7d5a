// Training augmentation: RandomResizedCrop's boxes (bounds, the distribution of area and aspect ratio,
// torchvision's fallback), the crop's pixels, the flip, and the composed train and eval transforms.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/data/augment.h"

namespace tl::data {
namespace {

// Every pixel different from its mirror image, so a flip or a shifted crop shows.
Image ramp(std::int64_t width, std::int64_t height) {
  Image image{width, height, std::vector<std::uint8_t>(static_cast<std::size_t>(width * height * 3))};
  for (std::int64_t y = 0; y < height; ++y)
    for (std::int64_t x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        image.rgb[static_cast<std::size_t>((y * width + x) * 3 + c)] =
            static_cast<std::uint8_t>((x * 7 + y * 3 + c * 50) % 256);
  return image;
}

TEST(Augment, CropBoxesStayInsideAndFollowTheScaleAndRatio) {
  const AugmentOptions o;  // scale [0.08, 1], ratio [3/4, 4/3]
  const std::int64_t W = 1000, H = 1000;
  double min_fraction = 1, max_fraction = 0, sum_center_x = 0, sum_center_y = 0;
  int wide = 0, tall = 0;
  const int draws = 4000;
  for (int i = 0; i < draws; ++i) {
    Generator g(static_cast<std::uint64_t>(i));
    const CropBox b = random_resized_crop_box(W, H, o, g);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_GE(b.height, 1);
    ASSERT_GE(b.width, 1);
    ASSERT_LE(b.top + b.height, H);
    ASSERT_LE(b.left + b.width, W);
    const double fraction = static_cast<double>(b.width * b.height) / static_cast<double>(W * H);
    const double ratio = static_cast<double>(b.width) / static_cast<double>(b.height);
    EXPECT_GE(ratio, 0.75 * 0.99);  // rounding to whole pixels moves the ratio a little
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.01);
    min_fraction = std::min(min_fraction, fraction);
    max_fraction = std::max(max_fraction, fraction);
    wide += b.width > b.height;
    tall += b.width < b.height;
    sum_center_x += static_cast<double>(b.left) + static_cast<double>(b.width) / 2;
    sum_center_y += static_cast<double>(b.top) + static_cast<double>(b.height) / 2;
  }
  EXPECT_GE(min_fraction, 0.08 * 0.99);
  EXPECT_LT(min_fraction, 0.09);  // the lower end of the scale range is reached
  EXPECT_GT(max_fraction, 0.95);
  // A square image: log-uniform ratios are as often wide as tall, and crops are centered on average.
  EXPECT_NEAR(static_cast<double>(wide) / (wide + tall), 0.5, 0.04);
  EXPECT_NEAR(sum_center_x / draws, 500, 15);
  EXPECT_NEAR(sum_center_y / draws, 500, 15);
}

TEST(Augment, CropBoxIsSeeded) {
  const AugmentOptions o;
  Generator a(5), b(5), c(6);
  const CropBox x = random_resized_crop_box(640, 480, o, a), y = random_resized_crop_box(640, 480, o, b);
  EXPECT_EQ(std::tie(x.top, x.left, x.height, x.width), std::tie(y.top, y.left, y.height, y.width));
  const CropBox z = random_resized_crop_box(640, 480, o, c);
  EXPECT_NE(std::tie(x.top, x.left, x.height, x.width), std::tie(z.top, z.left, z.height, z.width));
  // A second draw from the same generator is a fresh crop.
  const CropBox w = random_resized_crop_box(640, 480, o, a);
  EXPECT_NE(std::tie(x.top, x.left, x.height, x.width), std::tie(w.top, w.left, w.height, w.width));
}

TEST(Augment, FallbackIsTheCenteredImageCutToTheRatioRange) {
  const AugmentOptions o;
  Generator g(0);
  // 100:1 and 1:100: no crop of at least 8% of the area fits within the ratio range in 10 tries.
  CropBox b = random_resized_crop_box(1000, 10, o, g);
  EXPECT_EQ(std::tie(b.top, b.left, b.height, b.width), std::make_tuple(0L, 493L, 10L, 13L));
  b = random_resized_crop_box(10, 1000, o, g);
  EXPECT_EQ(std::tie(b.top, b.left, b.height, b.width), std::make_tuple(493L, 0L, 13L, 10L));
  // Full scale at ratio 1 never fits a 50 x 30 image (a 39 x 39 square): the centered 30 x 30 square.
  AugmentOptions square;
  square.scale_min = square.scale_max = 1;
  square.ratio_min = square.ratio_max = 1;
  b = random_resized_crop_box(50, 30, square, g);
  EXPECT_EQ(std::tie(b.top, b.left, b.height, b.width), std::make_tuple(0L, 10L, 30L, 30L));
}

TEST(Augment, RandomResizedCropResizesTheBox) {
  const Image image = ramp(64, 48);
  const AugmentOptions o;
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    Generator g1(seed), g2(seed);
    const Image out = random_resized_crop(image, 24, o, Interpolation::Bilinear, g1);
    ASSERT_EQ(out.width, 24);
    ASSERT_EQ(out.height, 24);
    const CropBox b = random_resized_crop_box(64, 48, o, g2);
    Image window{b.width, b.height, {}};
    for (std::int64_t y = 0; y < b.height; ++y)
      for (std::int64_t x = 0; x < b.width; ++x)
        for (int c = 0; c < 3; ++c) window.rgb.push_back(image.at(b.top + y, b.left + x, c));
    EXPECT_EQ(out.rgb, resize(window, 24, 24, Interpolation::Bilinear).rgb) << "seed " << seed;
  }
}

TEST(Augment, HorizontalFlipMirrorsEachRow) {
  const Image image = ramp(5, 3);
  const Image flipped = horizontal_flip(image);
  ASSERT_EQ(flipped.width, 5);
  ASSERT_EQ(flipped.height, 3);
  for (std::int64_t y = 0; y < 3; ++y)
    for (std::int64_t x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(flipped.at(y, x, c), image.at(y, 4 - x, c));
  EXPECT_EQ(horizontal_flip(flipped).rgb, image.rgb);
}

TEST(Augment, TrainTransformFlipsHalfTheTimeAndNormalises) {
  // The crop is the whole image (scale 1, the image's own ratio), so the output is the resized image or its
  // mirror, and which one depends only on the seed.
  const Image image = ramp(32, 32);
  AugmentOptions o;
  o.size = 16;
  o.scale_min = o.scale_max = 1;
  o.ratio_min = o.ratio_max = 1;
  Preprocessing p;
  p.mean = {0.5, 0.5, 0.5};
  p.std = {0.5, 0.5, 0.5};
  const Transform t = train_transform(o, p);
  const Image resized = resize(image, 16, 16, Interpolation::Bilinear);
  const auto plain = to_normalized_tensor(resized, p.mean, p.std).to_vector<float>();
  const auto mirrored = to_normalized_tensor(horizontal_flip(resized), p.mean, p.std).to_vector<float>();
  int flips = 0;
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    Generator g(seed), again(seed);
    const Tensor out = t(image, g);
    ASSERT_EQ(out.shape(), (Shape{3, 16, 16}));
    const auto v = out.to_vector<float>();
    ASSERT_TRUE(v == plain || v == mirrored) << "seed " << seed;
    flips += v == mirrored;
    EXPECT_EQ(t(image, again).to_vector<float>(), v);
    for (float x : v) ASSERT_TRUE(x >= -1 && x <= 1);
  }
  EXPECT_NEAR(flips, 200, 40);
  o.horizontal_flip = false;
  Generator g(3);
  EXPECT_EQ(train_transform(o, p)(image, g).to_vector<float>(), plain);
}

TEST(Augment, EvalTransformIsTheModelsPreprocessingAtTheGivenSize) {
  const Image image = ramp(80, 60);
  Preprocessing p;
  p.input_size = 224;  // replaced by the size given
  const Transform t = eval_transform_of(p, 32);
  Generator g(0);
  const Tensor out = t(image, g);
  ASSERT_EQ(out.shape(), (Shape{3, 32, 32}));
  Preprocessing at32 = p;
  at32.input_size = 32;
  EXPECT_EQ(out.to_vector<float>(), eval_transform(image, at32).to_vector<float>());
  EXPECT_EQ(g.offset(), 0u);  // no randomness drawn
}

TEST(Augment, BadOptionsFailWhenTheTransformIsBuilt) {
  Preprocessing p;
  AugmentOptions o;
  o.scale_min = 0.9;
  o.scale_max = 0.5;
  EXPECT_THROW(train_transform(o, p), ValueError);
  o = {};
  o.ratio_min = 0;
  EXPECT_THROW(train_transform(o, p), ValueError);
  o = {};
  o.size = 0;
  EXPECT_THROW(train_transform(o, p), ValueError);
  p.interpolation = "lanczos";
  try {
    train_transform({}, p);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("lanczos"), std::string::npos) << e.what();
  }
  EXPECT_THROW(eval_transform_of(p, 32), ValueError);
  EXPECT_THROW(eval_transform_of(Preprocessing{}, 0), ValueError);
}

}  // namespace
}  // namespace tl::data
