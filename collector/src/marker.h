// The marker: stop-the-world marking with explicit mark stacks, on one
// thread or on the heap's marker threads in parallel.
//
// Call tree (world stopped, concurrent sweeper paused, heap mutex held):
//   HeapInternals::run_collection
//     -> Marker::trace_remembered   eden only: old objects to retrace
//     -> Marker::mark_roots         stacks + registers (conservative),
//                                   Root handles, root scanners, finalizer
//                                   queue (precise)
//     -> Marker::drain              parallel: first the tasks the two calls
//                                   above queued (Marker::run_phases); then
//                                   pop, trace (TypeInfo::trace) or scan an
//                                   object still under construction, until
//                                   every worker is out of work
//     -> HeapInternals::process_weak_and_finalizable -> Marker::drain again
//
// Marks are versioned (MarkedBlock::mark, LargeObjectSpace::mark): a cell is
// marked for this collection iff its block's mark version is the current
// one and its bit is set, so no bitmap is cleared in a pass over the heap.
//
// Parallel marking (HANDOFF_MARKER_THREADS > 1; papers/collector.md
// "Parallel marking"). The Marker the collection creates is worker 0, on
// the collecting thread; it makes one helper Marker per marker thread
// (marker_threads.h), each with its own mark stack, chunk cache and
// counters, sharing the sorted large-object list and a MarkWorkPool
// (mark_work.h: work sharing and the termination protocol). Each phase
// above runs on every worker, and the first three run in one round of the
// marker threads (one wake-up, one barrier): trace_remembered and
// mark_roots queue their tasks (a directory's dirty cards, the large
// objects, one thread's stack, the handle table, one root scanner, the
// finalizer queue), and the next drain's round hands them out through an
// atomic counter per phase, each phase after the previous one finished
// (run_phases), then runs until the termination protocol says every worker
// is out of work. drain may be called again (a fixpoint around it pushes
// with visit() on worker 0 and drains again). Marks are set with
// AccessMode::kShared (one atomic read-modify-write), so every object is
// traced once by the one worker that marked it. With one marker thread,
// or when the collection chose to mark on one thread (its live set is
// small: marker_policy.h), there are no helpers and none of this runs:
// marks are kExclusive and drain is the plain loop.
//
// Exceptions: a trace() or root scanner that throws on any worker aborts
// the work pool, every other worker stops at its next poll, and the
// exception leaves on the collecting thread, from drain() (where the queued
// remembered-set and root tasks run) rather than from the call that queued
// the task; either way it leaves the collection as it would from the
// single-threaded loop.
//
// Conservative lookup (invariant 7). A word marks a cell only if the word
// points into a block the pool has handed out, inside a cell whose live bit
// is set, or into a published large object. With the world stopped every
// block's live bits are exact: threads handed their current blocks back, the
// previous lazy sweep was finished before marking, and no block is OWNED,
// UNSWEPT or being swept. Blocks retired into the limbo are EMPTY (no live
// bit), and nothing is freed while the sweeper is paused, so a lookup never
// reads a block that may be freed concurrently.
//
// Generations (remembered_set.cpp): an eden collection keeps the version,
// so old objects stay marked and try_mark stops at them; it first pushes
// the remembered set's old objects (no mark is set meanwhile, so "marked"
// there means "old"), then marks from the roots as a full collection does.
//
// The verifier (verifier.cpp) reuses the root enumeration and lookup with
// its own visited set instead of mark bits, then checks that everything it
// reached carries the collector's mark. It runs on one thread (Mode::kVerify
// never uses the marker threads): it is a check, not a pause to shorten.
#pragma once

#include "heap_internals.h"

#include <handoff/block_pool.h>
#include <handoff/ephemeron.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_set>
#include <utility>
#include <vector>

namespace handoff::detail {

class Marker final : public Visitor {
 public:
  enum class Mode { kMark, kVerify };

  // kMark: parallel when `workers` > 1 (the collection's choice,
  // marker_policy.h) and the heap has marker threads (and this process
  // created them: not in a forked child).
  Marker(HeapInternals& heap, Mode mode, std::size_t workers = 1);
  ~Marker();
  Marker(const Marker&) = delete;
  Marker& operator=(const Marker&) = delete;

  void mark_roots();
  // Eden collections, before mark_roots: pushes the old objects that may
  // reference new ones (remembered_set.cpp).
  void trace_remembered();
  // Traces until no worker has work left; call again after more visit()s.
  void drain();
  // Marks and pushes `object` (the start of a live object), kMark: a few
  // visits later, through the visit queue (marker.cpp); a drain flushes it.
  void visit(const void* object) override;
  void visit_conservative(const void* begin, const void* end) override { scan_words(begin, end); }
  // Ephemerons (ephemeron.cpp): an entry whose key is reached has its value
  // marked at once (not through the visit queue); the others wait in a
  // pending list for the fixpoint.
  void visit_ephemerons(const EphemeronTable& table) override;
  // One fixpoint round over the pending entries (collecting thread, after
  // a drain): visits the value of each entry whose key is now reached.
  // True when it pushed something, so the caller drains again.
  bool process_ephemerons();
  void gather_ephemerons();
  // End of a collection (kMark): drops the entries of every table traced
  // in it whose key is unmarked; returns how many.
  std::uint64_t drop_dead_ephemerons();
  std::uint64_t ephemeron_rounds() const noexcept { return ephemeron_rounds_; }
  std::uint64_t ephemeron_entries() const noexcept;  // over every worker
  // Conservative: marks the live object containing `word`, if any; `word`
  // is inside bounds_ (scan_words rejects the others without a call).
  void visit_word(std::uintptr_t word);
  // `fake_stack`: the scanned thread's ASan fake stack, if any; a word that
  // points into one of its frames makes that frame scanned too.
  void scan_words(const void* begin, const void* end, void* fake_stack = nullptr);

  // Totals over every worker.
  std::uint64_t marked_bytes() const noexcept { return sum(&Marker::marked_bytes_); }
  std::uint64_t marked_objects() const noexcept { return sum(&Marker::marked_objects_); }
  std::uint64_t verify_failures() const noexcept { return verify_failures_; }
  std::uint64_t remembered_cards() const noexcept { return sum(&Marker::remembered_cards_); }
  std::uint64_t remembered_objects() const noexcept { return sum(&Marker::remembered_objects_); }
  std::size_t workers() const noexcept;

 private:
  struct Parallel;   // what the workers of one collection share (marker.cpp)
  struct TaskPhase;  // tasks queued for the next drain's round (marker.cpp)
  using LargeList = std::vector<std::pair<std::uintptr_t, std::size_t>>;  // sorted (cell, size)

  // A queued visit (the visit queue, Marker::visit): the object, and the
  // object whose trace() visited it (nullptr: a root), for a report.
  struct QueuedVisit {
    const void* object;
    const void* from;
  };
  static constexpr std::size_t kVisitQueue = 8;

  Marker(Marker& primary, std::size_t worker);  // a helper's marker
  bool try_mark(const void* object);
  // What visit() did before the visit queue: marks `object` now and pushes
  // it when this marked it.
  void mark_now(const void* object) {
    if (try_mark(object)) stack_.push_back(object);
  }
  // Marks every queued visit (oldest first), so that the mark stack holds
  // everything they newly marked.
  void flush_visits();
  [[gnu::noinline]] void queue_visit(const void* object);
  bool holds_work() const noexcept { return !stack_.empty() || visits_queued_ != 0; }
  // The target check (mark_target.h, .cpp): `cell`'s block when it is a
  // live block cell of this heap, nullptr when it is one of its large
  // objects; aborts on anything else.
  MarkedBlock* checked_target(const void* cell);
  MarkedBlock* checked_target_slow(const void* cell);
  [[noreturn]] void report_foreign_target(const void* cell) const;
  void trace_one(const void* object);
  // The plain mark loop over this worker's own stack and visit queue,
  // until both are empty; when parallel it also shares work and stops early
  // on an abort.
  void drain_local();
  // A worker's part of a parallel drain: its own stack, then donated
  // segments, until the termination protocol ends the drain.
  void drain_shared();
  void share_work();
  // Runs task(worker, i) for each i in [0, tasks), spread over the workers:
  // now on one thread; when parallel, queued for the next drain's round.
  void queue_tasks(std::size_t tasks, std::function<void(Marker& worker, std::size_t task)> task);
  // A worker's part of the queued tasks, phase by phase.
  void run_phases();
  void mark_root(std::size_t task);
  void remember_directory(std::size_t size_class);
  void remember_large();
  void remember_cards_of(MarkedBlock& block);
  // Objects found under construction go back to heap_.constructing (once
  // each), after each drain.
  void flush_constructing();
  std::uint64_t sum(std::uint64_t Marker::* counter) const noexcept;
  std::size_t object_capacity(const void* object) const;
  const void* find_large(std::uintptr_t word) const noexcept;
  // Marked by this collection (kMark) or visited by this traversal (kVerify).
  bool reached(const void* object);

  HeapInternals& heap_;
  const Mode mode_;
  const std::uint32_t version_;
  const AddressBounds bounds_;  // read once: nothing is allocated while the world is stopped
  std::vector<const void*> stack_;
  std::array<QueuedVisit, kVisitQueue> visits_{};  // kMark: visited, not yet marked (a ring)
  std::size_t visit_next_ = 0;                     // the slot the next visit takes
  std::size_t visits_queued_ = 0;
  LargeList own_large_;      // worker 0's; helpers share it
  const LargeList& large_;
  std::unique_ptr<Parallel> parallel_owned_;  // worker 0 of a parallel marking
  Parallel* parallel_ = nullptr;              // every worker of one; nullptr: one thread
  std::vector<const void*> constructing_;     // kMark: found under construction
  std::unordered_set<const void*> visited_;  // kVerify only
  // checked_target's cache: the chunks of recent block cells, one entry per
  // value of the chunk number's low bits (mark_target.cpp, "Cost").
  struct CachedChunk {
    std::uintptr_t base = UINTPTR_MAX - kChunkSize;  // at first, no address is inside
    const Chunk* chunk = nullptr;
  };
  static constexpr std::size_t kChunkCacheEntries = 64;
  std::array<CachedChunk, kChunkCacheEntries> chunk_cache_{};
  CachedChunk& cached_chunk_for(std::uintptr_t address) noexcept {
    return chunk_cache_[(address / kChunkSize) % kChunkCacheEntries];
  }
  const void* tracing_ = nullptr;  // the object whose trace() is running, for reports
  std::uint64_t marked_bytes_ = 0;
  std::uint64_t marked_objects_ = 0;
  std::uint64_t verify_failures_ = 0;
  std::uint64_t remembered_cards_ = 0;
  std::uint64_t remembered_objects_ = 0;
  std::vector<std::pair<const void*, const void*>> ephemeron_pending_;  // (key, value), key not yet reached
  std::vector<EphemeronTable*> ephemeron_tables_;  // traced by this collection (kMark only)
  std::uint64_t ephemeron_rounds_ = 0;
  std::uint64_t ephemeron_entries_ = 0;
  std::uint64_t marked_at_last_round_ = ~std::uint64_t{0};  // marked_objects_ when a round last ran
};

// Full collections: clears every card and the list of objects found under
// construction (remembered_set.cpp).
void forget_remembered(HeapInternals& heap);

}  // namespace handoff::detail
