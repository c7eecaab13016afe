// The cache budget (cache_budget.h): the rule as a function, and the heap's
// trigger after collections that find almost nothing alive and after ones
// that find more.
#include "cache_budget.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "tree_support.h"

namespace {

using handoff::detail::cache_budget_trigger;
using handoff::detail::kCacheBudgetSurvivalPermille;

constexpr std::uint64_t kMiB = 1 << 20;

TEST(CacheBudget, CapsTheTriggerOnlyWhenAlmostNothingSurvived) {
  const std::uint64_t allocated = 8 * kMiB;
  const std::uint64_t threshold = allocated / 1000 * kCacheBudgetSurvivalPermille;
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, allocated, 4 * kMiB), 4 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, threshold - 1, allocated, 4 * kMiB), 4 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, threshold, allocated, 4 * kMiB), 8 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, allocated, allocated, 4 * kMiB), 8 * kMiB);
}

TEST(CacheBudget, NeverRaisesTheTriggerAndZeroSwitchesItOff) {
  EXPECT_EQ(cache_budget_trigger(2 * kMiB, 0, 8 * kMiB, 4 * kMiB), 2 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, 8 * kMiB, 0), 8 * kMiB);
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, 0, 4 * kMiB), 8 * kMiB) << "nothing allocated: nothing to judge";
  EXPECT_EQ(cache_budget_trigger(8 * kMiB, 0, 8 * kMiB, 1), 1u);
}

using handoff::tree_support::Node;
using handoff::tree_support::tree;

// 31 nodes (one stale stack word keeps at most that many alive); out of
// line so that no pointer into the tree stays in the
// caller's frame.
[[gnu::noinline]] Node* make_tree(handoff::Heap& heap) { return tree(heap, 4); }

handoff::HeapConfig budget_config() {
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.initial_heap_bytes = 8 * kMiB;
  config.cache_budget_bytes = 1 * kMiB;
  config.collect_every = 0;
  config.immortal = 0;
  return config;
}

// Allocates at least `bytes` in trees (cells of 32 B or more), keeping every
// `keep_every`-th one (0: none) in `kept`.
void churn(handoff::Heap& heap, std::uint64_t bytes, int keep_every, std::vector<std::unique_ptr<handoff::Root<Node>>>& kept) {
  const std::uint64_t trees = bytes / (31 * 32);
  for (std::uint64_t i = 1; i <= trees; ++i) {
    Node* t = make_tree(heap);
    if (keep_every != 0 && i % keep_every == 0) kept.push_back(std::make_unique<handoff::Root<Node>>(heap, t));
  }
}

TEST(CacheBudget, ChurnThatLeavesNothingAliveIsCollectedAfterTheCacheBudget) {
  handoff::Heap heap(budget_config());
  handoff::ThreadScope attached(heap);
  std::vector<std::unique_ptr<handoff::Root<Node>>> kept;
  churn(heap, 24 * kMiB, 0, kept);
  const handoff::HeapStats s = heap.stats();
  EXPECT_EQ(s.trigger_bytes, 1 * kMiB);
  EXPECT_GE(s.collections, 8u) << "8 MiB apart, 24 MiB would be 2 or 3 collections";
}

TEST(CacheBudget, AHeapWhoseYoungSurviveKeepsItsWholeBudget) {
  handoff::Heap heap(budget_config());
  handoff::ThreadScope attached(heap);
  std::vector<std::unique_ptr<handoff::Root<Node>>> kept;
  churn(heap, 24 * kMiB, 10, kept);  // a tenth survives
  const handoff::HeapStats s = heap.stats();
  ASSERT_GE(s.collections, 1u);
  EXPECT_GE(s.trigger_bytes, 4 * kMiB);
  EXPECT_LE(s.collections, 6u);
}

}  // namespace
