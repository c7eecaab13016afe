// Several mutator threads on one heap: they share objects through a rooted
// array under a std::mutex and collect from any thread; a parked thread does
// not hold up a collection, and its stack and callee-saved registers as they
// were at park time still count as roots; threads that detach in the middle
// of others' churn, or exit while attached, lose nothing they published.
//
// A thread attached to the heap must never block on a lock or a future while
// running: a collection would wait for it forever. Lock acquisition here
// parks (ParkedScope) when the lock is contended, and joins happen parked or
// from unattached threads.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace handoff::test {
namespace {

using namespace std::chrono_literals;

void lock_parked(Heap& heap, std::unique_lock<std::mutex>& lock) {
  if (lock.try_lock()) return;
  ParkedScope parked(heap);
  lock.lock();
}

void join_parked(Heap& heap, std::vector<std::thread>& threads) {
  ParkedScope parked(heap);
  for (auto& thread : threads) thread.join();
}

std::uint64_t thread_node_id(unsigned thread, std::uint64_t i) { return (std::uint64_t{thread} + 1) << 40 | i; }

std::string hex(std::uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "%#llx", static_cast<unsigned long long>(value));
  return buffer;
}

std::string describe(const Node* node) {
  return "at " + hex(reinterpret_cast<std::uintptr_t>(node)) + " header " +
         hex(detail::header_of(node).load(std::memory_order_relaxed)) + " id " + hex(node->id) + " value " +
         hex(node->value) + " checksum " + hex(node->checksum);
}

struct Shared {
  std::mutex mutex;
  Root<NodeArray> slots;
  std::vector<std::uint64_t> expected;  // guarded by mutex; 0 = empty slot
};

// A thread's private list, held only by a local of that thread.
struct PrivateList {
  Node* head = nullptr;
  std::uint64_t first = 0;  // id of the oldest node
  std::uint64_t next = 0;   // id the next node gets

  bool intact() const { return describe_damage().empty(); }
  std::string describe_damage() const {
    const Node* node = head;
    for (std::uint64_t id = next; id-- > first;) {
      if (node == nullptr) return "private list ends early before node " + hex(id);
      if (!node->intact(id)) return "private node " + hex(id) + " corrupt: " + describe(node);
      node = node->next;
    }
    return node == nullptr ? "" : "private list too long";
  }
};

// The first few failures seen by any thread, for the test's message.
class Failures {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    if (++count_ <= 4) first_ += "\n  " + what;
  }
  int count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  std::string first() const {
    std::lock_guard lock(mutex_);
    return first_;
  }

 private:
  mutable std::mutex mutex_;
  int count_ = 0;
  std::string first_;
};

void share_churn(Heap& heap, Shared& shared, unsigned t, std::size_t iterations, Failures& failures) {
  ThreadScope attached(heap);
  PrivateList mine;
  mine.first = mine.next = thread_node_id(t, 0);
  const std::size_t collect_period = std::max<std::size_t>(iterations / 8, 16);
  for (std::size_t i = 0; i < iterations; ++i) {
    Node* node = heap.make<Node>(mine.next++);
    node->next = mine.head;
    mine.head = node;
    heap.make<Node>(1);  // garbage
    if (i % 4 == 0) {
      const std::uint64_t id = thread_node_id(t, i) | std::uint64_t{1} << 39;
      Node* published = heap.make<Node>(id);
      std::unique_lock lock(shared.mutex, std::defer_lock);
      lock_parked(heap, lock);
      const std::size_t slot = mix64(id) % shared.expected.size();
      const Node* old = (*shared.slots)[slot].get();
      if (old != nullptr && !old->intact(shared.expected[slot])) {
        failures.add("shared slot " + std::to_string(slot) + " expected node " + hex(shared.expected[slot]) + ", " +
                     describe(old));
      }
      (*shared.slots)[slot] = published;
      shared.expected[slot] = id;
    }
    if (i % collect_period == t % collect_period) heap.collect();
    if (i % 256 == 255) {
      if (std::string damage = mine.describe_damage(); !damage.empty()) failures.add(damage);
      mine.head = nullptr;  // the old list becomes garbage
      mine.first = mine.next;
    }
  }
  if (std::string damage = mine.describe_damage(); !damage.empty()) failures.add(damage);
}

}  // namespace

TEST(HeapThreads, MutatorsShareObjectsAndCollectFromAnyThread) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.MutatorsShareObjectsAndCollectFromAnyThread");
  Heap heap(env_config());
  ThreadScope attached(heap);
  Shared shared;
  const std::size_t slots = 1024;
  shared.slots = Root<NodeArray>(heap, heap.make_array<Member<Node>>(slots));
  shared.expected.assign(slots, 0);
  const std::size_t iterations = sized(20'000, 3'000, 300);
  Failures failures;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < mutator_threads(); ++t) {
    threads.emplace_back([&, t] { share_churn(heap, shared, t, iterations, failures); });
  }
  join_parked(heap, threads);
  EXPECT_EQ(failures.count(), 0) << "threads saw corrupt shared or private nodes:" << failures.first();
  for (int round = 0; round < 2; ++round) {
    for (std::size_t slot = 0; slot < slots; ++slot) {
      const Node* node = (*shared.slots)[slot].get();
      if (shared.expected[slot] == 0) {
        ASSERT_EQ(node, nullptr);
        continue;
      }
      ASSERT_NE(node, nullptr) << "slot " << slot;
      ASSERT_TRUE(node->intact(shared.expected[slot])) << "slot " << slot << " round " << round;
    }
    heap.collect();
  }
  EXPECT_GE(heap.stats().collections, mutator_threads());
}

TEST(HeapThreads, SimultaneousCollectCallsAllComplete) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.SimultaneousCollectCallsAllComplete");
  Heap heap(env_config());
  const std::size_t rounds = sized(50, 20, 10);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < mutator_threads(); ++t) {
    threads.emplace_back([&, t] {
      ThreadScope attached(heap);
      PrivateList mine;
      mine.first = mine.next = thread_node_id(t, 0);
      for (std::size_t r = 0; r < rounds; ++r) {
        for (int k = 0; k < 50; ++k) {
          Node* node = heap.make<Node>(mine.next++);
          node->next = mine.head;
          mine.head = node;
        }
        heap.collect();
        if (!mine.intact()) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();  // this thread is not attached
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(heap.stats().collections, 1u);
}

// Handle registration takes the handle table's lock while other threads
// collect (and clear weak references under the same table).
TEST(HeapThreads, HandlesComeAndGoWhileOtherThreadsCollect) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.HandlesComeAndGoWhileOtherThreadsCollect");
  Heap heap(env_config());
  const std::size_t iterations = sized(5'000, 1'000, 300);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < mutator_threads(); ++t) {
    threads.emplace_back([&, t] {
      ThreadScope attached(heap);
      for (std::size_t i = 0; i < iterations; ++i) {
        const std::uint64_t id = thread_node_id(t, i);
        Node* node = heap.make<Node>(id);
        Root<Node> root(heap, node);
        Weak<Node> weak(heap, node);
        Root<Node> copy(root);
        if (i % 64 == t) heap.collect();
        if (weak.get() != node || copy.get() != node || !node->intact(id)) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(heap.stats().roots, 0u) << "Roots destroyed on their threads are still registered";
  EXPECT_EQ(heap.stats().weak_handles, 0u);
}

// A Root made by one thread for an object that another thread has just
// allocated (still in that thread's current block) is accepted and keeps
// the object alive after its maker has gone.
TEST(HeapThreads, RootsForAnotherThreadsFreshObjects) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.RootsForAnotherThreadsFreshObjects");
  Heap heap(env_config());
  ThreadScope attached(heap);
  constexpr std::size_t kCount = 64;
  std::promise<std::vector<Node*>> made;
  auto fresh = made.get_future();
  std::promise<void> rooted;
  std::thread maker([&] {
    ThreadScope scope(heap);
    Node* volatile on_stack[kCount];  // the stack scan keeps them until they are rooted
    std::vector<Node*> nodes;
    for (std::size_t i = 0; i < kCount; ++i) {
      Node* node = heap.make<Node>(i);
      on_stack[i] = node;
      nodes.push_back(node);
    }
    made.set_value(nodes);
    ParkedScope parked(heap);
    rooted.get_future().wait();
    asm volatile("" : : "r"(on_stack) : "memory");  // live until here
  });
  std::vector<Node*> nodes;
  {
    ParkedScope parked(heap);
    nodes = fresh.get();
  }
  std::vector<std::unique_ptr<Root<Node>>> roots;
  std::string refused;
  for (Node* node : nodes) {
    try {
      roots.push_back(std::make_unique<Root<Node>>(heap, node));
    } catch (const Error& e) {
      refused = e.what();
    }
  }
  rooted.set_value();
  {
    ParkedScope parked(heap);
    maker.join();
  }
  ASSERT_EQ(roots.size(), kCount) << "a Root refused a live object: " << refused;
  nodes.clear();
  nodes.shrink_to_fit();
  scrub_and_collect(heap, 2);
  for (std::size_t i = 0; i < kCount; ++i) ASSERT_TRUE((*roots[i])->intact(i)) << "rooted node " << i;
}

// ---- parking -----------------------------------------------------------------

TEST(HeapThreads, ParkedThreadDoesNotBlockCollectionAndItsStackStaysARoot) {
  Heap heap(env_config());
  std::promise<void> ready;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::unique_ptr<Weak<Node>> weak;
  std::atomic<bool> parked_node_intact{false};
  std::thread parked_thread([&] {
    ThreadScope attached(heap);
    Node* volatile node = heap.make<Node>(99);
    weak = std::make_unique<Weak<Node>>(heap, node);
    ready.set_value();
    {
      ParkedScope parked(heap);
      released.wait();
    }
    parked_node_intact = node->intact(99) && weak->get() == node && heap.make<Node>(100)->intact(100);
  });
  ready.get_future().wait();

  const std::uint64_t garbage = sized(1000, 1000, 100);
  auto collecting = std::async(std::launch::async, [&] {
    ThreadScope attached(heap);
    for (int i = 0; i < 5; ++i) {
      for (std::uint64_t k = 0; k < garbage; ++k) heap.make<Node>(k);
      heap.collect();
    }
    return weak->get() != nullptr && weak->get()->intact(99);
  });
  if (collecting.wait_for(30s) != std::future_status::ready) {
    ADD_FAILURE() << "collections did not finish in 30 s while a thread was parked";
    release.set_value();
    if (collecting.wait_for(30s) != std::future_status::ready) std::abort();
  } else {
    EXPECT_TRUE(collecting.get()) << "the parked thread's local no longer kept its node";
    release.set_value();
  }
  parked_thread.join();
  EXPECT_TRUE(parked_node_intact.load()) << "node held by a parked thread's stack was lost";
}

TEST(HeapThreads, ParkingAndUnparkingDuringCollectionsKeepsLocals) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.ParkingAndUnparkingDuringCollectionsKeepsLocals");
  Heap heap(env_config());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread parker([&] {
    ThreadScope attached(heap);
    PrivateList mine;
    for (std::uint64_t i = 0; !stop.load(); ++i) {
      Node* node = heap.make<Node>(mine.next++);
      node->next = mine.head;
      mine.head = node;
      {
        ParkedScope parked(heap);
        std::this_thread::yield();
      }
      if (i % 64 == 0 && !mine.intact()) failures.fetch_add(1);
      if (i % 512 == 511) {
        mine.head = nullptr;
        mine.first = mine.next;
      }
    }
    if (!mine.intact()) failures.fetch_add(1);
  });
  {
    ThreadScope attached(heap);
    const std::size_t collections = sized(300, 60, 30);
    for (std::size_t c = 0; c < collections; ++c) EXPECT_TRUE(heap.collect());
    stop = true;
    EXPECT_GE(heap.stats().collections, collections);
  }
  parker.join();
  EXPECT_EQ(failures.load(), 0);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
namespace {

[[gnu::noinline]] Node* make_watched_node(Heap& heap, std::unique_ptr<Weak<Node>>& weak) {
  Node* node = heap.make<Node>(42);
  weak = std::make_unique<Weak<Node>>(heap, node);
  return node;
}

// Holds its node only in rbx, a callee-saved register, while parked: no
// copy on the stack, none below it (scrubbed), and the loop that waits
// calls nothing. mutator_thread.h promises that a parked thread's stack and
// callee-saved registers as they were at park time are roots.
[[gnu::noinline]] std::uint64_t park_holding_node_in_register(Heap& heap, std::unique_ptr<Weak<Node>>& weak,
                                                              std::atomic<int>& phase) {
  register Node* keep asm("rbx") = make_watched_node(heap, weak);
  asm volatile("" : "+r"(keep));
  scrub_stack();
  {
    ParkedScope parked(heap);
    scrub_stack();  // any call made while parked reuses the stack below this frame
    phase.store(1);
    while (phase.load() != 2) asm volatile("" : "+r"(keep));
  }
  asm volatile("" : "+r"(keep));
  return keep->id;
}

}  // namespace

TEST(HeapThreads, ParkedThreadsCalleeSavedRegistersAreRoots) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.ParkedThreadsCalleeSavedRegistersAreRoots");
  HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  config.sync_sweep = 1;
  Heap heap(config);
  std::unique_ptr<Weak<Node>> weak;
  std::atomic<int> phase{0};
  std::uint64_t seen = 0;
  std::thread holder([&] {
    ThreadScope attached(heap);
    seen = park_holding_node_in_register(heap, weak, phase);
  });
  while (phase.load() != 1) std::this_thread::yield();
  {
    ThreadScope attached(heap);
    heap.collect();
    heap.collect();
    EXPECT_NE(weak->get(), nullptr) << "a node held in a parked thread's callee-saved register was collected";
    phase.store(2);
    ParkedScope parked(heap);
    holder.join();
  }
  EXPECT_EQ(seen, 42u);
}
#endif

// ---- detaching -------------------------------------------------------------

void run_detach_scenario(const HeapConfig& config, Size size) {
  Watchdog watchdog(watchdog_limit(), "detach scenario");
  const bool full = size == Size::kFull;
  const unsigned threads = mutator_threads();
  const std::size_t rounds = full ? sized(8, 4, 2) : 2;
  const std::size_t per_round = full ? sized(1000, 300, 100) : 100;
  const std::size_t total = threads * rounds * per_round;
  Heap heap(config);
  ThreadScope attached(heap);
  Root<NodeArray> published(heap, heap.make_array<Member<Node>>(total));
  auto slot_of = [&](unsigned t, std::size_t r, std::size_t k) { return (t * rounds + r) * per_round + k; };

  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (std::size_t r = 0; r < rounds; ++r) {
        // Each round attaches anew and detaches with a partly used block.
        ThreadScope scope(heap);
        for (std::size_t k = 0; k < per_round; ++k) {
          const std::size_t slot = slot_of(t, r, k);
          Node* node = heap.make<Node>(slot);
          heap.make<Node>(0);  // garbage beside it
          (*published)[slot] = node;
          if (k % 97 == 96 && t % 2 == 0) heap.collect();
        }
      }
    });
  }
  join_parked(heap, workers);
  for (int round = 0; round < 2; ++round) {
    scrub_and_collect(heap, 1);
    for (std::size_t slot = 0; slot < total; ++slot) {
      const Node* node = (*published)[slot].get();
      ASSERT_NE(node, nullptr) << "slot " << slot;
      ASSERT_TRUE(node->intact(slot)) << "node published by a detached thread, slot " << slot << ", round " << round;
    }
    for (std::size_t k = 0; k < total; ++k) heap.make<Node>(k);  // reuses whatever was freed
  }
  EXPECT_EQ(heap.stats().attached_threads, 1u);
}

TEST(HeapThreads, ThreadsThatDetachDuringChurnLoseNothing) { run_detach_scenario(env_config(), Size::kFull); }

// mutator_thread.h: a thread that exits while still attached is detached
// by an exit hook; a collection must not wait for it afterwards, and what it
// published survives.
TEST(HeapThreads, ThreadExitingWhileAttachedIsDetachedAndLosesNothing) {
  Watchdog watchdog(watchdog_limit(), "HeapThreads.ThreadExitingWhileAttachedIsDetachedAndLosesNothing");
  Heap heap(env_config());
  ThreadScope attached(heap);
  const std::size_t n = 500;
  Root<NodeArray> published(heap, heap.make_array<Member<Node>>(n));
  NodeArray* slots = published.get();
  std::thread leaver([&] {
    heap.attach_current_thread();
    for (std::size_t i = 0; i < n; ++i) (*slots)[i] = heap.make<Node>(i);
  });
  {
    ParkedScope parked(heap);
    leaver.join();
  }
  EXPECT_EQ(heap.stats().attached_threads, 1u) << "the exited thread is still attached";
  scrub_and_collect(heap, 2);
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE((*slots)[i] && (*slots)[i]->intact(i)) << "slot " << i;
}

TEST(HeapThreads, ExplicitAttachAndDetachFromManyThreads) {
  Heap heap(env_config());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < mutator_threads(); ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < 20; ++r) {
        heap.attach_current_thread();
        if (!heap.current_thread_attached()) failures.fetch_add(1);
        Node* node = heap.make<Node>(static_cast<std::uint64_t>(r));
        if (!node->intact(static_cast<std::uint64_t>(r))) failures.fetch_add(1);
        heap.detach_current_thread();
        if (heap.current_thread_attached()) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(heap.stats().attached_threads, 0u);
}

}  // namespace handoff::test
