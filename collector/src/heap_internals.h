// The heap's private state, shared by the collector's source files.
//
// Concurrency design (the stop-the-world protocol).
//   What it protects: that marking sees every attached thread's roots and
//   exact live bits, and that no mutator runs heap code while the collector
//   marks, clears weak references or starts a sweep (DESIGN.md 4-6).
//
//   `mutex` guards the thread list, `stopped`, `parked`, `collecting`,
//   `deferrals` and `pending`; each thread's state word is atomic (the
//   park/stop handshake: the essay at the top of safepoint.cpp). The
//   collector:
//     1. under the mutex, sets collecting and Heap::stop_requested_, and
//        sets the stop flag on every other thread's state word; a word that
//        read "parked" counts its thread as parked (`parked`),
//     2. waits on `cv` until every other attached thread is stopped or
//        parked (each published its stack top and registers first; a thread
//        that parks after step 1 does so under the mutex and counts itself),
//        naming on stderr, every stall_warn_ms, a thread that is neither,
//     3. keeps the mutex for the whole collection, so no thread can attach,
//        detach or open a DeferGC meanwhile (each of those waits on `cv`,
//        releasing the mutex, until collecting is false), and no parked
//        thread can unpark (its CAS fails on the flag; it waits on `cv`),
//     4. clears the flags and notifies.
//   A running thread sees stop_requested_ (acquire) at its next safepoint,
//   captures its stack and waits on `cv`. Every handover goes either through
//   the mutex or through a read-modify-write of the thread's state word
//   (release by the one who hands over, acquire by the one who takes), so
//   the collector's reads of a mutator's objects and stack, its flush of
//   that thread's allocator and its mark-bit writes are ordered with the
//   mutators' own accesses in ways ThreadSanitizer sees. The only accesses
//   it cannot see are the conservative reads of stacks, which are exempt
//   from instrumentation (scan_words) because a parked thread may write its
//   own frames below the published top meanwhile.
//
//   The concurrent sweeper is paused (ConcurrentSweeper::pause returns when
//   it holds no block) for the whole collection: no block is swept, retired
//   or freed while marking reads blocks (invariant 4, and invariant 7's
//   "never touches a block that may be freed concurrently").
#pragma once

#include "embedder_state.h"

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

class MarkerThreads;  // marker_threads.h

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
  static const void* object(const HandleBase& h) noexcept {
    return HandleBase::disguise(h.kind_, h.object_.load(std::memory_order_relaxed));
  }
  static HandleBase::Kind kind(const HandleBase& h) noexcept { return h.kind_; }
  static void clear(HandleBase& h) noexcept { h.object_.store(nullptr, std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  HandleBase* head_ = nullptr;
};

// Why a collection runs. Triggered ones (the allocation trigger, a deferred
// request, the torture knob) are eden or full as the policy decides; the
// others say which they are.
enum class CollectionKind { kTriggered, kExplicitFull, kExplicitEden, kLastResort, kVerify };

class HeapInternals {
 public:
  explicit HeapInternals(Heap& heap);
  ~HeapInternals();

  // The stop-the-world entry: runs a collection now unless one is deferred.
  bool collect(MutatorThread* self, CollectionKind kind);
  // A running thread's stop at a safepoint (noinline: its frame holds the
  // captured stack while it waits).
  void stop_at_safepoint(MutatorThread& self);
  // A running thread's stop under the mutex: stopped until the stop ends.
  void wait_stopped(MutatorThread& self, std::unique_lock<std::mutex>& lock);
  // The stop flag on every thread but `self` (mutex held): set, returning
  // how many were parked; cleared when the collection ends.
  std::size_t request_stop(const MutatorThread* self);
  void release_stop(const MutatorThread* self);
  // Step 2 of the stop (mutex held): waits until the `others` threads are
  // stopped or parked, reporting on stderr every stall_warn_ms the threads
  // that are neither (report_stall).
  void wait_for_world(std::unique_lock<std::mutex>& lock, const MutatorThread* self, std::size_t others);
  void report_stall(const MutatorThread* self, std::uint64_t waited_ms) const;
  // ~Heap: refuses new attaches, then waits up to destroy_wait_ms for every
  // thread to detach; aborts naming those that did not.
  void wait_for_detach();
  bool should_collect() noexcept;
  // Adds what the thread allocated in its current slice to the trigger's
  // count and empties the slice (countdown 0: the next allocation takes the
  // slow path, which starts a new one).
  void publish_allocation(MutatorThread& self) noexcept;
  std::size_t run_finalizers(MutatorThread& self);

  // The collection proper, world stopped, mutex held.
  void run_collection(CollectionKind kind);
  // The generational policy: true for an eden collection.
  bool choose_eden(CollectionKind kind) const noexcept;
  SweepPolicy sweep_policy() const noexcept;
  // True when the lazy sweep began on the marker threads.
  bool start_sweep(CollectionKind kind);
  // The collecting thread plus the marker threads: the most any phase uses.
  std::size_t max_marker_workers() const noexcept;
  void process_weak_and_finalizable(class Marker& marker);
#if defined(HANDOFF_TEST_HOOKS)
  void drop_one_mark();
#endif
  struct CollectionResult {
    bool eden = false;
    std::uint64_t pause_ns = 0;
    std::uint64_t mark_ns = 0;
    std::uint64_t marked_bytes = 0;  // marked by this collection (new survivors, for an eden one)
    std::uint64_t marked_objects = 0;
    std::uint64_t remembered_cards = 0;
    std::uint64_t remembered_objects = 0;
    std::uint64_t ephemeron_rounds = 0;
    std::uint64_t ephemeron_entries = 0;
    std::uint64_t ephemerons_dropped = 0;
    bool triggered = false;             // by the trigger (CollectionKind::kTriggered)
    bool parallel_mark = false;         // marked on the marker threads (marker_policy.h)
    bool parallel_sweep_begin = false;  // began the lazy sweep on them
  };
  void update_after_collection(const CollectionResult& result);
  // The trigger after a collection: the generational budget (what is left of
  // the full collection's budget, at least half of it), capped by the cache
  // budget when the collection `r` found almost nothing of the
  // `allocated_since` bytes alive (cache_budget.h).
  std::uint64_t next_trigger(const CollectionResult& r, std::uint64_t allocated_since) const noexcept;
  // When eden collections find this share of the bytes allocated since the
  // last collection alive and those die old, the next
  // kFullsAfterSurvivingEden triggered collections are full (collection.cpp).
  static constexpr std::uint64_t kEdenSurvivalFullPercent = 70;
  static constexpr std::uint64_t kDiedOldFullPercent = 75;
  static constexpr std::uint64_t kFullsAfterSurvivingEden = 8;
  void note_eden_survival(const CollectionResult& result, std::uint64_t allocated_since) noexcept;

  // The cell-level view used by marking and the verifier.
  bool is_marked(const void* object) const noexcept;

  Heap& heap;
  Allocator& allocator;
  const HeapConfig& config;

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<MutatorThread*> threads;
  std::size_t stopped = 0;
  std::size_t parked = 0;   // threads the stop in progress counts as parked
  bool collecting = false;
  bool destroying = false;  // ~Heap has begun: no thread may attach
  int deferrals = 0;
  bool pending = false;

  std::atomic<std::uint64_t> bytes_since_collection{0};
  std::atomic<std::uint64_t> bytes_allocated{0};
  std::atomic<std::uint64_t> trigger_bytes{0};
  std::atomic<std::uint64_t> allocation_count{0};
  std::uint32_t mark_version = 0;  // the collector's (mutex)
  bool mark_abandoned = false;     // user code threw while marking: the next collection is full (mutex)

  // Generations (the collector's, mutex). Marked bytes stay marked until the
  // next full collection, so the heap's live estimate is what the last full
  // collection found plus what every eden collection since has marked.
  std::uint64_t live_after_full = 0;     // bytes marked by the last full collection
  std::uint64_t promoted_since_full = 0; // bytes marked by eden collections since
  std::uint64_t allocated_at_full = 0;   // bytes_allocated when it ran
  std::uint64_t full_budget = 0;         // the allocation budget it set (collection.cpp)
  std::uint64_t collections_run = 0;
  std::size_t allocating_threads = 0;    // threads that allocated in the cycle the last collection ended (cache_budget.h)
  std::size_t online_cpus = 1;           // read once at construction (platform::online_cpus)
  std::uint64_t last_eden_marked = 0;    // bytes the last eden collection marked (marker_policy.h)
  std::uint64_t allocated_at_collection = 0;  // bytes_allocated when the last collection ended
  std::uint64_t fulls_before_eden = 0;   // triggered full collections to run before the next eden one (collection.cpp)
  std::uint64_t eden_allocated_since_full = 0;  // bytes allocated before the triggered eden collections since it
  // Under HANDOFF_COLLECT_EVERY with collect_every_scope 0, every this-many-th
  // collection is full and the others are eden.
  static constexpr std::uint64_t kTortureFullEvery = 8;
  std::uint64_t old_objects = 0;         // objects marked (live_after_full's count + promoted)
  // Old objects a collection found under construction (remembered_set.cpp).
  std::vector<const void*> constructing;

  HandleTable handles;
  std::vector<std::pair<Heap::RootScanner, void*>> root_scanners;  // mutex
  std::vector<std::pair<Heap::PostMarkHook, void*>> post_mark_hooks;  // mutex

  std::mutex finalizer_mutex;
  std::vector<void*> finalizable;      // registered, not yet found unreachable
  std::deque<void*> finalizer_queue;   // found unreachable; kept alive
  std::vector<void*> finalizing;       // being finalized right now; kept alive

  std::unique_ptr<ConcurrentSweeper> sweeper;
  // The helpers of parallel marking (HANDOFF_MARKER_THREADS - 1 of them);
  // nullptr when the collecting thread marks alone.
  std::unique_ptr<MarkerThreads> marker_threads;

  // The embedder API (embedder_state.h).
  std::uint64_t serial = 0;  // this heap's number in the checked-handle registry
  ExternalCounters external;
  CheckedHandleTable checked_handles;

#if defined(HANDOFF_TEST_HOOKS)
  Heap::TestHooks hooks;  // read by the collector only (mutex)
#endif

  mutable std::mutex stats_mutex;
  HeapStats counters;  // collector-maintained fields only
};

// The verifier (verifier.cpp): world stopped, after marking, before the
// sweep begins. Aborts with a description on the first violation.
void verify_heap(HeapInternals& heap);

// The mark phase's loop (collection.cpp): drain, resolve ephemerons, and
// again until nothing new is marked.
void drain_to_fixpoint(class Marker& marker);

// The embedder API's parts of a collection (checked_handles.cpp): strong
// checked handles as roots; weak ones to unmarked objects freed (step 4).
void scan_checked_handles(Visitor& visitor, void* heap_internals);
std::uint64_t clear_dead_checked_handles(HeapInternals& heap);
// The checked-handle registry (checked_handles.cpp): Heap's constructor
// and destructor.
void register_heap(HeapInternals& heap);
void unregister_heap(HeapInternals& heap) noexcept;

// Calls the post-mark hooks (Heap::add_post_mark_hook) with `marker`'s marks.
void run_post_mark_hooks(HeapInternals& heap, class Marker& marker);

// A cell's destructor, called by sweeps for every dead cell.
void run_destructor(void* cell);

// Stack base (highest address) of the calling thread.
const char* current_stack_base();

}  // namespace handoff::detail
