// Negative controls for the collector's safety mechanisms (test hooks): with
// a mechanism switched off, the failure it prevents must appear.
//   stack scanning   off: an object held only by a local is collected
//   verifier         a reachable object's mark dropped: the verifier aborts
#include <handoff/heap.h>

#include <gtest/gtest.h>

#if defined(HANDOFF_TEST_HOOKS)

namespace {

struct Cell {
  long value = 0;
  void trace(handoff::Visitor&) const {}
};

handoff::HeapConfig quiet_config() {
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.collect_every = 0;
  config.verify = 0;
  config.immortal = 0;
  return config;
}

// Collects with only a local holding `cell`; returns whether the weak
// reference survived. The local stays in use after the collection.
[[gnu::noinline]] bool survives_with_only_a_local(handoff::Heap& heap) {
  Cell* volatile local = heap.make<Cell>();
  local->value = 42;
  handoff::Weak<Cell> weak(heap, local);
  heap.collect();
  const bool alive = weak.get() != nullptr;
  EXPECT_TRUE(!alive || local->value == 42);
  return alive;
}

TEST(CollectorNegativeControl, StackScanningKeepsLocalsAlive) {
  handoff::Heap heap(quiet_config());
  handoff::ThreadScope attached(heap);
  EXPECT_TRUE(survives_with_only_a_local(heap));
}

TEST(CollectorNegativeControl, WithoutStackScanningALocalIsCollected) {
  handoff::Heap heap(quiet_config());
  handoff::ThreadScope attached(heap);
  heap.set_test_hooks({.scan_stacks = false});
  EXPECT_FALSE(survives_with_only_a_local(heap));
}

TEST(CollectorNegativeControlDeathTest, VerifierCatchesAMissingMark) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        handoff::HeapConfig config = quiet_config();
        config.verify = 1;
        handoff::Heap heap(config);
        handoff::ThreadScope attached(heap);
        handoff::Root<Cell> root(heap, heap.make<Cell>());
        heap.collect();  // passes
        heap.set_test_hooks({.drop_one_mark = true});
        heap.collect();  // must not
      },
      "reachable object\\(s\\) were not marked");
}

TEST(CollectorNegativeControl, VerifierPassesWithAllMarks) {
  handoff::HeapConfig config = quiet_config();
  config.verify = 1;
  handoff::Heap heap(config);
  handoff::ThreadScope attached(heap);
  handoff::Root<Cell> root(heap, heap.make<Cell>());
  heap.collect();
  EXPECT_GE(heap.stats().verifications, 1u);
}

}  // namespace

#endif  // HANDOFF_TEST_HOOKS
