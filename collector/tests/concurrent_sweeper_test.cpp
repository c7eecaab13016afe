// Placeholder replaced by the sweeper test suite.
#include <handoff/concurrent_sweeper.h>

#include <gtest/gtest.h>

TEST(ConcurrentSweeper, StartsAndStops) {
  handoff::Allocator heap{handoff::AllocatorConfig{}};
  handoff::ConcurrentSweeper sweeper(heap, handoff::SweeperConfig{});
  EXPECT_TRUE(sweeper.stats().running);
}
