// One collection, world stopped. Phases, in order (each relies on the one
// before):
//
//   1. quiesce    pause the concurrent sweeper; finish the previous cycle's
//                 lazy sweep, so every block is swept with the marks it was
//                 judged by and every live bit is exact (invariant 7)
//   2. flush      hand back every thread's current blocks (stopAllocating)
//   3. mark       new mark version; roots; drain the mark stack
//   4. weak       clear weak references to unmarked objects
//   5. finalize   unreachable finalizable objects: queue them and mark what
//                 they reach, so their finalizers see intact objects
//   6. verify     optional: a second, independent marking (verifier.cpp)
//   7. sweep      begin the lazy sweep (or sweep everything now, or, for the
//                 immortal torture mode, nothing); resume the sweeper
//
// Weak references are cleared in 4, inside the pause, before 7 lets any
// thread sweep a block, so no weak reference can observe a reused cell.
#include "marker.h"

#include <handoff/check.h>

#include <algorithm>
#include <chrono>

namespace handoff::detail {
namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

HeapInternals::HeapInternals(Heap& owner) : heap(owner), allocator(owner.allocator()), config(owner.config()) {
  trigger_bytes.store(std::max<std::uint64_t>(config.initial_heap_bytes, 1), std::memory_order_relaxed);
  if (config.sweeper.enabled != 0) sweeper = std::make_unique<ConcurrentSweeper>(allocator, config.sweeper);
}

HeapInternals::~HeapInternals() = default;

bool HeapInternals::is_marked(const void* object) const noexcept {
  const void* cell = cell_of(object);
  if (allocator.pool().chunk_of(cell) != nullptr) return MarkedBlock::of(cell)->is_marked(cell, mark_version);
  return LargeObjectSpace::is_marked(cell, mark_version);
}

LivenessPredicate HeapInternals::sweep_predicate() const noexcept {
  return LivenessPredicate::by_marks(mark_version, &run_destructor);
}

void HeapInternals::run_collection(CollectionKind kind) {
  const std::uint64_t start = now_ns();
  if (sweeper) sweeper->pause();
  allocator.finish_lazy_sweep();
  for (MutatorThread* thread : threads) thread->allocator.flush();

  if (++mark_version == 0) mark_version = 1;  // 0 means "never marked"
  const std::uint64_t mark_start = now_ns();
  Marker marker(*this, Marker::Mode::kMark);
  marker.mark_roots();
  marker.drain();
  const std::uint64_t live_bytes = marker.marked_bytes();
  const std::uint64_t live_objects = marker.marked_objects();
  if (config.immortal == 0) process_weak_and_finalizable(marker);
  const std::uint64_t mark_ns = now_ns() - mark_start;
#if defined(HANDOFF_TEST_HOOKS)
  if (hooks.drop_one_mark) drop_one_mark();
#endif

  if (config.verify != 0 || kind == CollectionKind::kVerify) verify_heap(*this);
  start_sweep(kind);
  bytes_since_collection.store(0, std::memory_order_relaxed);
  if (sweeper) sweeper->resume();
  update_after_collection(now_ns() - start, mark_ns, live_bytes, live_objects);
  if (kind == CollectionKind::kLastResort) {
    std::lock_guard lock(stats_mutex);
    ++counters.last_resort_collections;
  }
}

#if defined(HANDOFF_TEST_HOOKS)
// The verifier's negative control: forget the mark of one reachable object
// (the first marked cell found), as a collector bug would.
void HeapInternals::drop_one_mark() {
  bool dropped = false;
  for (std::size_t cls = 0; cls < kNumSizeClasses && !dropped; ++cls) {
    allocator.directory(cls).for_each_block([&](MarkedBlock& block) {
      if (dropped || block.mark_version() != mark_version) return;
      block.for_each_live_cell([&](void* cell) {
        if (dropped || !block.is_marked(cell, mark_version)) return;
        block.mark_bits().clear(MarkedBlock::atom_of(cell));
        dropped = true;
      });
    });
  }
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
  marker.drain();
  std::lock_guard lock(stats_mutex);
  counters.weak_cleared += cleared;
  counters.finalizers_queued += queued;
}

void HeapInternals::start_sweep(CollectionKind kind) {
  if (config.immortal != 0) return;
  if (config.sync_sweep != 0 || kind == CollectionKind::kLastResort) {
    allocator.sweep(sweep_predicate());
    if (kind == CollectionKind::kLastResort) allocator.release_empty_blocks();
    return;
  }
  allocator.begin_lazy_sweep(sweep_predicate());
}

void HeapInternals::update_after_collection(std::uint64_t pause_ns, std::uint64_t mark_ns, std::uint64_t live_bytes,
                                            std::uint64_t live_objects) {
  const std::uint64_t grown = live_bytes / 100 * config.growth_percent;
  trigger_bytes.store(std::max<std::uint64_t>(config.initial_heap_bytes, grown), std::memory_order_relaxed);
  std::lock_guard lock(stats_mutex);
  ++counters.collections;
  counters.pause_ns_total += pause_ns;
  counters.pause_ns_max = std::max(counters.pause_ns_max, pause_ns);
  counters.mark_ns_total += mark_ns;
  counters.mark_ns_max = std::max(counters.mark_ns_max, mark_ns);
  counters.live_bytes = live_bytes;
  counters.live_objects = live_objects;
  counters.marked_bytes_total += live_bytes;
}

std::size_t HeapInternals::run_finalizers(MutatorThread& self) {
  if (self.running_finalizers) return 0;  // a finalizer's own allocation collected
  self.running_finalizers = true;
  std::size_t ran = 0;
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
      std::lock_guard lock(finalizer_mutex);
      finalizing.erase(std::find(finalizing.begin(), finalizing.end(), object));
      self.running_finalizers = false;
      throw;
    }
    {
      std::lock_guard lock(finalizer_mutex);
      finalizing.erase(std::find(finalizing.begin(), finalizing.end(), object));
    }
    ++ran;
  }
  self.running_finalizers = false;
  std::lock_guard lock(stats_mutex);
  counters.finalizers_run += ran;
  return ran;
}

}  // namespace handoff::detail
