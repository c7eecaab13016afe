// Negative controls for the collector's safety mechanisms (test hooks): with
// a mechanism switched off, the failure it prevents must appear.
//   stack scanning   off: an object held only by a local is collected
//   verifier         a reachable object's mark dropped: the verifier aborts
//   write barrier    an eden collection that ignores the barrier's cards
//                    loses a new object stored into an old one: the
//                    verifier aborts (and, without it, ASan reports the read)
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

struct Holder {
  handoff::Member<Holder> next;
  long value = 0;
  void trace(handoff::Visitor& v) const { v.trace(next); }
};

[[gnu::noinline]] void store_new_object(handoff::Heap& heap, Holder* old) {
  Holder* young = heap.make<Holder>();
  young->value = 77;
  old->next = young;  // the barrier records this store
}

[[gnu::noinline]] void scrub() {
  volatile long words[4096];
  for (auto& w : words) w = 0;
}

// Runs an eden collection after storing a new object into an old one;
// returns whether the new object is still intact.
bool eden_keeps_the_stored_object(bool drop_remembered, bool verify) {
  handoff::HeapConfig config = quiet_config();
  config.generational = 1;
  config.sync_sweep = 1;
  config.verify = verify ? 1 : 0;
  handoff::Heap heap(config);
  handoff::ThreadScope attached(heap);
  handoff::Root<Holder> old(heap, heap.make<Holder>());
  heap.collect();  // full: `old` is old
  store_new_object(heap, old.get());
  scrub();
  heap.set_test_hooks({.drop_remembered = drop_remembered});
  heap.collect(handoff::CollectionScope::kEden);
  heap.set_test_hooks({});
  return heap.is_heap_object(old->next.get()) && old->next->value == 77;
}

TEST(CollectorNegativeControl, TheBarrierKeepsANewObjectStoredIntoAnOldOne) {
  EXPECT_TRUE(eden_keeps_the_stored_object(false, true));
}

TEST(CollectorNegativeControlDeathTest, VerifierCatchesAnEdenCollectionThatIgnoresTheBarrier) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(eden_keeps_the_stored_object(true, true), "reachable object\\(s\\) were not marked");
}

// Without the verifier the lost object is freed while reachable: the heap
// no longer knows it as an object (and ASan, where it runs, would report
// the read of the freed cell, so the check is made without reading it).
TEST(CollectorNegativeControl, WithoutTheBarrierAnEdenCollectionFreesAReachableObject) {
  handoff::HeapConfig config = quiet_config();
  config.generational = 1;
  config.sync_sweep = 1;  // the lost cell is freed inside the collection
  handoff::Heap heap(config);
  handoff::ThreadScope attached(heap);
  handoff::Root<Holder> old(heap, heap.make<Holder>());
  heap.collect();
  store_new_object(heap, old.get());
  scrub();
  heap.set_test_hooks({.drop_remembered = true});
  heap.collect(handoff::CollectionScope::kEden);
  heap.set_test_hooks({});
  EXPECT_FALSE(heap.is_heap_object(old->next.get())) << "the planted bug went unnoticed";
}

}  // namespace

#endif  // HANDOFF_TEST_HOOKS
