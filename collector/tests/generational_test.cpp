// Generational collection: sticky marks, the write barrier, eden and full
// collections and the policy between them (remembered_set.cpp,
// collection.cpp, write_barrier.h). Each test builds old objects with a full
// collection, then stores new objects into them and runs eden collections.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace handoff::test {
namespace {

HeapConfig generational_config() {
  HeapConfig config = env_config();
  config.generational = 1;
  config.collect_every = 0;  // these tests say which collections run
  config.immortal = 0;
  config.verify = 1;         // every collection is checked by a second, full marking
  return config;
}

// Weak handles live off the stack here: a Weak on the stack holds its
// target's address in plain form, which the conservative scan would take
// for a root.
template <class T>
std::unique_ptr<Weak<T>> weak_to(Heap& heap, T* object) {
  return std::make_unique<Weak<T>>(heap, object);
}

// A weak reference to a new node that nothing else references.
[[gnu::noinline]] std::unique_ptr<Weak<Node>> weak_to_garbage(Heap& heap, std::uint64_t id) {
  return weak_to(heap, heap.make<Node>(id));
}

// Whether a weak reference is still set, without leaving its target's
// address in the caller's frame.
[[gnu::noinline]] bool alive(const std::unique_ptr<Weak<Node>>& weak) { return weak->get() != nullptr; }

// A weak reference to holder.next, which is then unlinked.
[[gnu::noinline]] std::unique_ptr<Weak<Node>> weak_to_next_then_drop(Heap& heap, Node& holder) {
  auto weak = weak_to(heap, holder.next.get());
  holder.next = nullptr;
  return weak;
}

// Allocates a node from a frame that is gone when the caller collects, so
// that only what the test stores keeps it alive.
[[gnu::noinline]] Node* fresh(Heap& heap, std::uint64_t id) { return heap.make<Node>(id); }

// One old object (survived a full collection) with a new object stored into
// it afterwards, reachable only through that store.
[[gnu::noinline]] void store_new_into_old(Heap& heap, Node* old, std::uint64_t id) { old->next = fresh(heap, id); }

TEST(Generational, EdenKeepsANewObjectStoredIntoAnOldOne) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  Root<Node> old(heap, heap.make<Node>(1));
  scrub_and_collect(heap, 1);  // full: `old` is old now
  store_new_into_old(heap, old.get(), 2);
  scrub_stack();
  ASSERT_TRUE(heap.collect(CollectionScope::kEden));
  EXPECT_EQ(heap.stats().eden_collections, 1u);
  EXPECT_GE(heap.stats().remembered_cards, 1u);
  ASSERT_NE(old->next.get(), nullptr);
  EXPECT_TRUE(old->next->intact(2));
  // And it stays alive through more eden and full collections.
  scrub_stack();
  heap.collect(CollectionScope::kEden);
  scrub_and_collect(heap, 1);
  EXPECT_TRUE(old->next->intact(2));
}

TEST(Generational, EdenReclaimsDeadNewObjectsAndKeepsDeadOldOnesUntilAFullCollection) {
  on_fresh_thread([] {  // heap_test_support.h: ASan's fake stacks
    Heap heap(generational_config());
    ThreadScope attached(heap);
    Root<Node> holder(heap, heap.make<Node>(1));
    store_new_into_old(heap, holder.get(), 2);
    scrub_and_collect(heap, 1);  // both old
    auto old_weak = weak_to_next_then_drop(heap, *holder);  // the old object dies
    auto young_weak = weak_to_garbage(heap, 3);  // a new object that is garbage at once
    scrub_stack();
    heap.collect(CollectionScope::kEden);
    EXPECT_FALSE(alive(young_weak)) << "a dead new object survived an eden collection";
    EXPECT_TRUE(alive(old_weak)) << "an eden collection must keep old objects' marks";
    scrub_and_collect(heap, 1);
    EXPECT_FALSE(alive(old_weak)) << "a full collection must reclaim a dead old object";
  });
}

TEST(Generational, ConservativeStackRootsKeepNewObjectsAcrossEden) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  scrub_and_collect(heap, 1);
  Node* volatile local = heap.make<Node>(7);
  heap.collect(CollectionScope::kEden);
  EXPECT_TRUE(local->intact(7));
}

TEST(Generational, LongChainsBuiltAcrossManyEdenCollectionsSurvive) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  Root<Node> head(heap, heap.make<Node>(0));
  Node* tail = head.get();
  const std::size_t n = sized(2000, 500, 100);
  for (std::uint64_t id = 1; id <= n; ++id) {
    tail->next = heap.make<Node>(id);  // old -> new after each collection
    tail = tail->next.get();
    if (id % 50 == 0) heap.collect(id % 500 == 0 ? CollectionScope::kFull : CollectionScope::kEden);
  }
  tail = nullptr;
  scrub_stack();
  heap.collect(CollectionScope::kEden);
  std::uint64_t id = 0;
  for (Node* node = head.get(); node != nullptr; node = node->next.get()) ASSERT_TRUE(node->intact(id++));
  EXPECT_EQ(id, n + 1);
}

// An array of Members in a large object: large objects have no cards, so
// every eden collection traces the old ones that hold references.
TEST(Generational, NewObjectsStoredIntoAnOldLargeArraySurvive) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  const std::size_t n = kMaxSmallSize;  // 8 B elements: a large object
  Root<NodeArray> array(heap, heap.make_array<Member<Node>>(n));
  scrub_and_collect(heap, 1);
  for (std::size_t i = 0; i < n; i += 97) (*array)[i] = fresh(heap, i);
  scrub_stack();
  heap.collect(CollectionScope::kEden);
  for (std::size_t i = 0; i < n; i += 97) ASSERT_TRUE((*array)[i]->intact(i)) << i;
}

TEST(Generational, WeakReferencesToOldObjectsSurviveEdenAndToDeadNewOnesAreCleared) {
  on_fresh_thread([] {  // heap_test_support.h: ASan's fake stacks
    Heap heap(generational_config());
    ThreadScope attached(heap);
    Root<Node> old(heap, heap.make<Node>(1));
    scrub_and_collect(heap, 1);
    auto to_old = weak_to(heap, old.get());
    auto to_new = weak_to_garbage(heap, 2);
    scrub_stack();
    heap.collect(CollectionScope::kEden);
    EXPECT_EQ(to_old->get(), old.get());
    EXPECT_EQ(to_new->get(), nullptr);
  });
}

int g_finalized = 0;
struct Finalized {
  Member<Node> payload;
  void trace(Visitor& v) const { v.trace(payload); }
  void finalize() { ++g_finalized; }
};

[[gnu::noinline]] void make_finalized(Heap& heap) { heap.make<Finalized>(); }
// One that survives a full collection (rooted meanwhile), then is dropped.
[[gnu::noinline]] void make_old_finalized(Heap& heap) {
  Root<Finalized> old(heap, heap.make<Finalized>());
  heap.collect();
}

TEST(Generational, FinalizersOfNewObjectsRunAfterEdenAndOfOldOnesAfterFull) {
  on_fresh_thread([] {  // heap_test_support.h: ASan's fake stacks
    Heap heap(generational_config());
    ThreadScope attached(heap);
    g_finalized = 0;
    make_old_finalized(heap);  // now unreachable but old
    make_finalized(heap);  // unreachable and new
    scrub_stack();
    heap.collect(CollectionScope::kEden);
    heap.run_finalizers();
    EXPECT_EQ(g_finalized, 1) << "only the new object's finalizer runs after an eden collection";
    scrub_and_collect(heap, 1);
    heap.run_finalizers();
    EXPECT_EQ(g_finalized, 2);
  });
}

// A constructor that allocates, so that a collection runs inside it: the
// object is then marked (old) while its later fields are still being set by
// Member construction, which has no barrier.
struct Builder {
  Member<Node> a;
  Member<Node> b;
  Member<Node> c;
  Builder(Heap& heap, std::uint64_t id)
      : a(fresh(heap, id)), b(collect_then(heap, fresh(heap, id + 1))), c(collect_then(heap, fresh(heap, id + 2))) {}
  static Node* collect_then(Heap& heap, Node* node) {
    Root<Node> keep(heap, node);  // the stack alone may not hold it
    heap.collect(CollectionScope::kEden);
    return node;
  }
  void trace(Visitor& v) const {
    v.trace(a);
    v.trace(b);
    v.trace(c);
  }
};

TEST(Generational, ObjectsOldBeforeTheirConstructorFinishedKeepTheirLaterFields) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  scrub_and_collect(heap, 1);
  Root<Builder> built(heap, heap.make<Builder>(heap, 10));
  scrub_stack();
  heap.collect(CollectionScope::kEden);
  heap.collect(CollectionScope::kEden);
  EXPECT_TRUE(built->a->intact(10));
  EXPECT_TRUE(built->b->intact(11));
  EXPECT_TRUE(built->c->intact(12));
}

TEST(Generational, AMemberOutsideTheHeapTakesTheBarrierHarmlessly) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  Root<Node> node(heap, heap.make<Node>(5));
  Member<Node> on_stack;
  on_stack = node.get();
  auto in_malloc = std::make_unique<Member<Node>>();
  *in_malloc = node.get();
  std::vector<Member<Node>> in_vector(64);
  for (auto& m : in_vector) m = node.get();
  EXPECT_EQ(on_stack.get(), node.get());
  EXPECT_EQ(in_malloc->get(), node.get());
  heap.collect(CollectionScope::kEden);
  EXPECT_TRUE(node->intact(5));
}

// Old objects in many blocks, a few new ones in one: after an eden
// collection only blocks that received new cells are left to sweep.
TEST(Generational, BlocksWithoutNewCellsNeedNoSweepAfterEden) {
  HeapConfig config = generational_config();
  config.verify = 0;
  config.sweeper.enabled = 0;  // the lazy sweep's blocks stay for finish_lazy_sweep to count
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = 20'000;  // about 60 blocks of Node cells
  Root<NodeArray> old(heap, heap.make_array<Member<Node>>(n));
  for (std::size_t i = 0; i < n; ++i) (*old)[i] = heap.make<Node>(i);
  heap.collect();  // full; then finish its lazy sweep, so every block is swept
  heap.allocator().finish_lazy_sweep();
  for (std::uint64_t i = 0; i < 10; ++i) heap.make<Node>(n + i);  // garbage in one block
  heap.collect(CollectionScope::kEden);
  const SweepTotals swept = heap.allocator().finish_lazy_sweep();
  EXPECT_LE(swept.blocks_swept, 2u) << "an eden collection left blocks with only old cells to sweep";
  heap.collect();  // a full one: old cells die only here, but nothing died
  const SweepTotals after_full = heap.allocator().finish_lazy_sweep();
  EXPECT_LE(after_full.blocks_swept, 2u);
  for (std::size_t i = 0; i < n; i += 101) ASSERT_TRUE((*old)[i]->intact(i));
}

// `n` nodes that survive a full collection and then die; a weak reference
// to one of them.
[[gnu::noinline]] std::unique_ptr<Weak<Node>> make_dead_old_nodes(Heap& heap, std::size_t n) {
  Root<NodeArray> old(heap, heap.make_array<Member<Node>>(n));
  for (std::size_t i = 0; i < n; ++i) (*old)[i] = heap.make<Node>(i);
  heap.collect();  // full: all old
  return weak_to(heap, (*old)[n / 2].get());
}

// Old objects that died fill the heap to its limit; an eden collection
// cannot free them, so the last-resort collection must be full.
TEST(Generational, TheLastResortCollectionIsFullAndFreesDeadOldObjects) {
  on_fresh_thread([] {  // heap_test_support.h: ASan's fake stacks
    HeapConfig config = generational_config();
    config.verify = 0;
    config.max_heap_bytes = 8 << 20;
    config.initial_heap_bytes = 1 << 20;
    config.full_growth_percent = 100000;     // the policy would never choose a full collection
    config.full_allocation_percent = 100000;
    Heap heap(config);
    ThreadScope attached(heap);
    auto watched = make_dead_old_nodes(heap, 100'000);  // about 5 MiB; the trigger allows as much again
    scrub_stack();
    // Keep allocating garbage: eden collections never free the dead old
    // objects, so only the last-resort collection makes room in the end.
    bool out_of_memory = false;
    for (std::size_t made = 0; made < 200'000; ++made) {
      if (made % 64 == 0 && heap.stats().last_resort_collections > 0) break;
      try {
        heap.make_array<std::uint64_t>(1000);  // about 8 KiB each, garbage at once
      } catch (const Error& error) {
        out_of_memory = error.code() == ErrorCode::kOutOfMemory;
        break;
      }
    }
    EXPECT_FALSE(out_of_memory);
    const HeapStats s = heap.stats();
    EXPECT_GE(s.last_resort_collections, 1u) << "the limit was never reached";
    EXPECT_GT(s.eden_collections, 0u);
    EXPECT_GE(s.full_collections, 1u);
    EXPECT_EQ(s.out_of_memory_errors, 0u);
    EXPECT_FALSE(alive(watched)) << "the last-resort collection did not reclaim dead old objects";
  });
}

// A thread stores its new objects into an old, shared object and detaches;
// the eden collection after it must keep them.
TEST(Generational, ObjectsOfADetachedThreadStoredIntoOldOnesSurviveEden) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  Root<NodeArray> shared(heap, heap.make_array<Member<Node>>(64));
  scrub_and_collect(heap, 1);
  std::thread([&] {
    ThreadScope worker(heap);
    for (std::size_t i = 0; i < 64; ++i) (*shared)[i] = heap.make<Node>(100 + i);
  }).join();
  scrub_stack();
  heap.collect(CollectionScope::kEden);
  for (std::size_t i = 0; i < 64; ++i) ASSERT_TRUE((*shared)[i]->intact(100 + i)) << i;
}

TEST(Generational, AnEdenCollectionRequestedInsideDeferGCRunsWhenTheScopeCloses) {
  Heap heap(generational_config());
  ThreadScope attached(heap);
  Root<Node> old(heap, heap.make<Node>(1));
  scrub_and_collect(heap, 1);
  {
    DeferGC defer(heap);
    store_new_into_old(heap, old.get(), 2);
    EXPECT_FALSE(heap.collect(CollectionScope::kEden));
    EXPECT_EQ(heap.stats().deferred_collections, 1u);
  }
  EXPECT_EQ(heap.stats().collections, 2u) << "the deferred collection ran when the scope closed";
  EXPECT_TRUE(old->next->intact(2));
}

TEST(Generational, NonGenerationalHeapRunsOnlyFullCollections) {
  HeapConfig config = generational_config();
  config.generational = 0;
  Heap heap(config);
  ThreadScope attached(heap);
  heap.collect(CollectionScope::kEden);
  heap.collect(CollectionScope::kEden);
  EXPECT_EQ(heap.stats().eden_collections, 0u);
  EXPECT_EQ(heap.stats().full_collections, 2u);
}

TEST(Generational, TriggeredCollectionsAreMostlyEdenAndThePolicyRunsFullOnes) {
  HeapConfig config = generational_config();
  config.verify = 0;
  config.initial_heap_bytes = 64 << 10;
  Heap heap(config);
  ThreadScope attached(heap);
  Root<NodeArray> survivors(heap, heap.make_array<Member<Node>>(4096));
  const std::size_t n = sized(400'000, 100'000, 100'000);
  for (std::size_t i = 0; i < n; ++i) {
    Node* node = heap.make<Node>(i);
    if (i % 64 == 0) (*survivors)[(i / 64) % 4096] = node;  // some survive a while, then die old
  }
  const HeapStats s = heap.stats();
  EXPECT_GT(s.eden_collections, 0u);
  EXPECT_GT(s.full_collections, 1u) << "the policy never ran a full collection";
  EXPECT_GT(s.eden_collections, s.full_collections);
  for (std::size_t i = 0; i < 4096; ++i) {
    Node* node = (*survivors)[i].get();
    if (node != nullptr) {
      ASSERT_EQ(detail::type_of(node), type_info_of<Node>());
    }
  }
}

// A steady working set replaced at random: new objects are no likelier to
// die than old ones, so each eden collection finds most of what was
// allocated since the last collection alive. The policy must then run full
// collections (with the whole budget) instead of eden collections that
// would mark almost as much and promote it all (note_eden_survival); an
// eden collection is still tried now and then.
TEST(Generational, EdenCollectionsThatFindMostNewObjectsAliveGiveWayToFullOnes) {
  HeapConfig config = generational_config();
  config.verify = 0;
  config.initial_heap_bytes = 64 << 10;
  config.growth_percent = 50;  // collections after half the live size: about 80% of it survives an eden one
  Heap heap(config);
  ThreadScope attached(heap);
  constexpr std::size_t kSlots = 8192;
  Root<NodeArray> table(heap, heap.make_array<Member<Node>>(kSlots));
  std::vector<std::uint64_t> ids(kSlots);
  for (std::size_t i = 0; i < kSlots; ++i) {
    (*table)[i] = heap.make<Node>(i);
    ids[i] = i;
  }
  std::uint64_t rng = 88172645463325252ull;
  const std::size_t n = sized(300'000, 150'000, 150'000);
  for (std::size_t k = 0; k < n; ++k) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    const std::size_t slot = rng % kSlots;
    ids[slot] = kSlots + k;
    (*table)[slot] = heap.make<Node>(ids[slot]);
  }
  const HeapStats s = heap.stats();
  EXPECT_GT(s.collections, 10u);
  EXPECT_GT(s.eden_collections, 0u) << "an eden collection is still tried";
  EXPECT_GT(s.full_collections, 2 * s.eden_collections)
      << "eden collections that find most new objects alive kept being chosen";
  for (std::size_t i = 0; i < kSlots; ++i) ASSERT_TRUE((*table)[i]->intact(ids[i]));
}

TEST(Generational, TortureScopeForcesEdenOrFull) {
  for (std::uint64_t scope : {1, 2}) {
    HeapConfig config = generational_config();
    config.verify = 0;
    config.collect_every = 5;
    config.collect_every_scope = scope;
    Heap heap(config);
    ThreadScope attached(heap);
    Root<Node> head(heap, heap.make<Node>(0));
    Node* tail = head.get();
    for (std::uint64_t id = 1; id <= 200; ++id) {
      tail->next = heap.make<Node>(id);
      tail = tail->next.get();
    }
    const HeapStats s = heap.stats();
    if (scope == 1) {
      EXPECT_EQ(s.full_collections, 1u) << "only the first collection is full";
    } else {
      EXPECT_EQ(s.eden_collections, 0u);
    }
    EXPECT_GT(s.collections, 30u);
    std::uint64_t id = 0;
    for (Node* node = head.get(); node != nullptr; node = node->next.get()) ASSERT_TRUE(node->intact(id++));
  }
}

TEST(Generational, BadPolicyTunablesAreRefused) {
  for (const char* name : {"HANDOFF_GENERATIONAL", "HANDOFF_COLLECT_EVERY_SCOPE"}) {
    const char* before = std::getenv(name);
    const std::string saved = before != nullptr ? before : "";
    ::setenv(name, "3", 1);
    EXPECT_THROW(HeapConfig::from_environment(), Error) << name;
    if (before != nullptr) {
      ::setenv(name, saved.c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }
}

TEST(Generational, EdenCollectionsWithThreadsKeepEveryThreadsChains) {
  HeapConfig config = generational_config();
  config.verify = 0;
  config.initial_heap_bytes = 512 << 10;
  Heap heap(config);
  const unsigned threads = mutator_threads();
  const std::size_t n = sized(20'000, 5'000, 1'000);
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ThreadScope attached(heap);
      Root<Node> head(heap, heap.make<Node>(0));
      Node* tail = head.get();
      for (std::uint64_t id = 1; id <= n; ++id) {
        tail->next = heap.make<Node>(id);
        tail = tail->next.get();
        for (int garbage = 0; garbage < 8; ++garbage) heap.make<Node>(~id);
        if (id % 256 == 0 && t == 0) heap.collect(CollectionScope::kEden);
      }
      std::uint64_t id = 0;
      for (Node* node = head.get(); node != nullptr; node = node->next.get()) {
        if (!node->intact(id++)) ++failures;
      }
      if (id != n + 1) ++failures;
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(heap.stats().eden_collections, 0u);
}

}  // namespace
}  // namespace handoff::test
