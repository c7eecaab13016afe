// A marked block: 16 KiB, 16 KiB-aligned, holding cells of one size class.
//
//   +--------------------------- 16 KiB ----------------------------+
//   | header (320 B)                  | cell | cell | ... | cell |pad |
//   | line 0: state word, scalars,    |                               |
//   |   cards; lines 1-4: mark and    |                               |
//   |   live words, interleaved       |                               |
//   +---------------------------------------------------------------+
//
// block_of(p) is p & ~(16 KiB - 1). The header holds:
//   - the state word (atomic, 64 bits): | generation:32 | owner:24 | state:8 |
//     Every transition out of a shared state is one CAS on this word
//     (DESIGN.md invariant 2). All-zero bytes, what a purged block reads as,
//     decode as kPooled with generation 0, which no claim accepts.
//   - the mark bitmap and its version (the collector's; stale versions read
//     as unmarked, so no bitmap is cleared block by block),
//   - the cards (collector's write barrier, block_range_map.h): one byte
//     per KiB of the block, set by stores of references into it, read and
//     cleared by the collector with the world stopped,
//   - the live bitmap: bit set at a cell's first atom <=> the cell is
//     allocated. Its words are interleaved with the mark bitmap's
//     (atom_bitmap.h) so that the marker's live-bit check and the mark it
//     sets touch one line. It is exact whenever the block is not kOwned.
//     While a local allocator owns the block, cells it hands out are not
//     recorded one by one (the fast path writes nothing); give-up records
//     them all at once.
//
// Invariants (checked by check_invariants() in debug builds):
//   live bits are a subset of the cell-start atoms of the block's class
//   not owned:  live_cells + free_cells == cell_count
//   owned:      live_at_claim + allocated + on_free_list == cell_count
//               (the local allocator checks this one; it holds the list)
#pragma once

#include <handoff/atom_bitmap.h>
#include <handoff/block_range_map.h>
#include <handoff/sanitizer.h>
#include <handoff/size_classes.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iosfwd>

namespace handoff {

class Directory;

enum class BlockState : std::uint8_t {
  kPooled = 0,  // in the pool or never handed out; no claim accepts it
  kOwned,       // a local allocator's current block; only the owner touches it
  kFull,        // given up with no free cell; waits for a sweep
  kUnswept,     // marked for lazy sweeping; the claimer sweeps it
  kSweeping,    // a sweeper holds it exclusively
  kSwept,       // has free cells and live cells; claimable
  kEmpty,       // has no live cell; claimable or releasable
  kRetired,     // leaving its directory for the pool
};

const char* block_state_name(BlockState state) noexcept;

struct BlockStateWord {
  std::uint32_t generation = 0;
  std::uint32_t owner = 0;  // 24 bits; meaningful for kOwned and kSweeping
  BlockState state = BlockState::kPooled;

  static constexpr std::uint32_t kOwnerMask = (1u << 24) - 1;

  constexpr std::uint64_t pack() const noexcept {
    return (std::uint64_t{generation} << 32) | (std::uint64_t{owner & kOwnerMask} << 8) |
           static_cast<std::uint64_t>(state);
  }
  static constexpr BlockStateWord unpack(std::uint64_t word) noexcept {
    return {static_cast<std::uint32_t>(word >> 32), static_cast<std::uint32_t>(word >> 8) & kOwnerMask,
            static_cast<BlockState>(word & 0xff)};
  }
  constexpr BlockStateWord with(BlockState s, std::uint32_t who = 0) const noexcept {
    return {generation, who, s};
  }
  friend constexpr bool operator==(const BlockStateWord&, const BlockStateWord&) = default;
};

struct SweepCounts {
  std::size_t live_cells = 0;
  std::size_t freed_cells = 0;
  std::size_t blocks = 0;  // blocks swept (set by directories, not by MarkedBlock::sweep)
};

class MarkedBlock {
 public:
  static MarkedBlock* of(const void* p) noexcept {
    return reinterpret_cast<MarkedBlock*>(reinterpret_cast<std::uintptr_t>(p) & ~(kBlockSize - 1));
  }

  // Formats `memory` (a block from the pool) as a block of class `cls` in
  // state `initial`. The live bitmap starts empty: every cell is free.
  static MarkedBlock* format(void* memory, Directory* directory, std::size_t cls,
                             BlockStateWord initial) noexcept;

  // Geometry.
  std::size_t cell_size() const noexcept { return cell_size_; }
  std::size_t cell_count() const noexcept { return cell_count_; }
  std::size_t size_class() const noexcept { return size_class_; }
  Directory* directory() const noexcept { return directory_; }
  char* begin() const noexcept { return const_cast<char*>(reinterpret_cast<const char*>(this)) + kBlockHeaderSize; }
  char* end() const noexcept { return begin() + cell_count_ * cell_size_; }
  char* cell_at(std::size_t index) const noexcept { return begin() + index * cell_size_; }
  static std::size_t atom_of(const void* p) noexcept {
    return (reinterpret_cast<std::uintptr_t>(p) & (kBlockSize - 1)) / kAtomSize;
  }

  // The two header lines that checking and marking the cell at `p` read:
  // the first (the mark version) and the bitmap line holding `p`'s mark
  // and live words. Address arithmetic only, nothing is read: the marker
  // prefetches them for a target it will mark a few visits later, before
  // it knows that `p` is in a block at all (a prefetch never faults).
  static std::uintptr_t version_line_of(const void* p) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) & ~(kBlockSize - 1);
  }
  static std::uintptr_t bitmap_line_of(const void* p) noexcept {
    constexpr std::size_t kAtomsPerLine = 64 / (2 * sizeof(std::uint64_t)) * 64;  // four word pairs
    return version_line_of(p) + kBitmapOffset + atom_of(p) / kAtomsPerLine * 64;
  }
  static constexpr std::size_t kBitmapOffset = 64;  // checked against bitmaps_ in marked_block.cpp

  // Start of the cell containing `p`, or nullptr when `p` is in the header
  // or the unused tail. Does not look at liveness.
  void* cell_start(const void* p) const noexcept;
  // True when `p` is the start of an allocated cell (block not kOwned).
  bool is_live_cell(const void* p) const noexcept;

  // State word. Loads are acquire; try_transition is the one CAS.
  BlockStateWord state(std::memory_order order = std::memory_order_acquire) const noexcept {
    return BlockStateWord::unpack(state_.load(order));
  }
  // `order` is seq_cst only for the retire (EMPTY -> RETIRED), which
  // lookups order against their pin (Allocator::find_cell).
  bool try_transition(BlockStateWord expected, BlockStateWord desired,
                      std::memory_order order = std::memory_order_acq_rel) noexcept {
    std::uint64_t e = expected.pack();
    return state_.compare_exchange_strong(e, desired.pack(), order, std::memory_order_acquire);
  }
  // R2/R3 of the protocol: the state word of a block that may have been
  // freed since the caller last owned it. Block memory is type-stable (the
  // pool never unmaps it), so the access is safe; it is exempt from ASan,
  // which poisons pooled blocks to catch every *other* stale access.
  static BlockStateWord state_possibly_freed(const MarkedBlock* block) noexcept;
  static bool try_transition_possibly_freed(MarkedBlock* block, BlockStateWord expected,
                                            BlockStateWord desired) noexcept;

  // For the holder of an exclusive state (kOwned by the caller, kSweeping by
  // the caller, or a stopped world): publish the next state.
  void publish(BlockStateWord next) noexcept { state_.store(next.pack(), std::memory_order_release); }

  // Views of the interleaved bitmaps (atom_bitmap.h: live word w and mark
  // word w share a cache line).
  AtomBitmap live_bits() noexcept { return bitmaps_.live(); }
  const AtomBitmap live_bits() const noexcept { return bitmaps_.live(); }
  AtomBitmap mark_bits() noexcept { return bitmaps_.marks(); }
  const AtomBitmap mark_bits() const noexcept { return bitmaps_.marks(); }
  std::uint32_t mark_version() const noexcept { return mark_version_.load(std::memory_order_acquire); }
  void set_mark_version(std::uint32_t v) noexcept { mark_version_.store(v, std::memory_order_release); }
  const AtomBitmap::Words& cell_start_mask() const noexcept { return detail::kCellStartMasks[size_class_]; }

  std::size_t live_cell_count() const noexcept { return live_bits().count(); }
  std::size_t free_cell_count() const noexcept { return cell_count_ - live_cell_count(); }
  // Marks every cell allocated (a full block given up by its owner).
  void set_all_live() noexcept { live_bits().assign(cell_start_mask()); }

  // Calls f(cell) for every allocated cell, in address order.
  template <class F>
  void for_each_live_cell(F&& f) const;

  // The one sweep loop, a live-bitmap word at a time; `policy` says which
  // cells die (liveness.h: SweepByMarks, SweepByPredicate). Per block it
  // gives a judge, `auto judge = policy.judge(*this)`, with
  //   std::uint64_t keep(std::size_t w, std::uint64_t live, std::uint64_t& kept)
  //       the subset of word w's allocated cells `live` that stay allocated.
  //       A judge that may throw clears dead cells' bits in `kept` (which
  //       starts as `live`) as it goes: a throw then frees exactly the cells
  //       judged dead before it, and every other cell stays allocated.
  //   bool visits_dead() const, void on_dead(void* cell)
  //       whether to call on_dead(cell) for each freed cell before it is
  //       freed (destructors).
  //   bool frees_all() const (optional)
  //       true when the judge knows, without looking, that no cell of the
  //       block stays and none needs on_dead: the sweep then only counts and
  //       clears the live words (sweep_all_dead), the common case of a heap
  //       whose objects die young, where a block's marks are stale.
  // A freed cell's live bit is cleared and, under ASan, the cell poisoned.
  // Precondition: the caller holds the block exclusively (kSweeping or
  // kOwned by the caller, or the world is stopped).
  template <class Policy>
  SweepCounts sweep(const Policy& policy);
  // Marks the cell starting at `cell` for `version`, first clearing marks
  // left by an older version (the bitmap is cleared only by the first mark
  // of a cycle, never in a pass over all blocks). Returns false when it was
  // already marked. kExclusive: one marker, world stopped. kShared: parallel
  // markers, world stopped; the bit is set by one fetch_or, so exactly one
  // of the markers that race on a cell gets true, and the first mark of a
  // cycle clears the bitmap under the kMarkVersionClearing claim
  // (begin_marking_shared).
  static constexpr std::uint32_t kMarkVersionClearing = UINT32_MAX;  // never a collection's version
  template <AccessMode M = AccessMode::kExclusive>
  bool mark(const void* cell, std::uint32_t version) noexcept {
    if constexpr (M == AccessMode::kShared) {
      if (mark_version_.load(std::memory_order_acquire) != version) [[unlikely]] begin_marking_shared(version);
    } else if (mark_version_.load(std::memory_order_relaxed) != version) {
      mark_bits().clear_all();
      mark_version_.store(version, std::memory_order_relaxed);
    }
    return mark_bits().test_and_set<M>(atom_of(cell));
  }
  // Set by the owner when it allocates a cell whose type has a destructor;
  // a sweep skips the per-dead-cell callback for blocks without one, so it
  // never touches the memory of dead cells that need no destructor.
  void note_destructible() noexcept {
    if (!has_destructible_.load(std::memory_order_relaxed)) has_destructible_.store(true, std::memory_order_relaxed);
  }
  bool has_destructible() const noexcept { return has_destructible_.load(std::memory_order_relaxed); }
  // Acquire: a parallel marker that sees the new version also sees the
  // bitmap cleared for it (begin_marking_shared publishes it with release).
  bool is_marked(const void* cell, std::uint32_t version) const noexcept {
    return mark_version_.load(std::memory_order_acquire) == version && mark_bits().get(atom_of(cell));
  }
  // True when a sweep by marks of `version` would free nothing: every
  // allocated cell is marked (block not kOwned).
  // Stops at the first allocated, unmarked cell: a block with stale marks
  // (every bit reads as unmarked) and any live cell, the common case when
  // beginning a sweep of a heap whose objects die young, costs one word,
  // where counting its live bits cost all of them (Directory::mark_unswept
  // runs this on every FULL and SWEPT block inside the pause).
  bool all_live_marked(std::uint32_t version) const noexcept {
    const bool stale = mark_version_.load(std::memory_order_relaxed) != version;
    for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
      const std::uint64_t marked = stale ? 0 : mark_bits().word(w);
      if ((live_bits().word(w) & ~marked) != 0) return false;
    }
    return true;
  }

  // Cards (block_range_map.h). The barrier writes them through card_of();
  // these are the collector's accessors, world stopped.
  bool card_dirty(std::size_t card) const noexcept { return cards_[card].load(std::memory_order_relaxed) != 0; }
  bool any_card_dirty() const noexcept;
  void clear_cards() noexcept;

  // Registry slot in the directory (written once, under the directory lock).
  std::size_t registry_index() const noexcept { return registry_index_; }
  void set_registry_index(std::size_t i) noexcept { registry_index_ = i; }

  // Internal-corruption checks; aborts with the block dumped.
  void check_invariants() const;
  void dump(std::ostream& out) const;

 private:
  // kShared mark's first mark of a cycle: one marker claims the block by
  // CAS to kMarkVersionClearing, clears the bitmap and publishes `version`
  // (release); the others wait for it (acquire), so no bit set for
  // `version` is lost to the clear.
  void begin_marking_shared(std::uint32_t version) noexcept;
  // The cell whose first atom is the lowest set bit of `bits`, word w.
  void* cell_of_bit(std::size_t w, std::uint64_t bits) const noexcept {
    return const_cast<char*>(reinterpret_cast<const char*>(this)) +
           (w * 64 + static_cast<std::size_t>(std::countr_zero(bits))) * kAtomSize;
  }
  // Under ASan, poisons the cells of word w whose bits are set in `dead`.
  void poison_cells(std::size_t w, std::uint64_t dead) noexcept;
  // sweep() of a block whose judge frees every cell and visits none: a
  // count and a store per live word, no judge call. Inline in the header so
  // that each policy's sweep keeps it in the same function.
  SweepCounts sweep_all_dead() noexcept;

  std::atomic<std::uint64_t> state_;
  Directory* directory_;
  std::size_t registry_index_;
  std::uint32_t cell_size_;
  std::uint32_t cell_count_;
  std::uint16_t size_class_;
  std::atomic<std::uint32_t> mark_version_;
  std::atomic<bool> has_destructible_;
  alignas(16) std::atomic<std::uint8_t> cards_[detail::kCardsPerBlock];
  BlockBitmaps bitmaps_;  // marks and live bits, interleaved (atom_bitmap.h); lines 1-4 of the header
};

static_assert(sizeof(MarkedBlock) <= kBlockHeaderSize, "block header must fit kBlockHeaderSize");
static_assert(detail::kCardTableOffset + detail::kCardsPerBlock <= 64, "the cards share the header's first line");

// ---- inline templates -------------------------------------------------

template <class F>
void MarkedBlock::for_each_live_cell(F&& f) const {
  char* const base = const_cast<char*>(reinterpret_cast<const char*>(this));
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    std::uint64_t bits = live_bits().word(w);
    while (bits != 0) {
      const std::size_t atom = w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
      bits &= bits - 1;
      f(static_cast<void*>(base + atom * kAtomSize));
    }
  }
}

inline SweepCounts MarkedBlock::sweep_all_dead() noexcept {
  std::size_t freed_cells = 0;
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    const std::uint64_t live = live_bits().word(w);
    freed_cells += bit_count(live);
    poison_cells(w, live);
    live_bits().set_word(w, 0);
  }
  SweepCounts counts;
  counts.freed_cells = freed_cells;
  return counts;
}

template <class Policy>
SweepCounts MarkedBlock::sweep(const Policy& policy) {
  auto judge = policy.judge(*this);
  if constexpr (requires { judge.frees_all(); }) {
    if (judge.frees_all()) return sweep_all_dead();
  }
  const bool visit = judge.visits_dead();
  std::size_t live_cells = 0;  // locals, not the result's fields: they stay in registers
  std::size_t freed_cells = 0;
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    const std::uint64_t live = live_bits().word(w);
    std::uint64_t kept = live;
    if constexpr (noexcept(judge.keep(w, live, kept))) {
      kept = judge.keep(w, live, kept);
    } else {
      try {
        kept = judge.keep(w, live, kept);
      } catch (...) {
        poison_cells(w, live & ~kept);  // the cells judged dead so far are freed; the rest stay allocated
        live_bits().set_word(w, kept);
        throw;
      }
    }
    const std::uint64_t dead = live & ~kept;
    live_cells += bit_count(kept);
    freed_cells += bit_count(dead);
    if (dead == 0) continue;
    if (visit) {
      for (std::uint64_t d = dead; d != 0; d &= d - 1) judge.on_dead(cell_of_bit(w, d));
    }
    poison_cells(w, dead);
    live_bits().set_word(w, kept);
  }
  SweepCounts counts;
  counts.live_cells = live_cells;
  counts.freed_cells = freed_cells;
  return counts;
}

inline void MarkedBlock::poison_cells([[maybe_unused]] std::size_t w, [[maybe_unused]] std::uint64_t dead) noexcept {
#if defined(HANDOFF_ASAN)
  for (; dead != 0; dead &= dead - 1) HANDOFF_POISON(cell_of_bit(w, dead), cell_size_);
#endif
}

}  // namespace handoff
