// Destructors and finalizers: each runs exactly once per object; a
// finalizer runs after the collection that found its object unreachable,
// may allocate and may read the objects its object references (they are
// kept alive for it), and the destructor of a finalizable object runs only
// afterwards, in a later collection. Objects still alive when the heap is
// destroyed have their destructors run by ~Heap.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace handoff::test {
namespace {

// Per-object counts and the logical time of each event. Destructors may run
// on the sweeper thread, hence atomics throughout.
struct Tally {
  explicit Tally(std::size_t n) : destroyed(n), finalized(n), destroy_time(n), finalize_time(n) {}
  std::vector<std::atomic<int>> destroyed;
  std::vector<std::atomic<int>> finalized;
  std::vector<std::atomic<std::uint64_t>> destroy_time;
  std::vector<std::atomic<std::uint64_t>> finalize_time;
  std::atomic<std::uint64_t> clock{1};
  std::atomic<int> bad_children{0};

  void on_destroy(std::size_t id) {
    destroy_time[id].store(clock.fetch_add(1), std::memory_order_relaxed);
    destroyed[id].fetch_add(1, std::memory_order_relaxed);
  }
  void on_finalize(std::size_t id) {
    finalize_time[id].store(clock.fetch_add(1), std::memory_order_relaxed);
    finalized[id].fetch_add(1, std::memory_order_relaxed);
  }
};

Tally* g_tally = nullptr;

struct Counted : Leaf {
  std::size_t id;
  explicit Counted(std::size_t object_id) : id(object_id) {}
  ~Counted() { g_tally->on_destroy(id); }
};

// A large object with a destructor (header plus trailing bytes).
struct CountedLarge : Leaf {
  std::size_t id;
  explicit CountedLarge(std::size_t object_id) : id(object_id) {}
  ~CountedLarge() { g_tally->on_destroy(id); }
};

// Finalizes by checking the child it references and allocating a node that
// it publishes into a rooted array.
struct Finalized {
  Member<Node> child;
  std::size_t id;
  Heap* heap;
  NodeArray* made;  // rooted by the test
  std::size_t slot;

  Finalized(std::size_t object_id, Heap& owner, NodeArray& made_by_finalizers, std::size_t made_slot)
      : id(object_id), heap(&owner), made(&made_by_finalizers), slot(made_slot) {}
  ~Finalized() { g_tally->on_destroy(id); }
  void finalize() {
    g_tally->on_finalize(id);
    if (child.get() == nullptr || !child->intact(id)) g_tally->bad_children.fetch_add(1);
    (*made)[slot] = heap->make<Node>(id);
  }
  void trace(Visitor& visitor) const { visitor.trace(child); }
};

struct Population {
  std::size_t counted = 0;        // ids [0, counted)
  std::size_t large = 0;          // ids [counted, counted + large)
  std::size_t finalized = 0;      // ids [first_finalized, first_finalized + finalized)
  std::size_t first_finalized = 0;
  std::size_t total() const { return first_finalized + finalized; }
  // The first quarter of each kind stays rooted until the heap dies.
  bool kept(std::size_t id) const {
    if (id < counted) return id < counted / 4;
    if (id < counted + large) return id - counted < large / 4;
    return id - first_finalized < finalized / 4;
  }
  bool finalizable(std::size_t id) const { return id >= first_finalized; }
};

struct Kept {
  std::vector<std::unique_ptr<Root<Counted>>> counted;
  std::vector<std::unique_ptr<Root<CountedLarge>>> large;
  std::vector<std::unique_ptr<Root<Finalized>>> finalized;
};

[[gnu::noinline]] void make_population(Heap& heap, const Population& p, NodeArray& made, Kept& kept) {
  for (std::size_t id = 0; id < p.counted; ++id) {
    Counted* object = heap.make<Counted>(id);
    if (p.kept(id)) kept.counted.push_back(std::make_unique<Root<Counted>>(heap, object));
  }
  for (std::size_t id = p.counted; id < p.counted + p.large; ++id) {
    CountedLarge* object = heap.make_with_extra<CountedLarge>(9000, id);
    if (p.kept(id)) kept.large.push_back(std::make_unique<Root<CountedLarge>>(heap, object));
  }
  for (std::size_t id = p.first_finalized; id < p.total(); ++id) {
    Finalized* object = heap.make<Finalized>(id, heap, made, id - p.first_finalized);
    object->child = heap.make<Node>(id);
    if (p.kept(id)) kept.finalized.push_back(std::make_unique<Root<Finalized>>(heap, object));
  }
}

struct Counts {
  std::size_t destroyed = 0;
  std::size_t finalized = 0;
  std::size_t garbage = 0;
};

Counts count_garbage(const Tally& tally, const Population& p, bool finalizable) {
  Counts c;
  for (std::size_t id = 0; id < p.total(); ++id) {
    if (p.kept(id) || p.finalizable(id) != finalizable) continue;
    if (!finalizable && id >= p.counted + p.large) continue;
    ++c.garbage;
    c.destroyed += tally.destroyed[id].load() != 0 ? 1 : 0;
    c.finalized += tally.finalized[id].load() != 0 ? 1 : 0;
  }
  return c;
}

::testing::AssertionResult at_most_once(const Tally& tally, std::size_t n) {
  for (std::size_t id = 0; id < n; ++id) {
    if (tally.destroyed[id].load() > 1 || tally.finalized[id].load() > 1) {
      return ::testing::AssertionFailure() << "object " << id << ": destroyed " << tally.destroyed[id].load()
                                           << " times, finalized " << tally.finalized[id].load() << " times";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

void run_finalizer_scenario(const HeapConfig& config, Size size) {
  const std::size_t n = size == Size::kFull ? sized(2000, 1000, 200) : 200;
  Population p;
  p.counted = n;
  p.large = 20;
  p.first_finalized = p.counted + p.large;
  p.finalized = n;
  Tally tally(p.total());
  g_tally = &tally;
  std::uint64_t heap_death_time = 0;
  {
    Heap heap(config);
    ThreadScope attached(heap);
    Root<NodeArray> made(heap, heap.make_array<Member<Node>>(p.finalized));
    Kept kept;
    make_population(heap, p, *made, kept);

    const bool first_collection = heap.stats().collections == 0;  // not so under collect-every
    scrub_and_collect(heap, 1);
    heap.run_finalizers();
    // Finalizers ran (on return from collect or just now), but no
    // finalizable object may be destroyed by the collection that queued it.
    for (std::size_t id = p.first_finalized; first_collection && id < p.total(); ++id) {
      ASSERT_EQ(tally.destroyed[id].load(), 0) << "finalizable object " << id
                                                << " destroyed by the collection that found it unreachable";
    }
    for (int round = 0; round < 5; ++round) {
      scrub_and_collect(heap, 1);
      heap.run_finalizers();
    }
    ASSERT_TRUE(at_most_once(tally, p.total()));
    for (std::size_t id = 0; id < p.total(); ++id) {
      if (!p.kept(id)) continue;
      ASSERT_EQ(tally.destroyed[id].load(), 0) << "rooted object " << id << " destroyed";
      ASSERT_EQ(tally.finalized[id].load(), 0) << "rooted object " << id << " finalized";
    }
    EXPECT_EQ(tally.bad_children.load(), 0) << "finalizers saw a freed or corrupt child";
    if (config.immortal == 0) {
      const Counts plain = count_garbage(tally, p, false);
      const Counts fin = count_garbage(tally, p, true);
      EXPECT_GE(plain.destroyed, plain.garbage * 9 / 10) << "of " << plain.garbage << " unreachable plain objects";
      EXPECT_GE(fin.finalized, fin.garbage * 9 / 10) << "of " << fin.garbage << " unreachable finalizable objects";
      EXPECT_GE(fin.destroyed, fin.garbage * 9 / 10) << "finalized objects not destroyed by later collections";
      const HeapStats stats = heap.stats();
      EXPECT_GE(stats.finalizers_run, fin.finalized);
      EXPECT_EQ(stats.finalizers_run, stats.finalizers_queued);
    }
    // What finalizers allocated is alive and intact.
    for (std::size_t id = p.first_finalized; id < p.total(); ++id) {
      Node* node = (*made)[id - p.first_finalized].get();
      if (tally.finalized[id].load() == 0) {
        EXPECT_EQ(node, nullptr);
        continue;
      }
      ASSERT_NE(node, nullptr) << "finalizer of " << id << " ran but its allocation is missing";
      ASSERT_TRUE(node->intact(id)) << "node made by the finalizer of " << id;
    }
    heap_death_time = tally.clock.load();
  }
  for (std::size_t id = 0; id < p.total(); ++id) {
    ASSERT_EQ(tally.destroyed[id].load(), 1) << "object " << id << " (kept: " << p.kept(id) << ")";
    ASSERT_LE(tally.finalized[id].load(), 1) << "object " << id;
    const std::uint64_t destroyed_at = tally.destroy_time[id].load();
    if (p.finalizable(id) && destroyed_at < heap_death_time) {
      ASSERT_EQ(tally.finalized[id].load(), 1) << "object " << id << " destroyed before the heap without a finalizer";
      ASSERT_LT(tally.finalize_time[id].load(), destroyed_at) << "object " << id << " destroyed before finalized";
    }
  }
  g_tally = nullptr;
}

TEST(Finalizers, DestructorsAndFinalizersRunExactlyOnceInOrder) {
  run_finalizer_scenario(env_config(), Size::kFull);
}

TEST(Finalizers, RunFinalizersDrainsWhatAllocationTriggeredCollectionsQueued) {
  on_fresh_thread([] {  // heap_test_support.h: ASan's fake stacks
    HeapConfig config = env_config();
    HANDOFF_SKIP_IF_IMMORTAL(config);
    // Small, so that the policy's allocation criterion runs full collections
    // soon even when every collection is triggered (HANDOFF_COLLECT_EVERY).
    config.initial_heap_bytes = 16 << 10;
    const std::size_t n = sized(500, 300, 100);
    Tally tally(n);
    g_tally = &tally;
    {
      Heap heap(config);
      ThreadScope attached(heap);
      Root<NodeArray> made(heap, heap.make_array<Member<Node>>(n));
      Kept kept;
      Population p;
      p.finalized = n;
      make_population(heap, p, *made, kept);
      scrub_stack();
      // Garbage until the trigger has run a few collections, two of them full
      // (objects that an eden collection promoted die only in a full one),
      // without collect().
      const auto enough = [&] {
        const HeapStats s = heap.stats();
        return s.collections >= 3 && s.full_collections >= 2;
      };
      for (std::size_t i = 0; i < 4'000'000 && (i % 1024 != 0 || !enough()); ++i) heap.make<Node>(i);
      ASSERT_TRUE(enough()) << heap.stats().collections << " collections, " << heap.stats().full_collections << " full";
      heap.run_finalizers();
      const HeapStats stats = heap.stats();
      EXPECT_EQ(stats.finalizers_run, stats.finalizers_queued);
      std::size_t finalized = 0;
      for (std::size_t id = n / 4; id < n; ++id) finalized += tally.finalized[id].load();
      EXPECT_GE(finalized, (n - n / 4) * 9 / 10);
      EXPECT_EQ(heap.run_finalizers(), 0u) << "the queue should be empty";
    }
    for (std::size_t id = 0; id < n; ++id) ASSERT_EQ(tally.destroyed[id].load(), 1) << "object " << id;
    g_tally = nullptr;
  });
}

// Finalizable garbage made by several threads, each of which collects:
// every collecting thread runs the queued finalizers, yet each object is
// finalized once and destroyed once.
TEST(Finalizers, ManyCollectingThreadsStillFinalizeOnce) {
  const unsigned threads = mutator_threads();
  const std::size_t per_thread = sized(1000, 300, 100);
  const std::size_t n = threads * per_thread;
  Tally tally(n);
  g_tally = &tally;
  {
    Watchdog watchdog(watchdog_limit(), "Finalizers.ManyCollectingThreadsStillFinalizeOnce");
    Heap heap(env_config());
    ThreadScope attached(heap);
    Root<NodeArray> made(heap, heap.make_array<Member<Node>>(n));
    NodeArray* made_array = made.get();  // a Root is used by one thread at a time
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        ThreadScope scope(heap);
        for (std::size_t k = 0; k < per_thread; ++k) {
          const std::size_t id = t * per_thread + k;
          Finalized* object = heap.make<Finalized>(id, heap, *made_array, id);
          object->child = heap.make<Node>(id);
          if (k % 50 == 49) heap.collect();
        }
        heap.collect();
        heap.run_finalizers();
      });
    }
    {
      ParkedScope parked(heap);
      for (auto& worker : workers) worker.join();
    }
    for (int round = 0; round < 4; ++round) {
      scrub_and_collect(heap, 1);
      heap.run_finalizers();
    }
    ASSERT_TRUE(at_most_once(tally, n));
    EXPECT_EQ(tally.bad_children.load(), 0);
    if (heap.config().immortal == 0) {
      std::size_t finalized = 0;
      for (std::size_t id = 0; id < n; ++id) finalized += static_cast<std::size_t>(tally.finalized[id].load());
      EXPECT_GE(finalized, n * 9 / 10);
    }
    for (std::size_t id = 0; id < n; ++id) {
      if (tally.finalized[id].load() == 0) continue;
      ASSERT_TRUE((*made)[id] && (*made)[id]->intact(id)) << "allocation of the finalizer of " << id;
    }
  }
  for (std::size_t id = 0; id < n; ++id) ASSERT_EQ(tally.destroyed[id].load(), 1) << "object " << id;
  g_tally = nullptr;
}

// A finalizer that stores its object into a rooted array resurrects it:
// the object stays alive and intact, and its finalizer never runs again.
struct Resurrecting {
  std::size_t id;
  Array<Member<Resurrecting>>* saved;  // rooted by the test
  Resurrecting(std::size_t object_id, Array<Member<Resurrecting>>& save_to) : id(object_id), saved(&save_to) {}
  ~Resurrecting() { g_tally->on_destroy(id); }
  void finalize() {
    g_tally->on_finalize(id);
    (*saved)[id] = this;
  }
  void trace(Visitor&) const {}
};

[[gnu::noinline]] void make_resurrecting(Heap& heap, Array<Member<Resurrecting>>& saved, std::size_t n) {
  for (std::size_t id = 0; id < n; ++id) heap.make<Resurrecting>(id, saved);
}

TEST(Finalizers, ResurrectedObjectsStayAliveAndAreFinalizedOnce) {
  const HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  const std::size_t n = 200;
  Tally tally(n);
  g_tally = &tally;
  {
    Heap heap(config);
    ThreadScope attached(heap);
    Root<Array<Member<Resurrecting>>> saved(heap, heap.make_array<Member<Resurrecting>>(n));
    make_resurrecting(heap, *saved, n);
    for (int round = 0; round < 3; ++round) {
      scrub_and_collect(heap, 1);
      heap.run_finalizers();
    }
    std::size_t resurrected = 0;
    for (std::size_t id = 0; id < n; ++id) {
      ASSERT_LE(tally.finalized[id].load(), 1) << "object " << id;
      if ((*saved)[id].get() == nullptr) continue;
      ++resurrected;
      ASSERT_EQ(tally.destroyed[id].load(), 0) << "resurrected object " << id << " was destroyed";
      ASSERT_EQ((*saved)[id]->id, id);
    }
    EXPECT_GE(resurrected, n * 9 / 10);
    // Unreachable again: destroyed this time, without a second finalization.
    for (std::size_t id = 0; id < n; ++id) (*saved)[id] = nullptr;
    for (int round = 0; round < 3; ++round) {
      scrub_and_collect(heap, 1);
      heap.run_finalizers();
    }
    ASSERT_TRUE(at_most_once(tally, n));
  }
  for (std::size_t id = 0; id < n; ++id) ASSERT_EQ(tally.destroyed[id].load(), 1) << "object " << id;
  g_tally = nullptr;
}

using WeakFinalized = std::vector<std::unique_ptr<Weak<Finalized>>>;

[[gnu::noinline]] void make_watched_finalizable(Heap& heap, NodeArray& made, WeakFinalized& weaks, std::size_t n) {
  for (std::size_t id = 0; id < n; ++id) {
    Finalized* object = heap.make<Finalized>(id, heap, made, id);
    object->child = heap.make<Node>(id);
    weaks.push_back(std::make_unique<Weak<Finalized>>(heap, object));
  }
}

// heap.h: weak references to unmarked objects are cleared before the
// unreachable finalizable ones are kept for their finalizers, so a weak
// reference never hands out an object whose finalizer has run.
TEST(Finalizers, WeakReferencesToFinalizableGarbageAreClearedBeforeFinalization) {
  const HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  const std::size_t n = 200;
  Tally tally(n);
  g_tally = &tally;
  {
    Heap heap(config);
    ThreadScope attached(heap);
    Root<NodeArray> made(heap, heap.make_array<Member<Node>>(n));
    WeakFinalized weaks;
    make_watched_finalizable(heap, *made, weaks, n);
    for (int round = 0; round < 3; ++round) {
      scrub_and_collect(heap, 1);
      heap.run_finalizers();
      for (std::size_t id = 0; id < n; ++id) {
        if (tally.finalized[id].load() != 0) {
          ASSERT_EQ(weaks[id]->get(), nullptr) << "weak reference to finalized object " << id << " not cleared";
        }
      }
    }
    std::size_t finalized = 0;
    for (std::size_t id = 0; id < n; ++id) finalized += tally.finalized[id].load() != 0 ? 1 : 0;
    EXPECT_GE(finalized, n * 9 / 10);
  }
  g_tally = nullptr;
}

TEST(Destructors, RunAtHeapDestructionForLiveObjects) {
  const std::size_t n = 300;
  Tally tally(n);
  g_tally = &tally;
  {
    Heap heap(env_config());
    ThreadScope attached(heap);
    std::vector<std::unique_ptr<Root<Counted>>> roots;
    for (std::size_t id = 0; id < n; ++id) roots.push_back(std::make_unique<Root<Counted>>(heap, heap.make<Counted>(id)));
    heap.collect();
    heap.collect();
    for (std::size_t id = 0; id < n; ++id) ASSERT_EQ(tally.destroyed[id].load(), 0) << "rooted object " << id;
  }
  for (std::size_t id = 0; id < n; ++id) ASSERT_EQ(tally.destroyed[id].load(), 1) << "object " << id;
  g_tally = nullptr;
}

#if !defined(NDEBUG)
struct TouchesHeapInDestructor : Leaf {
  Heap* heap;
  explicit TouchesHeapInDestructor(Heap& owner) : heap(&owner) {}
  ~TouchesHeapInDestructor() { heap->make<Node>(1); }
};

[[gnu::noinline]] void make_bad_destructor_garbage(Heap& heap) {
  for (int i = 0; i < 100; ++i) heap.make<TouchesHeapInDestructor>(heap);
}

// Debug builds catch a destructor that allocates (destructors run inside a
// sweep, where the heap is not in a state to allocate).
TEST(DestructorsDeathTest, AllocatingInADestructorAbortsInDebugBuilds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        HeapConfig config = env_config();
        config.sync_sweep = 1;
        Heap heap(config);
        ThreadScope attached(heap);
        make_bad_destructor_garbage(heap);
        scrub_and_collect(heap, 3);
      },
      "destructor");
}
#endif

}  // namespace handoff::test
