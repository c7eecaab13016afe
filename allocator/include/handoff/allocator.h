// The allocator on its own: size-class directories over a block pool, a
// large-object space, per-thread local allocators, and sweeping driven by a
// caller-supplied liveness predicate (until the collector drives it with
// mark bits). This is the public entry point of handoff::allocator.
//
//   handoff::Allocator heap;                       // tunables from HANDOFF_*
//   handoff::ThreadAllocator thread(heap);         // per allocating thread
//   void* p = thread.allocate(64);
//   thread.flush();                                // hand blocks back
//   heap.sweep([&](void* cell) { return keep(cell); });
//
// Thread safety: Allocator's methods may be called from any thread, beside
// allocating threads, except begin_lazy_sweep (see there). A ThreadAllocator
// is used by one thread only.
#pragma once

#include <handoff/allocate_inlines.h>
#include <handoff/config.h>  // refuses headers of another build (test hooks, sanitizers)
#include <handoff/error.h>
#include <handoff/liveness.h>
#include <handoff/reclaim_stats.h>
#include <handoff/space_stats.h>
#include <handoff/thread_allocator.h>
#include <handoff/tunables.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <vector>

namespace handoff {

// Internal (allocator/internal/handoff/epoch.h, limbo.h, block_pool.h,
// large_object_space.h, directory.h): the Allocator owns them out of line,
// so the installed headers never name their members.
class BlockPool;
class Directory;
class EpochDomain;
class LargeObjectSpace;
class Limbo;

struct SweepTotals {
  std::size_t blocks_swept = 0;
  std::size_t live_cells = 0;
  std::size_t freed_cells = 0;
  std::size_t freed_bytes = 0;
  std::size_t live_large = 0;
  std::size_t freed_large = 0;
};

struct AllocatorStats {
  PoolStats pool;
  std::array<DirectoryStats, kNumSizeClasses> classes{};
  LargeObjectStats large;
  LocalAllocatorCounters counters;  // from flushed and detached threads
  EpochStats epoch;
  LimboStats limbo;
  std::size_t attached_threads = 0;
  std::size_t heap_limit_bytes = 0;
  std::size_t budget_charged_bytes = 0;
  std::size_t process_rss_bytes = 0;
};

class Allocator {
 public:
  explicit Allocator(AllocatorConfig config = AllocatorConfig::from_environment());
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Eager sweep of every block no thread owns, and of large objects, by
  // `policy` (liveness.h): a predicate, called once per allocated cell
  // (false frees it), or the collector's marks.
  SweepTotals sweep(const SweepPolicy& policy);
  // Lazy sweep: blocks are swept by the local allocator that claims them.
  // Preconditions of begin: no refill is in flight on this heap (the
  // collector calls it with the world stopped) and the previous lazy cycle
  // was finished. A predicate `policy` must stay valid while any refill may still
  // claim an UNSWEPT block, that is until finish_lazy_sweep() returns and
  // every allocating thread has passed a refill since; a stateless callable
  // is the safe choice. finish may run beside allocating threads. Large
  // objects are swept eagerly at begin; finish reports their counts. A second begin before finish throws
  // Error(kMisuse) and changes nothing.
  void begin_lazy_sweep(const SweepPolicy& policy);
  // The same, with the walk over the directories' registries split into
  // parts of kLazySweepPartSlots slots that `parallel_for` may run on
  // several threads at once (the collector runs them on its marker
  // threads, world stopped). parallel_for(n, run) must call run(i) once for
  // each i in [0, n) and return when every call has returned. Each part
  // pins the epoch on the thread that runs it (Directory::mark_unswept), so
  // any thread may run one. Large objects are judged on the calling thread.
  using ParallelFor = std::function<void(std::size_t tasks, const std::function<void(std::size_t task)>& run)>;
  static constexpr std::size_t kLazySweepPartSlots = 256;  // blocks per part: 4 MiB of heap, tens of microseconds
  void begin_lazy_sweep(const SweepPolicy& policy, const ParallelFor& parallel_for);
  SweepTotals finish_lazy_sweep();
  // Retires every EMPTY block and frees those whose grace period is over;
  // blocks a pinned thread might still read stay in limbo until a later
  // reclaim_retired(). Safe beside allocating threads. Returns blocks freed.
  std::size_t release_empty_blocks();
  // S2 for all directories: retires EMPTY blocks beyond `keep` per
  // directory (or beyond its last_cycle_blocks(), if larger, when
  // `keep_last_cycle`) while the limbo holds fewer than `limbo_cap`.
  std::size_t retire_empty_blocks(std::size_t keep, std::size_t limbo_cap, bool keep_last_cycle = false);
  // S3 + S4: advances the epoch if it can and frees blocks past their grace
  // period. Called by the concurrent sweeper, or by a stopped world.
  std::size_t reclaim_retired();
  // Returns idle pool memory to the OS (all cached blocks when `force`).
  std::size_t purge(bool force = false);

  // Lookups, from any thread, beside allocating threads, the concurrent
  // sweeper and any freer (DESIGN.md invariant 7: a lookup never reads a
  // block that may be freed concurrently). find_cell maps an interior
  // pointer to the start of the allocated cell containing it, or nullptr:
  // for free cells, headers, memory outside this heap, blocks retired or
  // pooled, and cells a thread allocated from its current block since its
  // last flush (not yet recorded). It pins the epoch (registering the
  // calling thread for the lookup) and reads a block's header only once
  // lookup_block() said it may.
  void* find_cell(const void* p) const noexcept;
  // The block containing `p` when its header may be read: the caller holds
  // a pin (ScopedPin on epochs()) for as long as it reads the block. Null
  // when `p` is not in a block of this pool, or the block is pooled or
  // retired. Why the pin suffices: a lookup is not a registry reader, since
  // a retired block stays "handed out" in the chunk map until it is freed.
  // What protects it is the state load below, seq_cst after the pin, against
  // the seq_cst retire CAS: if the retire came first, the load sees RETIRED
  // (or a later format, release-ordered after the header it wrote) and the
  // header is not read; if the load came first, the retire's tag is at
  // least the lookup's pin epoch, so the block cannot be freed before the
  // lookup unpins (two advances past the tag need the lookup to move on).
  const MarkedBlock* lookup_block(const void* p) const noexcept;
  bool is_live_cell(const void* p) const noexcept { return p != nullptr && find_cell(p) == p; }
  bool contains(const void* p) const noexcept;
  // Every block and large object this allocator has handed out lies inside.
  AddressBounds bounds() const;
  // Usable size of the allocated cell starting at `cell`; throws
  // Error(kNotAHeapPointer) for anything else.
  std::size_t cell_size(const void* cell) const;

  AllocatorStats stats() const;
  void write_stats_json(std::ostream& out) const;
  void write_stats_text(std::ostream& out) const;

  const AllocatorConfig& config() const noexcept { return config_; }
  // Registry slots of every directory together: what begin_lazy_sweep
  // walks (a caller sizes its parallel_for by it). A moment's value when
  // threads allocate meanwhile.
  std::size_t block_slots() const noexcept;
  // ThreadAllocators attached now (the sweeper's back-off reads it each pass).
  std::size_t attached_threads() const;
  // Internal types (include <handoff/block_pool.h>,
  // <handoff/large_object_space.h>: the project's own code only).
  BlockPool& pool() noexcept { return *pool_; }
  const BlockPool& pool() const noexcept { return *pool_; }
  HeapBudget& budget() noexcept { return budget_; }
  // Internal types (include <handoff/epoch.h>, <handoff/limbo.h>: the
  // project's own code only). Non-const from a const Allocator: lookups pin.
  EpochDomain& epochs() const noexcept { return *epochs_; }
  const Limbo& limbo() const noexcept { return *limbo_; }
  LargeObjectSpace& large_objects() noexcept { return *large_; }

 private:
  friend class ThreadAllocator;
  // directory_of (internal directory.h) reaches a size class's directory:
  // the allocator's own sources and tests only. Embedders read a
  // directory's counters in stats().classes.
  friend struct DirectoryAccess;
  std::uint32_t attach(ThreadAllocator* thread);
  void detach(ThreadAllocator* thread);
  void publish_counters(const LocalAllocatorCounters& delta);

  const AllocatorConfig config_;
  HeapBudget budget_;
  // Out of line so that this header needs only their names. Never on the
  // allocation fast path; a refill reaches the domain and the pool through
  // its Directory's references, so no refill loads these pointers either.
  const std::unique_ptr<BlockPool> pool_;
  const std::unique_ptr<EpochDomain> epochs_;
  const std::unique_ptr<Limbo> limbo_;
  std::array<std::unique_ptr<Directory>, kNumSizeClasses> directories_;
  const std::unique_ptr<LargeObjectSpace> large_;  // large requests are slow paths
  mutable std::mutex threads_mutex_;
  std::vector<ThreadAllocator*> threads_;
  LocalAllocatorCounters published_;
  std::uint32_t next_owner_ = 1;
  SweepCounts lazy_large_;  // large objects judged at begin_lazy_sweep
  std::atomic<bool> lazy_sweep_open_{false};
};

}  // namespace handoff
