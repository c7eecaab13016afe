// Size-class table and block geometry (size_classes.h).
#include <handoff/size_classes.h>

#include <gtest/gtest.h>

#include <cmath>

#include <cstddef>

namespace handoff {
namespace {

TEST(SizeClasses, FirstFiveAreSixteenToEightyInStepsOfSixteen) {
  ASSERT_GE(kNumSizeClasses, 5u);
  for (std::size_t cls = 0; cls < 5; ++cls) EXPECT_EQ(class_size(cls), 16 * (cls + 1)) << "class " << cls;
}

TEST(SizeClasses, StrictlyIncreasingMultiplesOfSixteenUpToAboutEightKiB) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    EXPECT_EQ(class_size(cls) % kAtomSize, 0u) << "class " << cls;
    if (cls > 0) {
      EXPECT_GT(class_size(cls), class_size(cls - 1)) << "class " << cls;
    }
  }
  EXPECT_EQ(kMaxSmallSize, class_size(kNumSizeClasses - 1));
  EXPECT_GE(kMaxSmallSize, 7u * 1024);
  EXPECT_LE(kMaxSmallSize, 8u * 1024);
  EXPECT_LE(kNumSizeClasses, kMaxSizeClasses);
}

TEST(SizeClasses, ProgressionAboveEightyGrowsAboutOnePointFourTimes) {
  // Each step above 80 grows, by at most 1.4x the smallest request the new
  // class serves; nudging down to a whole number of cells makes some steps
  // smaller, so the average is checked to lie near 1.4x.
  double log_sum = 0;
  std::size_t steps = 0;
  for (std::size_t cls = 5; cls < kNumSizeClasses; ++cls) {
    const std::size_t prev = class_size(cls - 1);
    EXPECT_GT(class_size(cls), prev) << "class " << cls;
    EXPECT_LE(static_cast<double>(class_size(cls)), 1.4 * static_cast<double>(prev + 1))
        << "class " << cls << " (" << class_size(cls) << " after " << prev << ")";
    log_sum += std::log(static_cast<double>(class_size(cls)) / static_cast<double>(prev));
    ++steps;
  }
  const double mean_growth = std::exp(log_sum / static_cast<double>(steps));
  EXPECT_GE(mean_growth, 1.25);
  EXPECT_LE(mean_growth, 1.4);
}

TEST(SizeClasses, EverySmallSizeFitsItsClass) {
  for (std::size_t s = 1; s <= kMaxSmallSize; ++s) {
    const std::size_t cls = size_class_of(s);
    ASSERT_LT(cls, kNumSizeClasses) << "size " << s;
    ASSERT_LE(s, class_size(cls)) << "size " << s;
    // The smallest class that fits: the one below is too small.
    if (cls > 0) {
      ASSERT_LT(class_size(cls - 1), s) << "size " << s << " skipped a smaller class";
    }
  }
  EXPECT_EQ(size_class_of(1), 0u);
  EXPECT_EQ(size_class_of(16), 0u);
  EXPECT_EQ(size_class_of(17), 1u);
  EXPECT_EQ(size_class_of(kMaxSmallSize), kNumSizeClasses - 1);
}

// The bound stated in size_classes.h: s <= class_size(s) < 1.4*s + 16.
TEST(SizeClasses, SlopBoundStatedInHeaderHolds) {
  std::size_t violations = 0;
  std::size_t first_bad = 0;
  for (std::size_t s = 1; s <= kMaxSmallSize; ++s) {
    const double bound = 1.4 * static_cast<double>(s) + 16.0;
    if (!(static_cast<double>(class_size(size_class_of(s))) < bound)) {
      if (violations++ == 0) first_bad = s;
    }
  }
  EXPECT_EQ(violations, 0u) << "class_size(size_class_of(s)) < 1.4*s + 16 fails for " << violations
                            << " sizes; first s = " << first_bad << " -> class size "
                            << (first_bad ? class_size(size_class_of(first_bad)) : 0);
}

TEST(SizeClasses, CellsFitThePayloadAndWasteLessThanAnAtomPerCell) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    const std::size_t cells = cells_per_block(cls);
    ASSERT_GE(cells, 1u) << "class " << cls;
    EXPECT_LE(cells * class_size(cls), kBlockPayloadSize) << "class " << cls;
    const std::size_t waste = kBlockPayloadSize - cells * class_size(cls);
    EXPECT_LT(waste, class_size(cls)) << "class " << cls << ": another cell would fit";
    if (class_size(cls) == detail::nudge(class_size(cls))) {
      EXPECT_LT(waste, cells * kAtomSize) << "class " << cls << ": nudging left " << waste << " bytes";
    } else {
      // Unnudged only where no nudged size fits between the previous class
      // and the slop bound: then the class is the bound itself.
      ASSERT_GT(cls, 0u);
      EXPECT_EQ(class_size(cls), detail::bound_after(class_size(cls - 1))) << "class " << cls;
      EXPECT_LE(detail::largest_nudged_at_most(class_size(cls)), class_size(cls - 1)) << "class " << cls;
    }
  }
}

TEST(SizeClasses, BlockGeometryConstants) {
  EXPECT_EQ(kBlockSize, 16u * 1024);
  EXPECT_EQ(kBlockSize % kAtomSize, 0u);
  EXPECT_EQ(kBlockHeaderSize % kAtomSize, 0u) << "cells must start on an atom";
  EXPECT_EQ(kBlockPayloadSize + kBlockHeaderSize, kBlockSize);
  EXPECT_EQ(kAtomsPerBlock * kAtomSize, kBlockSize);
}

}  // namespace
}  // namespace handoff
