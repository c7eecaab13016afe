#include "mark_target.h"

#include "mark_work.h"
#include "marker_threads.h"

#include <handoff/check.h>
#include <handoff/large_object_space.h>
#include <handoff/mark_services.h>
#include <handoff/sanitizer.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <iostream>

namespace handoff::detail {
namespace {

// Conservative reads of stacks and register copies: a parked thread may be
// writing its own frames below the published top meanwhile, and ASan keeps
// redzones between locals. These reads look at every word and keep what
// looks like a pointer; they are exempt from instrumentation on purpose.
#define HANDOFF_NO_SANITIZE_SCAN __attribute__((no_sanitize("address", "thread")))

HANDOFF_NO_SANITIZE_SCAN std::uintptr_t load_word(const std::uintptr_t* p) noexcept {
  return *static_cast<const volatile std::uintptr_t*>(p);
}

}  // namespace

// One queued set of tasks (queue_tasks): handed out by `next`, counted in
// `done` as each finishes.
struct Marker::TaskPhase {
  TaskPhase(std::size_t n, std::function<void(Marker&, std::size_t)> f) : tasks(n), task(std::move(f)) {}
  const std::size_t tasks;
  const std::function<void(Marker&, std::size_t)> task;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
};

struct Marker::Parallel {
  explicit Parallel(MarkerThreads& t) : threads(t) {}
  MarkerThreads& threads;
  MarkWorkPool work;
  std::vector<std::unique_ptr<Marker>> helpers;  // worker w > 0 is helpers[w - 1]
  std::vector<std::unique_ptr<TaskPhase>> phases;  // queued for the next drain's round, in order
};

Marker::Marker(HeapInternals& heap, Mode mode, std::size_t workers)
    : heap_(heap), mode_(mode), version_(heap.mark_version),
      bounds_(heap.allocator.bounds()), large_(own_large_) {
  heap_.allocator.large_objects().for_each_object([&](void* object, std::size_t size) {
    own_large_.emplace_back(reinterpret_cast<std::uintptr_t>(object), size);
  });
  std::sort(own_large_.begin(), own_large_.end());
  stack_.reserve(4096);
  MarkerThreads* threads = heap_.marker_threads.get();
  if (mode_ != Mode::kMark || workers < 2 || threads == nullptr || !threads->usable()) return;
  parallel_owned_ = std::make_unique<Parallel>(*threads);
  parallel_ = parallel_owned_.get();
  for (std::size_t w = 1; w < threads->workers(); ++w) parallel_->helpers.emplace_back(new Marker(*this, w));
}

Marker::Marker(Marker& primary, std::size_t /*worker*/)
    : heap_(primary.heap_), mode_(primary.mode_), version_(primary.version_), bounds_(primary.bounds_),
      large_(primary.own_large_), parallel_(primary.parallel_) {
  stack_.reserve(4096);
}

Marker::~Marker() = default;

std::size_t Marker::workers() const noexcept { return parallel_ == nullptr ? 1 : parallel_->helpers.size() + 1; }

std::uint64_t Marker::sum(std::uint64_t Marker::* counter) const noexcept {
  std::uint64_t total = this->*counter;
  if (parallel_owned_ != nullptr) {
    for (const auto& helper : parallel_owned_->helpers) total += (*helper).*counter;
  }
  return total;
}

// One thread: runs the tasks now. Parallel: queues them for the round of
// the next drain (run_phases), so that the remembered set, the roots and
// the drain of a collection are one round of the marker threads, one
// wake-up and one barrier, instead of one round each (papers/collector.md,
// "Parallel marking", measured there).
void Marker::queue_tasks(std::size_t tasks, std::function<void(Marker&, std::size_t)> task) {
  if (parallel_ == nullptr) {
    for (std::size_t i = 0; i < tasks; ++i) task(*this, i);
    return;
  }
  parallel_->phases.push_back(std::make_unique<TaskPhase>(tasks, std::move(task)));
}

// A worker's part of the queued phases, at the start of a drain's round.
// Phase k + 1 starts only after every task of phase k has finished (the
// remembered set reads marks as "old" and must see none set by the roots):
// a worker that finds phase k's tasks all handed out waits until `done`
// counts them all. It waits only for tasks that a running worker took, never
// for a worker that has not started yet (that one took none), and an abort
// ends the wait. The release increment of `done` and the acquire load that
// sees it complete order every read of phase k before every mark of phase
// k + 1, for ThreadSanitizer too. After the last phase a worker goes
// straight to the drain: termination needs no such wait, because every
// worker, one still scanning roots included, is counted active from the
// round's start (MarkWorkPool::reset) until its own take fails.
void Marker::run_phases() {
  MarkWorkPool& work = parallel_->work;
  const TaskPhase* previous = nullptr;
  for (const auto& phase : parallel_->phases) {
    for (unsigned spins = 0; previous != nullptr && !work.aborted() &&
                             previous->done.load(std::memory_order_acquire) < previous->tasks;
         ++spins) {
      MarkWorkPool::back_off(spins);
    }
    for (std::size_t i; !work.aborted() && (i = phase->next.fetch_add(1, std::memory_order_relaxed)) < phase->tasks;) {
      phase->task(*this, i);
      phase->done.fetch_add(1, std::memory_order_release);
    }
    previous = phase.get();
  }
}

const void* Marker::find_large(std::uintptr_t word) const noexcept {
  auto it = std::upper_bound(large_.begin(), large_.end(), std::make_pair(word, SIZE_MAX));
  if (it == large_.begin()) return nullptr;
  --it;
  return word < it->first + it->second ? reinterpret_cast<const void*>(it->first) : nullptr;
}

std::size_t Marker::object_capacity(const void* object) const {
  const void* cell = cell_of(object);
  if (in_block_chunks(heap_.allocator, cell)) {
    return small_cell_size(cell) - kCellHeaderSize;
  }
  const auto* found = find_large(reinterpret_cast<std::uintptr_t>(cell));
  return found == nullptr ? 0 : heap_.allocator.large_objects().size_of(cell) - kCellHeaderSize;
}

bool Marker::try_mark(const void* object) {
  const void* cell = cell_of(object);
  std::size_t bytes;
  if (MarkedBlock* block = checked_target(cell)) {
    if (mode_ == Mode::kVerify) {
      if (!visited_.insert(object).second) return false;
      if (!block->is_marked(cell, version_)) ++verify_failures_;
    } else if (!(parallel_ != nullptr ? block->mark<AccessMode::kShared>(cell, version_)
                                      : block->mark(cell, version_))) {
      return false;
    }
    bytes = block->cell_size();
  } else {
    if (mode_ == Mode::kVerify) {
      if (!visited_.insert(object).second) return false;
      if (!LargeObjectSpace::is_marked(cell, version_)) ++verify_failures_;
    } else if (!(parallel_ != nullptr ? LargeObjectSpace::mark<AccessMode::kShared>(cell, version_)
                                      : LargeObjectSpace::mark(cell, version_))) {
      return false;
    }
    bytes = heap_.allocator.large_objects().size_of(cell);
  }
  marked_bytes_ += bytes;
  ++marked_objects_;
  return true;
}

// The visit queue. Checking and marking a target reads two lines of its
// block's header (the mark version, and the bitmap line holding its live
// and mark words: mark_target.h). On a heap whose references no longer
// follow addresses those lines are cold, one miss per edge, which the drain's
// FIFO does not cover (it prefetches the object being traced, not the
// blocks of what it references). So visit() prefetches both lines and
// queues the target; the target is checked and marked kVisitQueue visits
// later, when its lines have had time to arrive, or when the queue is
// flushed. Cost of the wait: a queued target is not yet marked, so
//   - drain_local flushes the queue before it reports its stack empty:
//     a worker goes idle (take_or_terminate), and a drain ends, only with
//     an empty queue, so the termination protocol (mark_work.h) still sees
//     every pending target as work its worker holds;
//   - drain() counts a queue that is not empty as work (a visit from the
//     fixpoint, a post-mark hook or a queued finalizer, then a drain);
//   - the ephemeron code reads marks, so it flushes first and marks values
//     with mark_now (ephemeron.cpp);
//   - the report of a bad reference names the trace() that made it, kept
//     with the queued visit.
// The queue is the worker's own, like its stack; nothing here is shared.
// The verifier (kVerify) checks targets at once: it is not a pause.
void Marker::visit(const void* object) {
  // Into the block of the object being traced (its header is warm, waiting
  // would cost more than it saves), or the verifier: marked now. An object
  // starts 8 bytes into its cell, in the cell's block and atom.
  const auto address = reinterpret_cast<std::uintptr_t>(object);
  if ((address ^ reinterpret_cast<std::uintptr_t>(tracing_)) < kBlockSize || mode_ == Mode::kVerify) {
    mark_now(object);
    return;
  }
  queue_visit(object);
}

// Out of line: visit()'s path for a warm target stays as short as it was
// without the queue, plus the block test. With this body inline, every
// visit() saved the registers it needs: on bench_mark_pause, whose targets
// are nearly all warm, the marker ran 4.5% more instructions than without
// the queue, against 2.9% now (callgrind; papers/collector.md).
void Marker::queue_visit(const void* object) {
  __builtin_prefetch(reinterpret_cast<const void*>(MarkedBlock::version_line_of(object)));
  __builtin_prefetch(reinterpret_cast<const void*>(MarkedBlock::bitmap_line_of(object)));
  QueuedVisit& slot = visits_[visit_next_];
  visit_next_ = (visit_next_ + 1) % kVisitQueue;
  if (visits_queued_ == kVisitQueue) {
    // Full: the slot the ring reached is the oldest visit.
    const void* tracing = tracing_;
    tracing_ = slot.from;
    mark_now(slot.object);
    tracing_ = tracing;
  } else {
    ++visits_queued_;
  }
  slot = {object, tracing_};
}

void Marker::flush_visits() {
  const void* tracing = tracing_;
  for (; visits_queued_ != 0; --visits_queued_) {
    const QueuedVisit& oldest = visits_[(visit_next_ + kVisitQueue - visits_queued_) % kVisitQueue];
    tracing_ = oldest.from;
    mark_now(oldest.object);
  }
  tracing_ = tracing;
}

// Called only for a word inside bounds_ (scan_words tests that inline).
void Marker::visit_word(std::uintptr_t word) {
  const void* p = reinterpret_cast<const void*>(word);
  const BlockPool& pool = heap_.allocator.pool();
  if (pool.chunk_of(p) != nullptr) {
    if (!pool.is_handed_out(p)) return;  // never read a pooled block
    void* cell = allocated_cell_holding(p);
    if (cell == nullptr) return;  // allocated only
    visit(object_of(cell));
    return;
  }
  if (const void* cell = find_large(word)) visit(object_of(const_cast<void*>(cell)));
}

HANDOFF_NO_SANITIZE_SCAN void Marker::scan_words(const void* begin, const void* end, void* fake_stack) {
  auto first = (reinterpret_cast<std::uintptr_t>(begin) + sizeof(std::uintptr_t) - 1) & ~(sizeof(std::uintptr_t) - 1);
  const auto last = reinterpret_cast<std::uintptr_t>(end);
  for (auto p = first; p + sizeof(std::uintptr_t) <= last; p += sizeof(std::uintptr_t)) {
    const std::uintptr_t word = load_word(reinterpret_cast<const std::uintptr_t*>(p));
#if defined(HANDOFF_ASAN)
    void* frame_begin = nullptr;
    void* frame_end = nullptr;
    if (fake_stack != nullptr &&
        __asan_addr_is_in_fake_stack(fake_stack, reinterpret_cast<void*>(word), &frame_begin, &frame_end) != nullptr) {
      // One level: a call that uses a fake frame keeps its address in its
      // real frame or a register, so every live fake frame is found from there.
      scan_words(frame_begin, frame_end, nullptr);
    }
#else
    (void)fake_stack;
#endif
    // Most words of a stack are not heap addresses (small integers, stack
    // and code addresses): the bounds test rejects them here, without
    // the call. Out of line for every word, the scan of a 20 KB stack took
    // 9 us of each collection of an empty heap (bench_micro churn, 1 KiB).
    if (bounds_.contains(word)) visit_word(word);
  }
}

// The collecting thread's own stack is in heap_.threads like every other.
// Tasks: one per thread's stack, the handle table, one per root scanner, the
// finalizer queue.
void Marker::mark_roots() {
  queue_tasks(heap_.threads.size() + heap_.root_scanners.size() + 2,
            [](Marker& worker, std::size_t task) { worker.mark_root(task); });
}

void Marker::mark_root(std::size_t task) {
  const std::size_t threads = heap_.threads.size();
  if (task < threads) {
#if defined(HANDOFF_TEST_HOOKS)
    if (!heap_.hooks.scan_stacks) return;
#endif
    const StackSnapshot& s = heap_.threads[task]->stack;
    scan_words(s.registers.data(), s.registers.data() + s.register_words, s.asan_fake_stack);
    HANDOFF_CHECK(s.top != nullptr && s.top <= s.base, "a stopped thread published no stack range");
    scan_words(s.top, s.base, s.asan_fake_stack);
  } else if (task == threads) {
    heap_.handles.for_each([&](HandleBase& handle) {
      if (HandleTable::kind(handle) != HandleBase::Kind::kRoot) return;
      if (const void* object = HandleTable::object(handle)) visit(object);
    });
  } else if (task - threads - 1 < heap_.root_scanners.size()) {
    const auto& [scan, context] = heap_.root_scanners[task - threads - 1];
    scan(*this, context);
  } else {
    std::lock_guard lock(heap_.finalizer_mutex);
    for (void* object : heap_.finalizer_queue) visit(object);
    for (void* object : heap_.finalizing) visit(object);
  }
}

void Marker::drain() {
  if (parallel_ == nullptr) {
    drain_local();
    flush_constructing();
    return;
  }
  Parallel& p = *parallel_;
  // Nothing to trace (a drain after weak processing that queued nothing):
  // no round, no wake-ups. The stacks are read between rounds.
  const bool idle = p.phases.empty() && !holds_work() &&
                    std::none_of(p.helpers.begin(), p.helpers.end(),
                                 [](const auto& helper) { return helper->holds_work(); });
  if (idle) return;
  p.work.reset(workers());
  try {
    p.threads.run([&](std::size_t w) {
      Marker& self = w == 0 ? *this : *p.helpers[w - 1];
      try {
        self.run_phases();
        self.drain_shared();
      } catch (...) {
        p.work.abort();
        throw;
      }
    });
  } catch (...) {
    // Abandoned: the collection is being unwound.
    stack_.clear();
    visits_queued_ = 0;
    for (auto& helper : p.helpers) {
      helper->stack_.clear();
      helper->visits_queued_ = 0;
    }
    p.work.clear();
    p.phases.clear();
    throw;
  }
  p.phases.clear();
  flush_constructing();
}

void Marker::drain_shared() {
  MarkWorkPool& work = parallel_->work;
  do {
    drain_local();
  } while (!work.aborted() && work.take_or_terminate(stack_));
}

// Donates the bottom half of the stack (the oldest entries, most likely
// the roots of large unvisited subgraphs) when another worker is idle.
void Marker::share_work() {
  MarkWorkPool& work = parallel_->work;
  if (stack_.size() < 2 || !work.wants_work()) return;
  const auto half = static_cast<std::ptrdiff_t>(stack_.size() / 2);
  MarkWorkPool::Segment segment(stack_.begin(), stack_.begin() + half);
  stack_.erase(stack_.begin(), stack_.begin() + half);
  work.donate(std::move(segment));
}

// With parallel marking a table is traced on whichever worker reached it,
// so each worker's marker holds its own pending entries and tables; the
// collecting thread moves them into worker 0's lists between drains (no
// worker runs then: MarkerThreads::run returned).
// (ephemeron.cpp has the rest of the fixpoint.)
void Marker::gather_ephemerons() {
  if (parallel_owned_ == nullptr) return;
  for (auto& helper : parallel_owned_->helpers) {
    ephemeron_pending_.insert(ephemeron_pending_.end(), helper->ephemeron_pending_.begin(),
                              helper->ephemeron_pending_.end());
    helper->ephemeron_pending_.clear();
    ephemeron_tables_.insert(ephemeron_tables_.end(), helper->ephemeron_tables_.begin(),
                             helper->ephemeron_tables_.end());
    helper->ephemeron_tables_.clear();
  }
}

void Marker::flush_constructing() {
  if (mode_ != Mode::kMark) return;
  auto& list = heap_.constructing;
  const std::size_t before = list.size();
  list.insert(list.end(), constructing_.begin(), constructing_.end());
  constructing_.clear();
  if (parallel_owned_ != nullptr) {
    for (auto& helper : parallel_owned_->helpers) {
      list.insert(list.end(), helper->constructing_.begin(), helper->constructing_.end());
      helper->constructing_.clear();
    }
  }
  if (list.size() == before) return;
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
}

// The mark loop. Objects popped from the mark stack pass through a small
// FIFO before they are traced, and each one's header is prefetched when it
// enters: marking a large heap is dominated by the cache miss on each
// object's first line, and the FIFO lets kPrefetchDistance of those misses
// overlap (the technique of Boehm's mark prefetching and of Cher, Hosking and
// Vijaykumar, ASPLOS 2004). Traversal order becomes partly breadth-first,
// which marking does not care about. Sixteen, not eight: at 18 ns an object
// eight overlapped too little of a miss to memory (bench_mark_pause, one
// thread: 1.05-1.16x the mark rate with 16, about the same with 32 and 64;
// papers/collector.md, "Measurements").
//
// When parallel, every kPollInterval traced objects the loop looks whether
// another worker is idle (share_work) and whether the drain was aborted.
void Marker::drain_local() {
  // tracing_ names the object whose trace() runs, for a report; it is set
  // before each trace() and cleared once here, when the loop ends (also by
  // an exception), not after every object: reports from outside a trace()
  // (root scanners, the fixpoint, post-mark hooks) find it null.
  struct ClearTracing {
    const void*& tracing;
    ~ClearTracing() { tracing = nullptr; }
  } clear_tracing{tracing_};
  constexpr std::size_t kPrefetchDistance = 16;
  constexpr unsigned kPollInterval = 32;
  std::array<const void*, kPrefetchDistance> ring;
  std::size_t head = 0;
  std::size_t count = 0;
  unsigned until_poll = kPollInterval;
  for (;;) {
    while (count < kPrefetchDistance && !stack_.empty()) {
      const void* object = stack_.back();
      stack_.pop_back();
      __builtin_prefetch(cell_of(object));
      ring[(head + count++) % kPrefetchDistance] = object;
    }
    if (count == 0) {
      if (visits_queued_ == 0) return;
      flush_visits();  // the queued targets are this worker's work too
      continue;
    }
    const void* object = ring[head];
    head = (head + 1) % kPrefetchDistance;
    --count;
    trace_one(object);
    if (parallel_ != nullptr && --until_poll == 0) [[unlikely]] {
      until_poll = kPollInterval;
      if (parallel_->work.aborted()) return;
      share_work();
    }
  }
}

void Marker::trace_one(const void* object) {
  const std::uintptr_t header = header_of(object).load(std::memory_order_relaxed);
  if ((header & kInConstruction) != 0) [[unlikely]] {
    // Its constructor is running: its fields may not be initialised yet,
    // so every word of it counts as a possible reference.
    const std::size_t bytes = object_capacity(object);
    scan_words(object, static_cast<const char*>(object) + bytes);
    // It is marked now, so an eden collection would not trace it again,
    // but its constructor may still store new objects into it.
    if (mode_ == Mode::kMark) constructing_.push_back(object);
    return;
  }
  const auto* type = reinterpret_cast<const TypeInfo*>(header);
  if (type == nullptr || type->magic != TypeInfo::kMagic) [[unlikely]] {
    std::fprintf(stderr, "handoff: corrupt object header %#llx at %p\n", static_cast<unsigned long long>(header),
                 object);
    if (in_block_chunks(heap_.allocator, object)) dump_block_holding(object, std::cerr);
    HANDOFF_CHECK(false, "a marked object has no valid type header (heap corruption or a bad Member)");
  }
  if (type->trace == nullptr) return;
  tracing_ = object;  // cleared when drain_local ends
  type->trace(object, *this);
}

}  // namespace handoff::detail
