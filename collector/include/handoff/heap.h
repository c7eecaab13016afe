// The garbage-collected heap: the collector's public entry point.
//
//   handoff::Heap heap;                          // config from HANDOFF_* variables
//   handoff::ThreadScope attached(heap);         // on every thread that touches it
//   Node* n = heap.make<Node>(args...);          // traced type (traced.h)
//   handoff::Root<Node> global(heap, n);         // held outside any stack
//   heap.collect();                              // or let the trigger decide
//
// A collection stops the world: every attached thread reaches a safepoint
// (an allocation slow path, Heap::safepoint(), or a scope constructor) or is
// parked (ParkedScope). Stopped threads hand back their current blocks (JSC's
// stopAllocating), so every block's live bits are exact while marking. Roots
// are each attached thread's stack and saved registers, scanned
// conservatively, plus Root<T> handles, objects waiting for a finalizer and
// whatever root scanners report (add_root_scanner; compat/ uses one for a C
// program's data segments).
// Marking uses an explicit mark stack and versioned mark bits. Most
// triggered collections are eden collections: objects that survived one
// keep their marks and are not traced again, and the write barrier
// (write_barrier.h) remembers old objects that Member assignments wrote
// into; collect() and the policy's occasional full collections trace
// everything (papers/collector.md, "Generations"). Then weak
// references to unmarked objects are cleared, unreachable finalizable
// objects are kept for one more cycle and queued, and sweeping begins: lazy
// by default (each block is swept by the allocator that claims it, the rest
// by the concurrent sweeper), or synchronous. See papers/collector.md.
//
// Errors: allocation from a thread that is not attached, and other misuse,
// throw handoff::Error (error.h) and leave the heap unchanged. Out of memory:
// when HANDOFF_MAX_HEAP_BYTES would be exceeded the heap runs one last full
// collection and retries; if that fails, make() throws Error(kOutOfMemory)
// and try_make() returns nullptr. Nothing live is lost either way. A single
// request larger than the machine can back (physical memory plus swap, or
// RLIMIT_AS when lower: platform::backable_bytes) is refused the same way at
// once, with no collection, even without a heap limit.
//
// Misuse the heap cannot survive aborts with a message that names it
// ("handoff: misuse: ..."): a Member (or trace_raw, or MarkPhase::mark)
// that does not hold the start of a live object of this heap: an object of
// another heap, memory from malloc or a stack, the inside of an object, a
// freed cell. The marker checks every target in every build before it
// writes a mark, and names the type whose trace() reported it.
//
// Exceptions from user code during a collection (a trace(), a root scanner,
// a post-mark hook) abandon it: the world resumes, nothing is swept by the
// incomplete marks, the exception propagates out of the call that collected
// (collect(), verify(), or the make() whose allocation triggered it), and the
// next collection is full. Finalizers run after the world resumed: one that
// throws does not stop the others; once every due finalizer ran (each counts
// in stats().finalizers_run) the first exception propagates out of the call
// that ran them (collect(), run_finalizers(), or a make() that collected).
// A constructor's exception propagates out of make(); the cell is garbage.
#pragma once

#include <handoff/allocator.h>
#include <handoff/cell_services.h>
#include <handoff/config.h>
#include <handoff/check.h>
#include <handoff/concurrent_sweeper.h>
#include <handoff/counters.h>
#include <handoff/handles.h>
#include <handoff/mutator_thread.h>
#include <handoff/traced.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <utility>

namespace handoff {

// The collector's tunables (STYLE.md 7); the allocator's and the sweeper's
// own tables sit beside it in `allocator` and `sweeper`.
struct HeapConfig {
  // No collection is triggered before this many bytes were allocated since
  // the last one (the floor of the trigger).
  std::uint64_t initial_heap_bytes = 8 << 20;
  // ... except after a collection that found almost nothing alive (under
  // 1% of what was allocated since the one before): then the next one is
  // triggered after at most this many bytes for each thread that allocated
  // in the cycle (up to one per online CPU), so that the blocks one cycle
  // writes stay in cache (collector/src/cache_budget.h); 0 = off.
  std::uint64_t cache_budget_bytes = 4 << 20;
  // Hard limit on heap memory (blocks in use plus large objects); 0 = none.
  std::uint64_t max_heap_bytes = 0;
  // Collect when bytes allocated since the last collection exceed this
  // percentage of the bytes found live by it.
  std::uint64_t growth_percent = 100;
  // 0: lazy sweeping (allocators and the concurrent sweeper); 1: sweep
  // everything inside the collection (synchronous, for tests).
  std::uint64_t sync_sweep = 0;
  // Torture: collect every N allocations (0 = off).
  std::uint64_t collect_every = 0;
  // Torture: never free anything (marking still runs; no sweep, no weak
  // clearing, no finalizers) for differential tests.
  std::uint64_t immortal = 0;
  // Run the verifier after every collection.
  std::uint64_t verify = 0;
  // Bytes a thread allocates between two visits to the slow path (trigger
  // check and safepoint poll).
  std::uint64_t allocation_slice_bytes = 64 << 10;
  // 1: triggered collections are eden collections (sticky marks, write
  // barrier) unless the policy below asks for a full one; 0: every
  // collection is full.
  std::uint64_t generational = 1;
  // A full collection that finds L bytes live allows B = max(initial, L *
  // growth_percent / 100) bytes of allocation; each eden collection allows
  // B minus the bytes promoted (marked by eden collections) since, so the
  // heap stays near L + B. A triggered collection is full once promotion
  // reaches this percentage of B (0 makes every collection full)...
  std::uint64_t full_growth_percent = 100;
  // ... or once the bytes allocated since the last full collection reach
  // this percentage of B, so that old objects that died are reclaimed (and
  // their finalizers run) even when nothing is promoted.
  std::uint64_t full_allocation_percent = 4000;
  // Torture: what collect_every collections are: 0 = mixed (every 8th is
  // full, the others eden), 1 = always eden (when generational), 2 = always
  // full.
  std::uint64_t collect_every_scope = 0;
  // 1: the heap writes its stats (write_stats_text) to stderr when it is
  // destroyed, like MIMALLOC_SHOW_STATS.
  std::uint64_t show_stats = 0;
  // A collection that has waited this long for a thread that neither polls
  // nor parks says so on stderr (which thread, how long), and again at each
  // further interval of this length; 0 = silent. It only reports: the
  // collection still waits for the thread.
  std::uint64_t stall_warn_ms = 1000;
  // ~Heap waits up to this long for other threads to detach (see ~Heap).
  std::uint64_t destroy_wait_ms = 10000;
  // Threads that mark, the collecting thread included (the others are the
  // heap's marker threads, started with it); 0 = one per online CPU; 1 =
  // the collecting thread alone.
  std::uint64_t marker_threads = 0;
  // A collection marks on the marker threads only when it expects to mark
  // at least this many bytes (what the last collection of its kind found);
  // below, the collecting thread marks alone, because waking the helpers
  // costs more than they save (collector/src/marker_policy.h). 0 = always.
  std::uint64_t marker_parallel_min_bytes = 2 << 20;
  // Beginning the lazy sweep uses the marker threads only when the
  // directories hold at least this many block slots; 0 = always.
  std::uint64_t marker_parallel_min_blocks = 16384;

  AllocatorConfig allocator{};
  SweeperConfig sweeper{};

  static std::span<const TunableSpec<HeapConfig>> table();
  // Defaults overridden by HANDOFF_* variables (all three tables); throws
  // Error(kBadTunable) on junk.
  static HeapConfig from_environment();
};

struct HeapStats {
  std::uint64_t collections = 0;
  std::uint64_t eden_collections = 0;  // of which: sticky marks, only new objects traced
  std::uint64_t full_collections = 0;
  std::uint64_t remembered_cards = 0;    // dirty cards scanned by eden collections
  std::uint64_t remembered_objects = 0;  // old objects retraced for them (and for old large objects)
  std::uint64_t deferred_collections = 0;  // requested inside a DeferGC scope
  std::uint64_t last_resort_collections = 0;  // run because an allocation failed
  std::uint64_t out_of_memory_errors = 0;
  std::uint64_t mark_ns_total = 0;
  std::uint64_t mark_ns_max = 0;
  std::uint64_t pause_ns_total = 0;
  std::uint64_t pause_ns_max = 0;
  std::uint64_t live_bytes = 0;      // marked by the last full collection plus every eden one since
  std::uint64_t live_objects = 0;
  std::uint64_t marked_bytes_total = 0;  // newly marked, over all collections (for mark rate)
  std::uint64_t bytes_allocated = 0;     // published by threads' slow paths
  std::uint64_t bytes_swept = 0;         // freed by sweeps finished so far
  std::uint64_t objects_swept = 0;
  std::uint64_t trigger_bytes = 0;       // current collection threshold
  std::uint64_t weak_cleared = 0;
  std::uint64_t finalizers_queued = 0;
  std::uint64_t finalizers_run = 0;
  std::uint64_t roots = 0;
  std::uint64_t weak_handles = 0;
  std::uint64_t attached_threads = 0;
  std::uint64_t verifications = 0;
  // The embedder API (README, "Embedding handoff in a runtime").
  std::uint64_t ephemeron_entries = 0;     // entries looked at when their tables were traced
  std::uint64_t ephemeron_rounds = 0;      // fixpoint rounds, over all collections
  std::uint64_t ephemeron_rounds_max = 0;  // most in one collection
  std::uint64_t ephemerons_dropped = 0;    // entries dropped because their key died
  std::uint64_t external_bytes = 0;        // attached external memory now (ExternalMemory)
  std::uint64_t external_attached = 0;     // attachments, ever
  std::uint64_t external_released = 0;     // released by a sweep or a detach
  std::uint64_t checked_handles = 0;       // CheckedHandle slots in use
  std::uint64_t checked_handles_cleared = 0;  // weak ones cleared because their object died
  std::uint64_t parallel_marks = 0;         // collections that marked on the marker threads
  std::uint64_t parallel_sweep_begins = 0;  // collections that began the lazy sweep on them
  AllocatorStats allocator;
  SweeperStats sweeper;

  // The scalar counters above, each with its JSON key and text label
  // (heap.cpp); write_stats_json and write_stats_text iterate it.
  static std::span<const CounterSpec<HeapStats>> table() noexcept;

  double pause_ms_mean() const noexcept {
    return collections == 0 ? 0.0 : static_cast<double>(pause_ns_total) / 1e6 / static_cast<double>(collections);
  }
};

// Which objects a collection traces. An eden collection keeps the marks of
// objects that survived earlier collections and traces only objects
// allocated since the last one (plus old objects written through the
// barrier); a full collection clears every mark and traces everything.
enum class CollectionScope { kEden, kFull };

namespace detail {
class HeapInternals;
struct EmbedderAccess;
}

class Heap {
 public:
  explicit Heap(HeapConfig config = HeapConfig::from_environment());
  // Every remaining object's destructor runs; handles still alive are
  // orphaned. The destroying thread, if still attached (an attach without a
  // detach), is detached first. Other threads still attached are waited
  // for, up to destroy_wait_ms (HANDOFF_DESTROY_WAIT_MS), while they finish
  // and detach (collections they start meanwhile run as usual); a thread
  // still attached after that aborts the program with a message naming it.
  // No thread may attach once destruction has begun.
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  // Allocates and constructs a T (traced.h) on an attached thread. Throws
  // Error(kOutOfMemory) when the heap limit holds even after a collection,
  // Error(kMisuse) from an unattached, parked or destructing thread, and
  // whatever T's constructor throws (the cell is then simply garbage).
  // Arrays are made with make_array (make<Array<E>> does not compile).
  template <class T, class... Args>
    requires(!detail::kIsArray<T>)
  T* make(Args&&... args);
  // Same, but nullptr on out-of-memory.
  template <class T, class... Args>
    requires(!detail::kIsArray<T>)
  T* try_make(Args&&... args);
  // A T followed by `extra` bytes of trailing storage (variable-size objects).
  template <class T, class... Args>
  T* make_with_extra(std::size_t extra, Args&&... args);
  // An array of `length` value-initialised elements.
  template <class E>
  Array<E>* make_array(std::size_t length) {
    return make_with_extra<Array<E>>(checked_extra(length, sizeof(E)), length);
  }

  // Runs a collection now: full by default, so everything unreachable is
  // reclaimed; kEden collects only objects allocated since the last
  // collection (a full one when the heap is not generational). Returns
  // false when it was deferred (a DeferGC or ForbidGC scope is open on some
  // thread; it runs when the last one closes, as the policy decides).
  // Aborts when called inside a ForbidGC scope on this thread. Passes on an
  // exception a trace() threw (the collection was abandoned and the next one
  // is full) or the first one a finalizer threw (see the top of this file).
  bool collect(CollectionScope scope = CollectionScope::kFull);
  // A poll for threads that run long without allocating. A thread that
  // neither polls nor parks holds up every collection; after stall_warn_ms
  // (HANDOFF_STALL_WARN_MS) the collection names it on stderr.
  void safepoint() {
    if (stop_requested_.load(std::memory_order_acquire)) [[unlikely]] safepoint_slow();
  }
  // Runs queued finalizers on this thread (collect() does it on the
  // collecting thread once the world resumes). Not re-entrant per thread.
  // All of them run even if some throw; then the first exception propagates.
  std::size_t run_finalizers();

  // Explicit attach/detach for code that cannot use ThreadScope. Attaching
  // twice or detaching an unattached thread throws Error(kMisuse).
  void attach_current_thread();
  void detach_current_thread();
  bool current_thread_attached() const noexcept { return find_current() != nullptr; }

  // True when `object` is the start of a live object of this heap. Exact
  // for objects in blocks no thread is allocating from (and, through the
  // handles, in the calling thread's own); for a cell in another thread's
  // current block only its header is checked.
  bool is_heap_object(const void* object) const noexcept;
  // Start of the live object containing `p` (an interior pointer), or nullptr.
  void* find_object(const void* p) const noexcept;
  // Runs the verifier now (a full collection with verification).
  void verify();

  // Extra roots held outside stacks and handles (a language runtime's
  // globals, a C library's data segments): every collection's root phase
  // calls scan(visitor, context), world stopped, on any one of the marker
  // threads (the collecting thread or a helper; with parallel marking, two
  // scanners may run at the same time on different threads, so a scanner
  // must not rely on thread-local state). It reports roots with visitor.trace_raw / trace_conservative and must
  // not touch the heap otherwise (no allocation, no handles, no locks a
  // stopped thread may hold). Scanners cannot be removed.
  using RootScanner = void (*)(Visitor& visitor, void* context);
  void add_root_scanner(RootScanner scan, void* context);

  // What a post-mark hook sees: the marks of the collection in progress.
  class MarkPhase {
   public:
    // `object` is the start of a live object (of the collection's view).
    virtual bool is_marked(const void* object) const = 0;
    // Mark as a root would, tracing everything newly reachable before returning.
    virtual void mark(const void* object) = 0;
    virtual void mark_conservative(const void* begin, const void* end) = 0;

   protected:
    ~MarkPhase() = default;
  };
  // A runtime's own weak and finalization semantics: called once per
  // collection after marking, before weak references are cleared and
  // finalizable objects are queued (world stopped, collecting thread; not in
  // the immortal torture mode). Same rules as a root scanner.
  using PostMarkHook = void (*)(MarkPhase& phase, void* context);
  void add_post_mark_hook(PostMarkHook hook, void* context);

#if defined(HANDOFF_TEST_HOOKS)
  // Negative controls (test builds only): each switch turns one safety
  // mechanism off so a test can show the failure it prevents.
  struct TestHooks {
    bool scan_stacks = true;      // off: locals no longer keep objects alive
    bool drop_one_mark = false;   // on: unmark one reachable object after marking
    bool drop_remembered = false; // on: eden collections ignore the barrier's cards
    bool skip_ephemerons = false; // on: marking ignores ephemeron tables (the verifier must object)
  };
  void set_test_hooks(const TestHooks& hooks) noexcept;
#endif

  HeapStats stats() const;
  void write_stats_json(std::ostream& out) const;
  void write_stats_text(std::ostream& out) const;
  const HeapConfig& config() const noexcept { return config_; }
  Allocator& allocator() noexcept { return allocator_; }

 private:
  friend class ThreadScope;
  friend class ParkedScope;
  friend class DeferGC;
  friend class ForbidGC;
  friend class detail::HandleBase;
  friend class detail::HeapInternals;
  friend struct detail::EmbedderAccess;  // ephemeron.h, external_memory.h, checked_handle.h
  using MutatorThread = detail::MutatorThread;

  MutatorThread* find_current() const noexcept {
    auto& records = detail::tls_records;
    if (records.cached_heap == this) [[likely]] return records.cached;
    return find_current_slow();
  }
  MutatorThread* find_current_slow() const noexcept;
  MutatorThread& current_or_throw(const char* what);
  // Unlinks `self` from this OS thread's records (detach).
  static void forget_on_this_thread(MutatorThread* self) noexcept;

  // The allocation fast path: one TLS compare, one countdown, the
  // allocator's inline fast path, one header store.
  HANDOFF_ALWAYS_INLINE void* allocate_cell(std::size_t size, bool throw_on_oom) {
    MutatorThread* self = find_current();
    if (self == nullptr) [[unlikely]] self = &current_or_throw("allocation");
#if !defined(NDEBUG)
    // Debug builds: a destructor that allocates gets the clear message.
    if (detail::tls_records.in_destructor != 0) [[unlikely]] current_or_throw("allocation");
#endif
    if ((self->countdown -= static_cast<std::int64_t>(size)) >= 0) [[likely]] {
      if (void* cell = self->allocator.try_allocate(size)) [[likely]] return cell;
    }
    return allocate_slow(*self, size, throw_on_oom);
  }
  HANDOFF_SLOW_PATH void* allocate_slow(MutatorThread& self, std::size_t size, bool throw_on_oom);
  void* refuse(MutatorThread& self, std::size_t size, AllocationFailure failure, bool throw_on_oom);
  HANDOFF_SLOW_PATH void safepoint_slow();
  // ParkedScope's parts (the protocol: collector/src/safepoint.cpp).
  // park_begin finds the record and counts the scope; the slow paths run
  // when the CAS on the state word finds the collector's flag set.
  HANDOFF_ALWAYS_INLINE MutatorThread& park_begin() {
    MutatorThread* self = find_current();
    if (self == nullptr || detail::tls_records.in_destructor != 0) [[unlikely]] self = &current_or_throw("ParkedScope");
    ++self->park_depth;
    return *self;
  }
  HANDOFF_SLOW_PATH void park_slow(MutatorThread& self);
  HANDOFF_SLOW_PATH void unpark_slow(MutatorThread& self);
  static std::size_t checked_extra(std::size_t count, std::size_t element);
  // Rejects sums that wrap; the allocator refuses what is merely too large
  // (kSizeOverflow), so this inline check needs no page size.
  static std::size_t checked_size(std::size_t base, std::size_t extra) {
    if (extra > std::numeric_limits<std::size_t>::max() / 2 - base) [[unlikely]] throw_size_overflow(base, extra);
    return base + extra;
  }
  [[noreturn]] static void throw_size_overflow(std::size_t base, std::size_t extra);

  template <class T, class... Args>
  T* construct(void* cell, std::size_t size, Args&&... args);
  // Gives up this thread's current block if it contains `p`, so that the
  // block's live bits record the cells handed out from it.
  void record_own_cells(const void* p) noexcept;
  void register_finalizable(void* object);

  const HeapConfig config_;
  Allocator allocator_;
  std::atomic<bool> stop_requested_{false};
  std::unique_ptr<detail::HeapInternals> internals_;
};

// Attaches the calling thread for the scope's lifetime. On exit the
// thread's blocks go back to their directories and its epoch record is
// released; nothing it allocated is lost.
class ThreadScope {
 public:
  explicit ThreadScope(Heap& heap) : heap_(heap) { heap_.attach_current_thread(); }
  ~ThreadScope() { heap_.detach_current_thread(); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  Heap& heap_;
};

// For code about to block (a lock, a queue, I/O): a collection proceeds
// without this thread. Inside, the thread must not touch the heap; leaving
// waits for a collection in progress to end. Scopes nest; the outermost one
// parks. With no collection pending, entering and leaving are one CAS each
// on the thread's own state word, with no lock.
class ParkedScope {
 public:
  // Inline on purpose: capture_stack must run in the caller's own frame.
  // The caller keeps running (blocked) while parked, so a pointer it holds
  // in a callee-saved register must be read from the registers as they are
  // here; an out-of-line constructor would save them in its own frame,
  // which is dead (and overwritten) once it returns.
  HANDOFF_ALWAYS_INLINE explicit ParkedScope(Heap& heap) : self_(heap.park_begin()) {
    if (self_.park_depth != 1) return;
    self_.parked_countdown = self_.countdown;
    self_.countdown = -1;  // an allocation inside the scope takes the slow path, which refuses it
    // The snapshot is complete before the CAS publishes "parked" (release):
    // a collector that reads "parked" reads this snapshot.
    detail::capture_stack(self_.stack);
    std::uint32_t expected = detail::ThreadState::kRunning;
    if (!self_.state.compare_exchange_strong(expected, detail::ThreadState::kParked, std::memory_order_release,
                                             std::memory_order_relaxed)) [[unlikely]] {
      self_.heap.park_slow(self_);
    }
  }
  HANDOFF_ALWAYS_INLINE ~ParkedScope() {
    if (--self_.park_depth != 0) return;
    // Acquire: what a collection did meanwhile (it flushed this thread's
    // allocator) happens before the thread touches the heap again.
    std::uint32_t expected = detail::ThreadState::kParked;
    if (!self_.state.compare_exchange_strong(expected, detail::ThreadState::kRunning, std::memory_order_acquire,
                                             std::memory_order_relaxed)) [[unlikely]] {
      self_.heap.unpark_slow(self_);
    }
    self_.countdown = self_.parked_countdown;
  }
  ParkedScope(const ParkedScope&) = delete;
  ParkedScope& operator=(const ParkedScope&) = delete;

 private:
  detail::MutatorThread& self_;
};

// No collection starts on any thread while a DeferGC is open; one that was
// requested meanwhile runs when the last scope closes. Allocation at the
// heap limit inside the scope reports out-of-memory instead of collecting
// (the message says no collection could run). A scope belongs to the
// thread that opened it: destroying it on another thread aborts with a
// message naming the misuse. The collection a closing scope runs leaves
// due finalizers queued (a destructor cannot pass on their exceptions):
// the next collect(), run_finalizers() or triggered collection runs them.
// If a trace() throws in that collection the program aborts, naming it.
class DeferGC {
 public:
  explicit DeferGC(Heap& heap);
  ~DeferGC();
  DeferGC(const DeferGC&) = delete;
  DeferGC& operator=(const DeferGC&) = delete;

 private:
  Heap& heap_;
  detail::MutatorThread* self_;  // the opening thread's record (nullptr: unattached then)
  const void* opener_;           // the opening thread (its tls_records)
};

// A DeferGC that also asserts: a collection attempted from this thread
// inside the scope aborts with a message naming the scope.
class ForbidGC {
 public:
  explicit ForbidGC(Heap& heap);
  ~ForbidGC();
  ForbidGC(const ForbidGC&) = delete;
  ForbidGC& operator=(const ForbidGC&) = delete;

 private:
  Heap& heap_;
  detail::MutatorThread* self_;
  const void* opener_;
};

// ---- inline templates -------------------------------------------------

namespace detail {
extern const TypeInfo kUnconstructedType;  // a cell whose constructor threw
}

template <class T, class... Args>
T* Heap::construct(void* cell, std::size_t size, Args&&... args) {
  const TypeInfo* type = type_info_of<T>();
  if constexpr (!std::is_trivially_destructible_v<T>) {
    note_destructible_cell(cell, size);
  }
  auto& header = detail::header_of(detail::object_of(cell));
  header.store(reinterpret_cast<std::uintptr_t>(type) | detail::kInConstruction, std::memory_order_relaxed);
  T* object;
  try {
    object = new (detail::object_of(cell)) T(std::forward<Args>(args)...);
  } catch (...) {
    header.store(reinterpret_cast<std::uintptr_t>(&detail::kUnconstructedType), std::memory_order_relaxed);
    throw;
  }
  header.store(reinterpret_cast<std::uintptr_t>(type), std::memory_order_relaxed);
  if constexpr (Finalizable<T>) register_finalizable(object);
  return object;
}

template <class T, class... Args>
  requires(!detail::kIsArray<T>)
T* Heap::make(Args&&... args) {
  constexpr std::size_t size = sizeof(T) + detail::kCellHeaderSize;
  return construct<T>(allocate_cell(size, true), size, std::forward<Args>(args)...);
}

template <class T, class... Args>
  requires(!detail::kIsArray<T>)
T* Heap::try_make(Args&&... args) {
  constexpr std::size_t size = sizeof(T) + detail::kCellHeaderSize;
  void* cell = allocate_cell(size, false);
  return cell == nullptr ? nullptr : construct<T>(cell, size, std::forward<Args>(args)...);
}

template <class T, class... Args>
T* Heap::make_with_extra(std::size_t extra, Args&&... args) {
  const std::size_t size = checked_size(sizeof(T) + detail::kCellHeaderSize, extra);
  return construct<T>(allocate_cell(size, true), size, std::forward<Args>(args)...);
}

}  // namespace handoff
