// One collection, world stopped. Phases, in order (each relies on the one
// before):
//
//   1. quiesce    pause the concurrent sweeper; finish the previous cycle's
//                 lazy sweep, so every block is swept with the marks it was
//                 judged by and every live bit is exact (invariant 7)
//   2. flush      hand back every thread's current blocks (stopAllocating)
//   3. mark       full: new mark version, cards cleared; eden: the same
//                 version (old objects stay marked) and the remembered set
//                 traced first (remembered_set.cpp); then roots; drain to
//                 the ephemeron fixpoint (drain_to_fixpoint); each step
//                 on every marker thread (marker.h) when the collection
//                 expects enough to mark (marker_policy.h), else here alone
//   4. weak       clear weak references (and weak checked handles) to
//                 unmarked objects
//   5. finalize   unreachable finalizable objects: queue them and mark what
//                 they reach, so their finalizers see intact objects
//   6. verify     optional: a second, independent marking (verifier.cpp)
//   6b. drop      ephemeron entries whose key is unmarked (after the
//                 verifier, which must see them and not trace their values)
//   7. sweep      begin the lazy sweep, its block walk in parts on every
//                 marker thread (on_marker_threads) when the heap has
//                 enough blocks to pay for them (or sweep everything
//                 now, or, for the immortal torture mode, nothing); resume
//                 the sweeper
//
// Weak references are cleared in 4, inside the pause, before 7 lets any
// thread sweep a block, so no weak reference can observe a reused cell.
#include "cache_budget.h"
#include "marker.h"
#include "marker_policy.h"
#include "marker_threads.h"

#include <handoff/platform.h>

#include <handoff/check.h>
#include <handoff/epoch.h>
#include <handoff/large_object_space.h>
#include <handoff/mark_services.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>

namespace handoff::detail {
namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Beginning the lazy sweep on every marker thread. Allocator::
// begin_lazy_sweep hands out parts of the directories' registries (slot
// ranges); each worker makes the FULL and SWEPT blocks of its parts
// UNSWEPT. Why this is safe, with the world stopped and the concurrent
// sweeper paused:
//   - Invariant 3: each part pins the epoch on the thread that walks it
//     (Directory::mark_unswept's ScopedPin registers a marker thread as a
//     participant for the part), so every block pointer read from a
//     registry is used inside a pin of the thread that read it. Besides,
//     nothing can retire or free a block meanwhile: the mutators are
//     stopped or parked and the sweeper is paused.
//   - Invariant 2: each transition to UNSWEPT is one CAS; parts are
//     disjoint, and no other thread transitions blocks now, so no CAS
//     fails: a block that is not FULL or SWEPT is skipped before the CAS.
//   - Invariant 4: the mark phase is over (every drain returned) before
//     this starts, and sweeping starts only after the world resumes.
//   - Orders: MarkerThreads::run hands over under its mutex, so the stored
//     predicates happen before every part, and every part's CAS before
//     run() returns and the directories' cycles advance.
// With one marker thread (or none usable: a forked child, or nullptr: the
// collection chose one thread, marker_policy.h) the parts run here, in
// order, as the sequential begin does. `used`: set when the marker threads
// ran them.
Allocator::ParallelFor on_marker_threads(MarkerThreads* threads, bool& used) {
  return [threads, &used](std::size_t tasks, const std::function<void(std::size_t)>& run) {
    if (threads == nullptr || !threads->usable() || tasks < 2) {
      for (std::size_t i = 0; i < tasks; ++i) run(i);
      return;
    }
    used = true;
    threads->for_each_task(tasks, run);
  };
}

}  // namespace

HeapInternals::HeapInternals(Heap& owner) : heap(owner), allocator(owner.allocator()), config(owner.config()) {
  online_cpus = platform::online_cpus();
  trigger_bytes.store(std::max<std::uint64_t>(config.initial_heap_bytes, 1), std::memory_order_relaxed);
  if (config.sweeper.enabled != 0) sweeper = std::make_unique<ConcurrentSweeper>(allocator, config.sweeper);
  root_scanners.emplace_back(&scan_checked_handles, this);  // strong CheckedHandles
  register_heap(*this);
  const std::size_t markers = std::min<std::size_t>(marker_thread_count(config.marker_threads), 256);
  if (markers > 1) marker_threads = std::make_unique<MarkerThreads>(markers - 1);
}

HeapInternals::~HeapInternals() { unregister_heap(*this); }

std::size_t HeapInternals::max_marker_workers() const noexcept {
  return marker_threads == nullptr ? 1 : marker_threads->workers();
}

// The mark phase's loop. Marking alone is not a closure once ephemerons
// exist: an entry's value becomes reachable when its key is marked, which
// may happen after the entry was seen. So: drain the mark stack; give each
// pending entry whose key is now marked its value (Marker::
// process_ephemerons, on this thread); if that marked anything, drain
// again. It ends when a round marks nothing; then every entry with a
// marked key has a marked value, and no value was marked only through an
// entry whose key is unmarked. A parallel drain plugs in where drain() is.
void drain_to_fixpoint(Marker& marker) {
  do {
    marker.drain();
  } while (marker.process_ephemerons());
}

bool HeapInternals::is_marked(const void* object) const noexcept {
  const void* cell = cell_of(object);
  if (in_block_chunks(allocator, cell)) return is_marked_small_cell(cell, mark_version);
  return LargeObjectSpace::is_marked(cell, mark_version);
}

SweepPolicy HeapInternals::sweep_policy() const noexcept {
  return SweepPolicy::by_marks(mark_version, &run_destructor);
}

bool HeapInternals::choose_eden(CollectionKind kind) const noexcept {
  if (config.generational == 0 || mark_version == 0) return false;  // nothing is old before the first
  if (mark_abandoned) return false;  // see run_collection
  switch (kind) {
    case CollectionKind::kExplicitEden: return true;
    case CollectionKind::kTriggered: break;
    case CollectionKind::kExplicitFull:
    case CollectionKind::kLastResort:
    case CollectionKind::kVerify: return false;
  }
  if (config.collect_every != 0) {
    // Torture: collections are far too frequent for the policy's budgets to
    // mean anything; 0 mixes the two kinds, so both run often.
    if (config.collect_every_scope != 0) return config.collect_every_scope == 1;
    return (collections_run + 1) % kTortureFullEvery != 0;
  }
  if (fulls_before_eden != 0) return false;  // the young did not die young (note_eden_survival)
  const std::uint64_t allocated = bytes_allocated.load(std::memory_order_relaxed) - allocated_at_full;
  const std::uint64_t budget = full_budget / 100;
  // External memory attached since the full collection stays attached to
  // old wrappers that only a full collection can free: it counts as promoted.
  const std::uint64_t promoted = promoted_since_full + external.since_full.load(std::memory_order_relaxed);
  return promoted < budget * config.full_growth_percent && allocated < budget * config.full_allocation_percent;
}

// When eden collections do not pay. An eden collection is cheaper than a
// full one only if most of what was allocated since the last collection is
// dead: it marks the survivors (and retraces the remembered set), and each
// survivor is promoted, shrinking the next eden's budget (next_trigger) and
// bringing the next full collection nearer. A working set whose objects are
// replaced at random (bench/workloads "steady") breaks the weak
// generational hypothesis: a new object is no likelier to die than an old
// one, so an eden collection finds most of what was allocated alive (68%
// and 88% measured, papers/collector.md "The steady workload"), its remembered set
// (the tables that point at every object) makes its mark about as long as
// a full one's, and the promoted objects then die old, as fast as they
// were promoted, so the live set does not grow. Eden collections then only
// add collections: three where a full-only policy runs two.
//
// The signature, measured at no cost, at each full collection: the eden
// collections since the last full one found at least
// kEdenSurvivalFullPercent of the bytes allocated before them alive (their
// marked bytes over the allocation that each one collected, summed), and
// this full collection finds that at least kDiedOldFullPercent as many
// bytes as were promoted died old (the live estimate, what the last full
// one found plus what was promoted, minus what this one marked). A growing live set (a
// long-lived structure being built) shows the first and not the second;
// a structure that dies once (GCBench's stretch tree) the second and not
// the first, over the many eden collections of a cycle; both keep eden
// collections. On the signature the next kFullsAfterSurvivingEden triggered
// collections are full, each with the whole budget B; then eden
// collections are tried again, so a workload whose young objects start
// dying young is collected generationally again within a few collections.
// The thresholds (70% and 75%) sit between what the two workloads near
// them show at each full collection (papers/collector.md): steady 74-79%
// and 87-100%, binary-trees' largest depths, whose trees are as big as B
// and are promoted while being built, 62-64% and 55-62%.
// JavaScriptCore decides from sizes alone (a full collection once the old
// generation outgrows its budget), which cannot tell this case apart.
void HeapInternals::note_eden_survival(const CollectionResult& r, std::uint64_t allocated_since) noexcept {
  if (config.collect_every != 0) return;
  if (r.eden) {
    if (r.triggered) eden_allocated_since_full += allocated_since;
    return;
  }
  if (r.triggered && fulls_before_eden != 0) --fulls_before_eden;
  const std::uint64_t promoted = promoted_since_full;
  const std::uint64_t estimate = live_after_full + promoted;
  const std::uint64_t died_old = estimate > r.marked_bytes ? estimate - r.marked_bytes : 0;
  const bool young_survive =
      eden_allocated_since_full != 0 && promoted >= eden_allocated_since_full / 100 * kEdenSurvivalFullPercent;
  const bool old_die = promoted != 0 && died_old >= promoted / 100 * kDiedOldFullPercent;
  if (young_survive && old_die) fulls_before_eden = kFullsAfterSurvivingEden;
  eden_allocated_since_full = 0;
}

// The trigger. A full collection that finds L bytes live sets the budget
// B = max(initial_heap_bytes, L * growth_percent / 100): the heap may grow to
// about L + B before the next collection, as without generations. Bytes an
// eden collection promotes (marks) stay until the next full one, so each
// eden collection allows B minus what was promoted since the full one: the
// heap keeps about the same bound, and the policy turns to a full collection
// once promotion has eaten full_growth_percent of B. Every eden collection
// allows at least half of B, so at the default of 100 the heap may reach
// about L + 1.5 B just before a full collection.
std::uint64_t HeapInternals::next_trigger(const CollectionResult& r, std::uint64_t allocated_since) const noexcept {
  const std::uint64_t floor = full_budget / 2;
  const std::uint64_t left = full_budget > promoted_since_full ? full_budget - promoted_since_full : 0;
  const std::uint64_t cache_bytes = detail::cache_budget_for_threads(
      config.cache_budget_bytes, allocating_threads, online_cpus);
  return detail::cache_budget_trigger(std::max<std::uint64_t>({left, floor, 1}), r.marked_bytes, allocated_since,
                                      cache_bytes);
}

void HeapInternals::run_collection(CollectionKind kind) {
  const std::uint64_t start = now_ns();
  CollectionResult result;
  result.eden = choose_eden(kind);
  result.triggered = kind == CollectionKind::kTriggered;
  if (sweeper) sweeper->pause();
  allocator.finish_lazy_sweep();
  std::size_t allocating = 0;
  for (MutatorThread* thread : threads) allocating += thread->allocator.flush() ? 1 : 0;
  allocating_threads = allocating;

  if (!result.eden) {
    mark_version = next_mark_version(mark_version);
    forget_remembered(*this);
    mark_abandoned = false;
  }
  const std::uint64_t mark_start = now_ns();
  const std::uint64_t expected = expected_mark_bytes(result.eden, live_after_full + promoted_since_full, last_eden_marked);
  Marker marker(*this, Marker::Mode::kMark,
                mark_workers(max_marker_workers(), expected, config.marker_parallel_min_bytes));
  result.parallel_mark = marker.workers() > 1;
  // User code runs from here to the verifier (trace(), root scanners,
  // post-mark hooks; a parallel marker rethrows a worker's exception here).
  // An exception abandons the collection: no sweep starts, so nothing is
  // freed by marks that are incomplete; the blocks keep their exact live
  // bits, and allocation goes on from them and from fresh blocks. The
  // marks already set are sticky for an eden collection (an object marked
  // whose children are not would never be traced again), so the next
  // collection is full: a new mark version makes them stale. The caller
  // resumes the world and rethrows (HeapInternals::collect).
  try {
    if (result.eden) marker.trace_remembered();
    marker.mark_roots();
    drain_to_fixpoint(marker);
    if (config.immortal == 0) process_weak_and_finalizable(marker);
    result.mark_ns = now_ns() - mark_start;
#if defined(HANDOFF_TEST_HOOKS)
    if (hooks.drop_one_mark) drop_one_mark();
#endif
    if (config.verify != 0 || kind == CollectionKind::kVerify) verify_heap(*this);
  } catch (...) {
    mark_abandoned = true;
    if (sweeper) sweeper->resume();
    throw;
  }
  result.marked_bytes = marker.marked_bytes();
  result.marked_objects = marker.marked_objects();
  result.remembered_cards = marker.remembered_cards();
  result.remembered_objects = marker.remembered_objects();
  result.ephemeron_rounds = marker.ephemeron_rounds();
  result.ephemeron_entries = marker.ephemeron_entries();
  if (config.immortal == 0) result.ephemerons_dropped = marker.drop_dead_ephemerons();
  result.parallel_sweep_begin = start_sweep(kind);
  bytes_since_collection.store(0, std::memory_order_relaxed);
  if (sweeper) sweeper->resume();
  result.pause_ns = now_ns() - start;
  update_after_collection(result);
  if (kind == CollectionKind::kLastResort) {
    std::lock_guard lock(stats_mutex);
    ++counters.last_resort_collections;
  }
}

#if defined(HANDOFF_TEST_HOOKS)
// The verifier's negative control: forget the mark of one reachable object
// (the first marked cell found), as a collector bug would.
void HeapInternals::drop_one_mark() {
  for_each_marked_small_cell(allocator, mark_version, [](void* cell) {
    clear_small_cell_mark(cell);
    return false;  // one is enough
  });
}
#endif

void HeapInternals::process_weak_and_finalizable(Marker& marker) {
  run_post_mark_hooks(*this, marker);
  std::uint64_t cleared = 0;
  handles.for_each([&](HandleBase& handle) {
    if (HandleTable::kind(handle) != HandleBase::Kind::kWeak) return;
    const void* object = HandleTable::object(handle);
    if (object != nullptr && !is_marked(object)) {
      HandleTable::clear(handle);
      ++cleared;
    }
  });
  const std::uint64_t checked_cleared = clear_dead_checked_handles(*this);
  std::uint64_t queued = 0;
  {
    std::lock_guard lock(finalizer_mutex);
    auto survivors = std::partition(finalizable.begin(), finalizable.end(),
                                    [&](void* object) { return is_marked(object); });
    for (auto it = survivors; it != finalizable.end(); ++it) {
      finalizer_queue.push_back(*it);
      ++queued;
    }
    finalizable.erase(survivors, finalizable.end());
  }
  // Keep what the queued objects reach alive until their finalizers ran.
  // (Outside finalizer_mutex: tracing runs user code.)
  std::vector<void*> resurrect;
  {
    std::lock_guard lock(finalizer_mutex);
    resurrect.assign(finalizer_queue.end() - static_cast<std::ptrdiff_t>(queued), finalizer_queue.end());
  }
  for (void* object : resurrect) marker.visit(object);
  drain_to_fixpoint(marker);
  std::lock_guard lock(stats_mutex);
  counters.weak_cleared += cleared;
  counters.checked_handles_cleared += checked_cleared;
  counters.finalizers_queued += queued;
}

bool HeapInternals::start_sweep(CollectionKind kind) {
  if (config.immortal != 0) return false;
  if (config.sync_sweep != 0 || kind == CollectionKind::kLastResort) {
    allocator.sweep(sweep_policy());
    if (kind == CollectionKind::kLastResort) allocator.release_empty_blocks();
    return false;
  }
  const bool parallel =
      sweep_begin_workers(max_marker_workers(), allocator.block_slots(), config.marker_parallel_min_blocks) > 1;
  bool used = false;
  allocator.begin_lazy_sweep(sweep_policy(), on_marker_threads(parallel ? marker_threads.get() : nullptr, used));
  return used;
}

void HeapInternals::update_after_collection(const CollectionResult& r) {
  const std::uint64_t allocated_now = bytes_allocated.load(std::memory_order_relaxed);
  const std::uint64_t allocated_since = allocated_now - allocated_at_collection;
  note_eden_survival(r, allocated_since);
  allocated_at_collection = allocated_now;
  if (r.eden) {
    last_eden_marked = r.marked_bytes;
    promoted_since_full += r.marked_bytes;
    old_objects += r.marked_objects;
  } else {
    live_after_full = r.marked_bytes;
    promoted_since_full = 0;
    allocated_at_full = allocated_now;
    old_objects = r.marked_objects;
    external.since_full.store(0, std::memory_order_relaxed);
    full_budget = std::max<std::uint64_t>(config.initial_heap_bytes, live_after_full / 100 * config.growth_percent);
  }
  trigger_bytes.store(next_trigger(r, allocated_since), std::memory_order_relaxed);
  const std::uint64_t live_bytes = live_after_full + promoted_since_full;
  ++collections_run;
  std::lock_guard lock(stats_mutex);
  ++counters.collections;
  ++(r.eden ? counters.eden_collections : counters.full_collections);
  counters.remembered_cards += r.remembered_cards;
  counters.remembered_objects += r.remembered_objects;
  counters.pause_ns_total += r.pause_ns;
  counters.pause_ns_max = std::max(counters.pause_ns_max, r.pause_ns);
  counters.mark_ns_total += r.mark_ns;
  counters.mark_ns_max = std::max(counters.mark_ns_max, r.mark_ns);
  counters.live_bytes = live_bytes;
  counters.live_objects = old_objects;
  counters.marked_bytes_total += r.marked_bytes;
  counters.ephemeron_entries += r.ephemeron_entries;
  counters.ephemeron_rounds += r.ephemeron_rounds;
  counters.ephemeron_rounds_max = std::max(counters.ephemeron_rounds_max, r.ephemeron_rounds);
  counters.ephemerons_dropped += r.ephemerons_dropped;
  counters.parallel_marks += r.parallel_mark ? 1 : 0;
  counters.parallel_sweep_begins += r.parallel_sweep_begin ? 1 : 0;
}

std::size_t HeapInternals::run_finalizers(MutatorThread& self) {
  if (self.running_finalizers) return 0;  // a finalizer's own allocation collected
  self.running_finalizers = true;
  std::size_t ran = 0;
  // A finalizer that throws does not stop the others: every due finalizer
  // runs (and counts), then the first exception is rethrown to the caller.
  std::exception_ptr first;
  for (;;) {
    void* object;
    {
      std::lock_guard lock(finalizer_mutex);
      if (finalizer_queue.empty()) break;
      object = finalizer_queue.front();
      finalizer_queue.pop_front();
      finalizing.push_back(object);  // still a root while its finalizer runs
    }
    try {
      type_of(object)->finalize(object);
    } catch (...) {
      if (first == nullptr) first = std::current_exception();
    }
    {
      std::lock_guard lock(finalizer_mutex);
      finalizing.erase(std::find(finalizing.begin(), finalizing.end(), object));
    }
    ++ran;
  }
  self.running_finalizers = false;
  {
    std::lock_guard lock(stats_mutex);
    counters.finalizers_run += ran;
  }
  if (first != nullptr) std::rethrow_exception(first);
  return ran;
}

}  // namespace handoff::detail
