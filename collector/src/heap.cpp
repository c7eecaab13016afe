// The heap facade: configuration, thread attachment, the allocation slow
// path (trigger, safepoint poll, out-of-memory), finalizer registration and
// stats. Collection itself is in collection.cpp, the stop-the-world
// protocol in safepoint.cpp.
#include "heap_internals.h"
#include "marker.h"

#include <handoff/chaos.h>
#include <handoff/check.h>
#include <handoff/epoch.h>
#include <handoff/large_object_space.h>
#include <handoff/mutant.h>
#include <handoff/platform.h>
#include <handoff/sanitizer.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <array>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

namespace handoff {
namespace detail {
void arm_thread_exit_hook();
}
namespace {

constexpr std::array<TunableSpec<HeapConfig>, 18> kHeapTunables{{
    {"initial_heap_bytes", "HANDOFF_INITIAL_HEAP_BYTES", &HeapConfig::initial_heap_bytes,
     "no collection is triggered before this many bytes were allocated since the last one"},
    {"cache_budget_bytes", "HANDOFF_CACHE_BUDGET_BYTES", &HeapConfig::cache_budget_bytes,
     "after a collection that found under 1% of what was allocated since the last one alive, collect again "
     "after at most this many bytes per thread that allocated (up to one per CPU), so one cycle's blocks stay in "
     "cache (0 = off)"},
    {"growth_percent", "HANDOFF_GROWTH_PERCENT", &HeapConfig::growth_percent,
     "collect when bytes allocated since the last collection exceed this percentage of the live bytes"},
    {"sync_sweep", "HANDOFF_SYNC_SWEEP", &HeapConfig::sync_sweep,
     "1 sweeps the whole heap inside each collection (tests); 0 sweeps lazily and concurrently", TunableKind::kSwitch},
    {"collect_every", "HANDOFF_COLLECT_EVERY", &HeapConfig::collect_every,
     "torture: collect every N allocations (0 = off)"},
    {"immortal", "HANDOFF_IMMORTAL", &HeapConfig::immortal,
     "torture: never free anything (no sweep, no weak clearing, no finalizers)", TunableKind::kSwitch},
    {"verify", "HANDOFF_VERIFY", &HeapConfig::verify, "1 runs the heap verifier after every collection", TunableKind::kSwitch},
    {"allocation_slice_bytes", "HANDOFF_ALLOCATION_SLICE_BYTES", &HeapConfig::allocation_slice_bytes,
     "bytes a thread allocates between trigger checks and safepoint polls"},
    {"generational", "HANDOFF_GENERATIONAL", &HeapConfig::generational,
     "1: triggered collections are eden collections (sticky marks) unless the policy asks for a full one; 0: all full", TunableKind::kSwitch},
    {"full_growth_percent", "HANDOFF_FULL_GROWTH_PERCENT", &HeapConfig::full_growth_percent,
     "collect fully once bytes surviving eden collections reach this % of the budget the last full one set"},
    {"full_allocation_percent", "HANDOFF_FULL_ALLOCATION_PERCENT", &HeapConfig::full_allocation_percent,
     "collect fully once bytes allocated since the last full collection reach this % of the budget it set"},
    {"collect_every_scope", "HANDOFF_COLLECT_EVERY_SCOPE", &HeapConfig::collect_every_scope,
     "torture: collect_every collections are 0 = mixed (every 8th full), 1 = eden, 2 = full"},
    {"show_stats", "HANDOFF_SHOW_STATS", &HeapConfig::show_stats,
     "1 writes the heap's stats (text) to stderr when the heap is destroyed", TunableKind::kSwitch},
    {"stall_warn_ms", "HANDOFF_STALL_WARN_MS", &HeapConfig::stall_warn_ms,
     "a collection waiting this long for a thread that neither polls nor parks says so on stderr, and repeats (0 = silent)"},
    {"destroy_wait_ms", "HANDOFF_DESTROY_WAIT_MS", &HeapConfig::destroy_wait_ms,
     "~Heap waits up to this long for other threads to detach before it aborts with their names"},
    {"marker_threads", "HANDOFF_MARKER_THREADS", &HeapConfig::marker_threads,
     "threads that mark in parallel, the collecting thread included (0 = one per online CPU, 1 = no marker threads)"},
    {"marker_parallel_min_bytes", "HANDOFF_MARKER_PARALLEL_MIN_BYTES", &HeapConfig::marker_parallel_min_bytes,
     "a collection marks on the marker threads only when it expects to mark this many bytes (0 = always)"},
    {"marker_parallel_min_blocks", "HANDOFF_MARKER_PARALLEL_MIN_BLOCKS", &HeapConfig::marker_parallel_min_blocks,
     "the lazy sweep begins on the marker threads only over this many block slots (0 = always)"},
}};

}  // namespace

constexpr std::uint64_t kMaxMarkerThreads = 256;

std::span<const TunableSpec<HeapConfig>> HeapConfig::table() { return kHeapTunables; }

HeapConfig HeapConfig::from_environment() {
  HeapConfig config;
  apply_environment(config, table());
  config.allocator = AllocatorConfig::from_environment();
  config.max_heap_bytes = config.allocator.max_heap_bytes;
  config.sweeper = SweeperConfig::from_environment();
  if (config.marker_threads > kMaxMarkerThreads) {
    throw Error(ErrorCode::kBadTunable, "HANDOFF_MARKER_THREADS must be at most " + std::to_string(kMaxMarkerThreads) +
                                            " (0 = one per online CPU), not " + std::to_string(config.marker_threads));
  }
  if (config.collect_every_scope > 2) {
    throw Error(ErrorCode::kBadTunable, "HANDOFF_COLLECT_EVERY_SCOPE must be 0 (mixed), 1 (eden) or 2 (full), not " +
                                            std::to_string(config.collect_every_scope));
  }
  return config;
}

namespace {
AllocatorConfig allocator_config_of(const HeapConfig& config) {
  AllocatorConfig a = config.allocator;
  a.max_heap_bytes = config.max_heap_bytes;
  return a;
}

// HANDOFF_SHOW_STATS: one write, so that lines from other threads do not
// land inside the report.
void show_stats(const Heap& heap) {
  std::ostringstream out;
  heap.write_stats_text(out);
  std::fputs(out.str().c_str(), stderr);
  std::fflush(stderr);
}
}  // namespace

Heap::Heap(HeapConfig config)
    : config_(config),
      allocator_(allocator_config_of(config_)),
      internals_(std::make_unique<detail::HeapInternals>(*this)) {}

Heap::~Heap() {
  auto& in = *internals_;
  // An attach without a detach on this thread (a global heap, or a heap in
  // main attached explicitly): nothing of ours is on the heap any more.
  if (find_current() != nullptr) detach_current_thread();
  in.wait_for_detach();
  if (config_.show_stats != 0) show_stats(*this);
  in.sweeper.reset();  // joins the sweeper thread: nothing sweeps from here on
  in.handles.orphan_all();
  detail::unregister_heap(in);  // checked handles: kHeapDestroyed from here on
  // Every remaining object is dead now: run the destructors of those the
  // last collection's lazy sweep has not reached, then of everything else.
  allocator_.finish_lazy_sweep();
  if (++in.mark_version == 0) in.mark_version = 1;
  allocator_.sweep(SweepPolicy::by_marks(in.mark_version, &detail::run_destructor));
}

detail::MutatorThread* Heap::find_current_slow() const noexcept {
  auto& records = detail::tls_records;
  for (MutatorThread* t = records.head; t != nullptr; t = t->next_on_thread) {
    if (&t->heap == this) {
      records.cached_heap = this;
      records.cached = t;
      return t;
    }
  }
  return nullptr;
}

detail::MutatorThread& Heap::current_or_throw(const char* what) {
  if (detail::tls_records.in_destructor > 0) {
    detail::fatal_misuse(std::string("a destructor touched the heap (") + what +
                         "): destructors run during sweeping and must not allocate, collect or create "
                         "handles; do such work in a finalizer (see handoff/traced.h)");
  }
  if (MutatorThread* self = find_current()) return *self;
  throw Error(ErrorCode::kMisuse, std::string(what) +
                                      " from a thread that is not attached to this heap; attach it first "
                                      "with handoff::ThreadScope (or Heap::attach_current_thread)");
}

void Heap::attach_current_thread() {
  if (find_current() != nullptr) {
    throw Error(ErrorCode::kMisuse, "attach_current_thread: this thread is already attached to this heap");
  }
  auto record = std::make_unique<MutatorThread>(*this, allocator_);
  record->stack.base = detail::current_stack_base();
  record->os_thread_id = static_cast<long>(::gettid());
  auto& in = *internals_;
  {
    std::unique_lock lock(in.mutex);
    in.cv.wait(lock, [&] { return !in.collecting; });
    if (in.destroying) throw Error(ErrorCode::kMisuse, "attach_current_thread: the heap is being destroyed");
    in.threads.push_back(record.get());
  }
  detail::arm_thread_exit_hook();
  auto& records = detail::tls_records;
  record->next_on_thread = records.head;
  records.head = record.get();
  records.cached_heap = this;
  records.cached = record.release();
}

void Heap::detach_current_thread() {
  MutatorThread* self = find_current();
  if (self == nullptr) {
    throw Error(ErrorCode::kMisuse,
                "detach_current_thread: this thread is not attached to this heap (detached twice?)");
  }
  if (self->park_depth > 0 || self->defer_depth > 0) {
    throw Error(ErrorCode::kMisuse,
                "detach_current_thread inside a ParkedScope, DeferGC or ForbidGC scope; close the scope first");
  }
  auto& in = *internals_;
  for (;;) {
    safepoint();
    std::lock_guard lock(in.mutex);
    if (in.collecting) continue;  // one started meanwhile: stop for it first
    // No collection can start while we hold the mutex, so handing our
    // blocks back and leaving the list is atomic with respect to marking.
    self->allocator.flush();
    in.threads.erase(std::find(in.threads.begin(), in.threads.end(), self));
    in.publish_allocation(*self);
    forget_on_this_thread(self);
    // Still under the mutex: a ~Heap waiting for the last thread to leave
    // (wait_for_detach) must not destroy the allocator while this record's
    // ThreadAllocator exists, nor the condition variable before the notify.
    delete self;  // ~ThreadAllocator: leaves the epoch domain (invariant 5)
    in.cv.notify_all();
    break;
  }
}

void Heap::forget_on_this_thread(MutatorThread* self) noexcept {
  auto& records = detail::tls_records;
  for (MutatorThread** link = &records.head; *link != nullptr; link = &(*link)->next_on_thread) {
    if (*link == self) {
      *link = self->next_on_thread;
      break;
    }
  }
  records.cached_heap = nullptr;
  records.cached = nullptr;
}

void* Heap::allocate_slow(MutatorThread& self, std::size_t size, bool throw_on_oom) {
  if (detail::tls_records.in_destructor > 0) current_or_throw("allocation");
  if (self.park_depth > 0) {
    throw Error(ErrorCode::kMisuse,
                "allocation inside a ParkedScope: a parked thread must not touch the heap; close the scope first");
  }
  // Sizes no heap could hold, refused before the request is counted as
  // allocated; the allocator's answer for every other request is a cell or
  // out of memory, so no error code needs reading back from it.
  if (const AllocationFailure refused = LargeObjectSpace::refusal(size); refused != AllocationFailure::kNone) {
    return refuse(self, size, refused, throw_on_oom);
  }
  auto& in = *internals_;
  // Publish the slice just used up (or the part of it used before a failure).
  in.publish_allocation(self);
  self.slice_bytes = config_.collect_every != 0 ? 0 : static_cast<std::int64_t>(config_.allocation_slice_bytes);
  self.countdown = self.slice_bytes;
  safepoint();
  if (in.should_collect() && self.defer_depth == 0) in.collect(&self, detail::CollectionKind::kTriggered);
  if (void* cell = self.allocator.try_allocate(size)) return cell;
  // One last full collection (synchronous sweep, empty blocks released),
  // unless collections are deferred; then the error.
  const bool collected = in.collect(&self, detail::CollectionKind::kLastResort);
  if (collected) {
    if (void* cell = self.allocator.try_allocate(size)) return cell;
  }
  {
    std::lock_guard lock(in.stats_mutex);
    ++in.counters.out_of_memory_errors;
  }
  if (!throw_on_oom) return nullptr;
  const std::uint64_t limit = allocator_.budget().limit();
  std::string message = "allocation of " + std::to_string(size) + " bytes failed " +
                        (collected ? "after a full collection: "
                                   : "with collections deferred (a DeferGC or ForbidGC scope is open), so no "
                                     "collection ran: ");
  if (limit != 0) {
    message += "the heap limit of " + std::to_string(limit) + " bytes (HANDOFF_MAX_HEAP_BYTES) is reached with " +
               std::to_string(stats().live_bytes) + " bytes live";
  } else {
    message += "the operating system refused more memory";
  }
  throw Error(ErrorCode::kOutOfMemory, message);
}

// A size that overflows, or one larger than the machine can back
// (platform.h): no collection could make room for it, so none runs. An
// overflowing size is a misuse, not out of memory: it throws even for
// try_make.
void* Heap::refuse(MutatorThread& self, std::size_t size, AllocationFailure failure, bool throw_on_oom) {
  self.countdown += static_cast<std::int64_t>(size);  // nothing was allocated
  if (error_code_of(failure) == ErrorCode::kOutOfMemory) {
    {
      std::lock_guard lock(internals_->stats_mutex);
      ++internals_->counters.out_of_memory_errors;
    }
    if (!throw_on_oom) return nullptr;
  }
  throw allocation_error(failure, size);
}

std::size_t Heap::checked_extra(std::size_t count, std::size_t element) {
  if (element != 0 && count > std::numeric_limits<std::size_t>::max() / element) {
    throw Error(ErrorCode::kSizeOverflow, "array of " + std::to_string(count) + " elements of " +
                                              std::to_string(element) + " bytes: the size overflows");
  }
  return count * element;
}

void Heap::throw_size_overflow(std::size_t base, std::size_t extra) {
  throw Error(ErrorCode::kSizeOverflow, "object of " + std::to_string(base) + " + " + std::to_string(extra) +
                                            " bytes: the size overflows once headers and page rounding are added");
}

void Heap::register_finalizable(void* object) {
  std::lock_guard lock(internals_->finalizer_mutex);
  internals_->finalizable.push_back(object);
}

bool Heap::collect(CollectionScope scope) {
  MutatorThread* self = find_current();
  if (self != nullptr && self->park_depth > 0) {
    throw Error(ErrorCode::kMisuse, "Heap::collect() inside a ParkedScope; close the scope first");
  }
  return internals_->collect(self, scope == CollectionScope::kFull ? detail::CollectionKind::kExplicitFull
                                                                   : detail::CollectionKind::kExplicitEden);
}

void Heap::verify() {
  MutatorThread* self = find_current();
  internals_->collect(self, detail::CollectionKind::kVerify);
}

void Heap::add_root_scanner(RootScanner scan, void* context) {
  auto& in = *internals_;
  for (;;) {
    safepoint();  // an attached caller must not wait for a collection that waits for it
    std::lock_guard lock(in.mutex);
    if (in.collecting) continue;
    in.root_scanners.emplace_back(scan, context);
    return;
  }
}

void Heap::add_post_mark_hook(PostMarkHook hook, void* context) {
  auto& in = *internals_;
  for (;;) {
    safepoint();
    std::lock_guard lock(in.mutex);
    if (in.collecting) continue;
    in.post_mark_hooks.emplace_back(hook, context);
    return;
  }
}

namespace detail {

void run_post_mark_hooks(HeapInternals& heap, Marker& marker) {
  struct Phase final : Heap::MarkPhase {
    Phase(HeapInternals& h, Marker& m) : heap(h), marker(m) {}
    bool is_marked(const void* object) const override { return heap.is_marked(object); }
    void mark(const void* object) override {
      marker.visit(object);
      drain_to_fixpoint(marker);
    }
    void mark_conservative(const void* begin, const void* end) override {
      marker.scan_words(begin, end);
      drain_to_fixpoint(marker);
    }
    HeapInternals& heap;
    Marker& marker;
  };
  Phase phase(heap, marker);
  for (const auto& [hook, context] : heap.post_mark_hooks) hook(phase, context);
}

}  // namespace detail

#if defined(HANDOFF_TEST_HOOKS)
void Heap::set_test_hooks(const TestHooks& hooks) noexcept {
  std::lock_guard lock(internals_->mutex);  // the collector reads them under it
  internals_->hooks = hooks;
}
#endif

std::size_t Heap::run_finalizers() { return internals_->run_finalizers(current_or_throw("run_finalizers")); }

void Heap::record_own_cells(const void* p) noexcept {
  MutatorThread* self = find_current();
  if (self != nullptr) give_up_block_holding(allocator_, self->allocator, p);
}

namespace {

#if defined(HANDOFF_ASAN)
#define HANDOFF_LOOKUP_NO_ASAN __attribute__((no_sanitize("address")))
#else
#define HANDOFF_LOOKUP_NO_ASAN
#endif

// Racy by design: between find_cell's live-bit check and this read, a
// concurrent sweep (the sweeper, or a claimer's lazy sweep) may free the
// cell, which poisons it under ASan. The lookup is pinned, so the block is
// not freed and the word is readable; what it holds is only believed if it
// names a TypeInfo. A free cell's first word may be a free list's link into
// the heap, never a TypeInfo.
HANDOFF_LOOKUP_NO_ASAN bool names_a_type(const void* object, const Allocator& allocator) noexcept {
  const auto* word = static_cast<const std::uintptr_t*>(detail::cell_of(object));
  const std::uintptr_t header = __atomic_load_n(word, __ATOMIC_RELAXED) & ~detail::kInConstruction;
  const auto* type = reinterpret_cast<const TypeInfo*>(header);
  if (type == nullptr || in_block_chunks(allocator, type)) return false;
  return type->magic == TypeInfo::kMagic;
}

}  // namespace

void* Heap::find_object(const void* p) const noexcept {
  // Pinned for the whole lookup, the object's header read included: the
  // sweeper or another thread may free the block meanwhile (invariant 7).
  std::optional<ScopedPin> pinned;
  if (!HANDOFF_MUTANT(kFindCellUnprotected)) pinned.emplace(allocator_.epochs());
  void* cell = find_cell_for_lookup(allocator_, p);
  if (cell == nullptr) return nullptr;
  void* object = detail::object_of(cell);
  if (p < object) return nullptr;  // inside the header word
  return names_a_type(object, allocator_) ? object : nullptr;
}

bool Heap::is_heap_object(const void* object) const noexcept {
  return object != nullptr && find_object(object) == object;
}

HeapStats Heap::stats() const {
  HeapStats s;
  auto& in = *internals_;
  {
    std::lock_guard lock(in.stats_mutex);
    s = in.counters;
  }
  s.bytes_allocated = in.bytes_allocated.load(std::memory_order_relaxed);
  s.trigger_bytes = in.trigger_bytes.load(std::memory_order_relaxed);
  s.roots = in.handles.count(detail::HandleBase::Kind::kRoot);
  s.weak_handles = in.handles.count(detail::HandleBase::Kind::kWeak);
  s.external_bytes = in.external.bytes.load(std::memory_order_relaxed);
  s.external_attached = in.external.attached.load(std::memory_order_relaxed);
  s.external_released = in.external.released.load(std::memory_order_relaxed);
  {
    std::lock_guard lock(in.checked_handles.mutex);
    s.checked_handles = in.checked_handles.in_use;
  }
  {
    std::lock_guard lock(in.mutex);
    s.attached_threads = in.threads.size();
  }
  s.allocator = allocator_.stats();
  if (in.sweeper) s.sweeper = in.sweeper->stats();
  s.bytes_swept = s.allocator.large.freed_bytes;
  s.objects_swept = s.allocator.large.freed;
  for (const auto& c : s.allocator.classes) {
    s.bytes_swept += c.freed_cells_total * c.cell_size;
    s.objects_swept += c.freed_cells_total;
  }
  return s;
}

namespace {

using S = HeapStats;
constexpr CounterSpec<S> kHeapCounters[] = {
    {"collections", &S::collections, "collections", "collections run"},
    {"eden_collections", &S::eden_collections, "eden", "of which sticky-mark collections that trace only new objects"},
    {"full_collections", &S::full_collections, "full", "of which collections that trace everything"},
    {"remembered_cards", &S::remembered_cards, "remembered cards", "dirty cards scanned by eden collections"},
    {"remembered_objects", &S::remembered_objects, "old objects retraced", "old objects retraced for them"},
    {"deferred_collections", &S::deferred_collections, "deferred", "collections requested inside a DeferGC scope"},
    {"last_resort_collections", &S::last_resort_collections, "last-resort", "collections run because an allocation failed"},
    {"out_of_memory_errors", &S::out_of_memory_errors, "out-of-memory errors", "allocations that failed"},
    {"mark_ns_total", &S::mark_ns_total, "mark ns total", "time spent marking"},
    {"mark_ns_max", &S::mark_ns_max, "mark ns max", "longest mark"},
    {"pause_ns_total", &S::pause_ns_total, "pause ns total", "time the world was stopped"},
    {"pause_ns_max", &S::pause_ns_max, "pause ns max", "longest pause"},
    {"live_bytes", &S::live_bytes, "live bytes", "marked by the last full collection plus every eden one since"},
    {"live_objects", &S::live_objects, "live objects", "objects counted in live_bytes"},
    {"marked_bytes_total", &S::marked_bytes_total, "marked bytes total", "newly marked, over all collections"},
    {"bytes_allocated", &S::bytes_allocated, "bytes allocated", "published by threads' slow paths"},
    {"bytes_swept", &S::bytes_swept, "bytes swept", "freed by sweeps finished so far"},
    {"objects_swept", &S::objects_swept, "objects swept", "cells and large objects those sweeps freed"},
    {"trigger_bytes", &S::trigger_bytes, "trigger bytes", "current collection threshold"},
    {"weak_cleared", &S::weak_cleared, "weak cleared", "weak handles cleared"},
    {"finalizers_queued", &S::finalizers_queued, "finalizers queued", "finalizers of dead objects queued"},
    {"finalizers_run", &S::finalizers_run, "finalizers run", "finalizers that ran"},
    {"roots", &S::roots, "roots", "Root handles now"},
    {"weak_handles", &S::weak_handles, "weak handles", "Weak handles now"},
    {"attached_threads", &S::attached_threads, "threads", "mutator threads attached now"},
    {"verifications", &S::verifications, "verifications", "heap verifier runs"},
    {"ephemeron_entries", &S::ephemeron_entries, "ephemeron entries", "entries looked at when their tables were traced"},
    {"ephemeron_rounds", &S::ephemeron_rounds, "ephemeron rounds", "fixpoint rounds, over all collections"},
    {"ephemeron_rounds_max", &S::ephemeron_rounds_max, "ephemeron rounds max", "most in one collection"},
    {"ephemerons_dropped", &S::ephemerons_dropped, "ephemerons dropped", "entries dropped because their key died"},
    {"external_bytes", &S::external_bytes, "external bytes", "attached external memory now"},
    {"external_attached", &S::external_attached, "external attached", "attachments, ever"},
    {"external_released", &S::external_released, "external released", "released by a sweep or a detach"},
    {"checked_handles", &S::checked_handles, "checked handles", "CheckedHandle slots in use"},
    {"checked_handles_cleared", &S::checked_handles_cleared, "checked handles cleared",
     "weak ones cleared because their object died"},
    {"parallel_marks", &S::parallel_marks, "parallel marks", "collections that marked on the marker threads"},
    {"parallel_sweep_begins", &S::parallel_sweep_begins, "parallel sweep begins",
     "collections that began the lazy sweep on the marker threads"},
};
// The scalar counters are the fields before `allocator`: each has a row.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
static_assert(sizeof(kHeapCounters) / sizeof(kHeapCounters[0]) * sizeof(std::uint64_t) == offsetof(S, allocator),
              "every scalar HeapStats counter has a row in the table");
#pragma GCC diagnostic pop

}  // namespace

std::span<const CounterSpec<HeapStats>> HeapStats::table() noexcept { return kHeapCounters; }

void Heap::write_stats_json(std::ostream& out) const {
  const HeapStats s = stats();
  out << "{";
  counters_json_fields(out, s, HeapStats::table());
  out << ",\"pause_ms_mean\":" << s.pause_ms_mean() << ",\"sweeper\":{\"blocks_swept\":" << s.sweeper.blocks_swept << ",\"cells_freed\":" << s.sweeper.cells_freed
      << ",\"blocks_retired\":" << s.sweeper.blocks_retired << ",\"blocks_freed\":" << s.sweeper.blocks_freed
      << ",\"limbo_blocks\":" << s.sweeper.limbo_blocks << "},\"tunables\":";
  tunables_json(out, config_, HeapConfig::table());
  out << ",\"occupancy\":[";
  const char* sep = "";
  for (const auto& c : s.allocator.classes) {
    out << sep << "{\"cell_size\":" << c.cell_size << ",\"blocks\":" << c.blocks << ",\"live_cells\":" << c.live_cells
        << ",\"capacity_cells\":" << c.capacity_cells << "}";
    sep = ",";
  }
  out << "],\"allocator\":";
  allocator_.write_stats_json(out);
  out << "}";
}

void Heap::write_stats_text(std::ostream& out) const {
  const HeapStats s = stats();
  // The summary line, then every counter of the table.
  out << "handoff heap: " << s.collections << " collections (" << s.eden_collections << " eden, "
      << s.full_collections << " full), pause mean " << s.pause_ms_mean() << " ms\n";
  counters_text(out, s, HeapStats::table());
  out << "  occupancy by size class:";
  for (const auto& c : s.allocator.classes) {
    if (c.blocks == 0) continue;
    out << " " << c.cell_size << ":" << c.live_cells << "/" << c.capacity_cells;
  }
  out << "\n  tunables:\n";
  print_tunables(out, config_, HeapConfig::table());
  allocator_.write_stats_text(out);
}

namespace detail {

void HeapInternals::wait_for_detach() {
  std::unique_lock lock(mutex);
  destroying = true;
  const auto detached = [&] { return threads.empty(); };
  if (cv.wait_for(lock, std::chrono::milliseconds(config.destroy_wait_ms), detached)) return;
  std::string ids;
  for (const MutatorThread* thread : threads) ids += (ids.empty() ? "" : ", ") + std::to_string(thread->os_thread_id);
  fatal_misuse("Heap destroyed while " + std::to_string(threads.size()) + " thread(s) (" + ids +
               ") are still attached after waiting " + std::to_string(config.destroy_wait_ms) +
               " ms (HANDOFF_DESTROY_WAIT_MS); end every ThreadScope (or call detach_current_thread) on "
               "the other threads before destroying the heap");
}

MutatorThread::MutatorThread(Heap& owner, Allocator& from) : heap(owner), allocator(from) {}

// A thread that exits while still attached is detached at thread exit, so
// that no collection waits for it forever and its blocks come back
// (invariant 5). Scopes are stack objects, so they closed before thread_local
// destructors run; only an explicit attach without a detach reaches here.
struct ThreadExitHook {
  ~ThreadExitHook() {
    auto& records = tls_records;
    while (records.head != nullptr) {
      MutatorThread* record = records.head;
      records.cached_heap = nullptr;
      record->heap.detach_current_thread();
      if (records.head == record) break;  // never loop forever at exit
    }
  }
};

void arm_thread_exit_hook() {
  static thread_local ThreadExitHook hook;
  (void)hook;
}

const TypeInfo kUnconstructedType{TypeInfo::kMagic, "an object whose constructor threw", nullptr, nullptr, nullptr};

void run_destructor(void* cell) {
  void* object = object_of(cell);
  const TypeInfo* type = type_of(object);
  if (type == nullptr || type->destroy == nullptr) return;
  ++tls_records.in_destructor;
  type->destroy(object);
  --tls_records.in_destructor;
}

}  // namespace detail
}  // namespace handoff
