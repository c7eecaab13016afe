// The heap's private state, shared by the collector's source files.
//
// Concurrency design (the stop-the-world protocol).
//   What it protects: that marking sees every attached thread's roots and
//   exact live bits, and that no mutator runs heap code while the collector
//   marks, clears weak references or starts a sweep (DESIGN.md 4-6).
//
//   `mutex` guards the thread list, each thread's state, `collecting`,
//   `deferrals` and `pending`. The collector:
//     1. under the mutex, sets collecting and Heap::stop_requested_,
//     2. waits on `cv` until every other attached thread is stopped or
//        parked (each published its stack top and registers first),
//     3. keeps the mutex for the whole collection, so no thread can attach,
//        unpark, detach or open a DeferGC meanwhile (each of those waits on
//        `cv`, releasing the mutex, until collecting is false),
//     4. clears the flags and notifies.
//   A running thread sees stop_requested_ (acquire) at its next safepoint,
//   captures its stack and waits on `cv`. A parked thread is already
//   accounted for; it cannot leave the parked state while stop_requested_ is
//   set. Every handover goes through the mutex, so the collector's reads of a
//   mutator's objects and stack, its flush of that thread's allocator and
//   its mark-bit writes are ordered with the mutators' own accesses by
//   ordinary lock acquire/release, which ThreadSanitizer sees. The only
//   accesses it cannot see are the conservative reads of stacks, which are
//   exempt from instrumentation (scan_words) because a parked thread may
//   write its own frames below the published top meanwhile.
//
//   The concurrent sweeper is paused (ConcurrentSweeper::pause returns when
//   it holds no block) for the whole collection: no block is swept, retired
//   or freed while marking reads blocks (invariant 4, and invariant 7's
//   "never touches a block that may be freed concurrently").
#pragma once

#include <handoff/concurrent_sweeper.h>
#include <handoff/heap.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace handoff::detail {

[[noreturn]] void fatal_misuse(const std::string& message);

// The handle table: every registered Root and Weak, in one intrusive list.
class HandleTable {
 public:
  void link(HandleBase& handle);
  void unlink(HandleBase& handle) noexcept;
  // Heap destruction: every handle forgets the heap.
  void orphan_all() noexcept;
  template <class F>
  void for_each(F&& f) {
    std::lock_guard lock(mutex_);
    for (HandleBase* h = head_; h != nullptr; h = h->next_) f(*h);
  }
  std::size_t count(HandleBase::Kind kind) const;
  static const void* object(const HandleBase& h) noexcept { return h.object_.load(std::memory_order_relaxed); }
  static HandleBase::Kind kind(const HandleBase& h) noexcept { return h.kind_; }
  static void clear(HandleBase& h) noexcept { h.object_.store(nullptr, std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  HandleBase* head_ = nullptr;
};

enum class CollectionKind { kNormal, kLastResort, kVerify };

class HeapInternals {
 public:
  explicit HeapInternals(Heap& heap);
  ~HeapInternals();

  // The stop-the-world entry: runs a collection now unless one is deferred.
  bool collect(MutatorThread* self, CollectionKind kind);
  // A running thread's stop at a safepoint (noinline: its frame holds the
  // captured stack while it waits).
  void stop_at_safepoint(MutatorThread& self);
  bool should_collect() noexcept;
  // Adds what the thread allocated in its current slice to the trigger's
  // count and empties the slice (countdown 0: the next allocation takes the
  // slow path, which starts a new one).
  void publish_allocation(MutatorThread& self) noexcept;
  std::size_t run_finalizers(MutatorThread& self);

  // The collection proper, world stopped, mutex held.
  void run_collection(CollectionKind kind);
  LivenessPredicate sweep_predicate() const noexcept;
  void start_sweep(CollectionKind kind);
  void process_weak_and_finalizable(class Marker& marker);
#if defined(HANDOFF_TEST_HOOKS)
  void drop_one_mark();
#endif
  void update_after_collection(std::uint64_t pause_ns, std::uint64_t mark_ns, std::uint64_t live_bytes,
                               std::uint64_t live_objects);

  // The cell-level view used by marking and the verifier.
  bool is_marked(const void* object) const noexcept;

  Heap& heap;
  Allocator& allocator;
  const HeapConfig& config;

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<MutatorThread*> threads;
  std::size_t stopped = 0;
  std::size_t parked = 0;
  bool collecting = false;
  int deferrals = 0;
  bool pending = false;

  std::atomic<std::uint64_t> bytes_since_collection{0};
  std::atomic<std::uint64_t> bytes_allocated{0};
  std::atomic<std::uint64_t> trigger_bytes{0};
  std::atomic<std::uint64_t> allocation_count{0};
  std::uint32_t mark_version = 0;  // the collector's (mutex)

  HandleTable handles;
  std::vector<std::pair<Heap::RootScanner, void*>> root_scanners;  // mutex
  std::vector<std::pair<Heap::PostMarkHook, void*>> post_mark_hooks;  // mutex

  std::mutex finalizer_mutex;
  std::vector<void*> finalizable;      // registered, not yet found unreachable
  std::deque<void*> finalizer_queue;   // found unreachable; kept alive
  std::vector<void*> finalizing;       // being finalized right now; kept alive

  std::unique_ptr<ConcurrentSweeper> sweeper;

#if defined(HANDOFF_TEST_HOOKS)
  Heap::TestHooks hooks;  // read by the collector only (mutex)
#endif

  mutable std::mutex stats_mutex;
  HeapStats counters;  // collector-maintained fields only
};

// The verifier (verifier.cpp): world stopped, after marking, before the
// sweep begins. Aborts with a description on the first violation.
void verify_heap(HeapInternals& heap);

// Calls the post-mark hooks (Heap::add_post_mark_hook) with `marker`'s marks.
void run_post_mark_hooks(HeapInternals& heap, class Marker& marker);

// A cell's destructor, called by sweeps for every dead cell.
void run_destructor(void* cell);

// Stack base (highest address) of the calling thread.
const char* current_stack_base();

}  // namespace handoff::detail
