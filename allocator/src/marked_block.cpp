#include <handoff/check.h>
#include <handoff/marked_block.h>

#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <thread>

namespace handoff {

const char* block_state_name(BlockState state) noexcept {
  switch (state) {
    case BlockState::kPooled: return "pooled";
    case BlockState::kOwned: return "owned";
    case BlockState::kFull: return "full";
    case BlockState::kUnswept: return "unswept";
    case BlockState::kSweeping: return "sweeping";
    case BlockState::kSwept: return "swept";
    case BlockState::kEmpty: return "empty";
    case BlockState::kRetired: return "retired";
  }
  return "invalid";
}

MarkedBlock* MarkedBlock::format(void* memory, Directory* directory, std::size_t cls,
                                 BlockStateWord initial) noexcept {
  HANDOFF_ASSERT((reinterpret_cast<std::uintptr_t>(memory) & (kBlockSize - 1)) == 0);
  HANDOFF_ASSERT(cls < kNumSizeClasses);
  HANDOFF_UNPOISON(memory, kBlockHeaderSize);
  auto* block = static_cast<MarkedBlock*>(memory);
  block->directory_ = directory;
  block->registry_index_ = 0;
  block->cell_size_ = static_cast<std::uint32_t>(class_size(cls));
  block->cell_count_ = static_cast<std::uint32_t>(cells_per_block(cls));
  block->size_class_ = static_cast<std::uint16_t>(cls);
  block->mark_version_.store(0, std::memory_order_relaxed);
  block->has_destructible_.store(false, std::memory_order_relaxed);
  block->clear_cards();
  block->mark_bits().clear_all();
  block->live_bits().clear_all();
  // Last, and release: a lookup that reads this state under its pin
  // (Allocator::find_cell) sees the header written above, never a half
  // formatted one; until then it reads the retired or pooled state.
  block->state_.store(initial.pack(), std::memory_order_release);
  return block;
}

// Racy by design: the block may be pooled (poisoned under ASan) or purged.
// The builtins act on the std::atomic's storage (same size and layout as
// the integer), so TSan still sees atomic accesses.
#if defined(HANDOFF_ASAN)
#define HANDOFF_NO_ASAN __attribute__((no_sanitize_address))
#else
#define HANDOFF_NO_ASAN
#endif

// seq_cst: a lookup's load after its pin, ordered against the retire CAS
// (Allocator::find_cell); on x86-64 the same instruction as acquire.
HANDOFF_NO_ASAN BlockStateWord MarkedBlock::state_possibly_freed(const MarkedBlock* block) noexcept {
  const auto* word = reinterpret_cast<const std::uint64_t*>(&block->state_);
  return BlockStateWord::unpack(__atomic_load_n(word, __ATOMIC_SEQ_CST));
}

HANDOFF_NO_ASAN bool MarkedBlock::try_transition_possibly_freed(MarkedBlock* block, BlockStateWord expected,
                                                                BlockStateWord desired) noexcept {
  auto* word = reinterpret_cast<std::uint64_t*>(&block->state_);
  std::uint64_t e = expected.pack();
  return __atomic_compare_exchange_n(word, &e, desired.pack(), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));
static_assert(sizeof(std::atomic<std::uint8_t>) == 1);

// Every collection asks this of every block (remembered_set.cpp), so it
// reads the cards eight at a time: relaxed atomic loads of whole words over
// the bytes the barrier stores one at a time (the table is 16-aligned and a
// whole number of words). A word is nonzero iff one of its cards is. The
// callers run with the world stopped, so no barrier store is concurrent.
bool MarkedBlock::any_card_dirty() const noexcept {
  static_assert(detail::kCardsPerBlock % sizeof(std::uint64_t) == 0 && alignof(MarkedBlock) >= 16);
  const auto* words = reinterpret_cast<const std::uint64_t*>(&cards_[0]);
  std::uint64_t any = 0;
  for (std::size_t i = 0; i < detail::kCardsPerBlock / sizeof(std::uint64_t); ++i) {
    any |= __atomic_load_n(words + i, __ATOMIC_RELAXED);
  }
  return any != 0;
}

void MarkedBlock::clear_cards() noexcept {
  // The barrier addresses the cards by offset (block_range_map.h), without
  // the class definition; this pins that offset to the member.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(offsetof(MarkedBlock, cards_) == detail::kCardTableOffset, "card table offset");
  static_assert(offsetof(MarkedBlock, bitmaps_) == kBitmapOffset, "bitmap offset (bitmap_line_of)");
#pragma GCC diagnostic pop
  for (auto& card : cards_) card.store(0, std::memory_order_relaxed);
}

void* MarkedBlock::cell_start(const void* p) const noexcept {
  const char* c = static_cast<const char*>(p);
  if (c < begin() || c >= end()) return nullptr;
  const std::size_t index = static_cast<std::size_t>(c - begin()) / cell_size_;
  return cell_at(index);
}

bool MarkedBlock::is_live_cell(const void* p) const noexcept {
  return cell_start(p) == p && live_bits().get(atom_of(p));
}

void MarkedBlock::check_invariants() const {
  const auto& mask = cell_start_mask();
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    if ((live_bits().word(w) & ~mask[w]) != 0) {
      dump(std::cerr);
      HANDOFF_CHECK(false, "live bit set on an atom that does not start a cell");
    }
  }
  const BlockState s = state(std::memory_order_relaxed).state;
  if (s == BlockState::kEmpty && live_cell_count() != 0) {
    dump(std::cerr);
    HANDOFF_CHECK(false, "empty block has live cells");
  }
  if (s == BlockState::kFull && free_cell_count() != 0) {
    dump(std::cerr);
    HANDOFF_CHECK(false, "full block has free cells");
  }
}

void MarkedBlock::dump(std::ostream& out) const {
  const BlockStateWord w = state(std::memory_order_relaxed);
  out << "block " << static_cast<const void*>(this) << ": state=" << block_state_name(w.state)
      << " generation=" << w.generation << " owner=" << w.owner << " class=" << size_class_
      << " cell_size=" << cell_size_ << " cells=" << cell_count_ << " live=" << live_cell_count()
      << " mark_version=" << mark_version() << "\n  live bits:";
  char buf[24];
  for (std::size_t i = 0; i < AtomBitmap::kWords; ++i) {
    std::snprintf(buf, sizeof buf, " %016llx", static_cast<unsigned long long>(live_bits().word(i)));
    out << buf;
  }
  out << "\n";
}

void MarkedBlock::begin_marking_shared(std::uint32_t version) noexcept {
  for (;;) {
    std::uint32_t seen = mark_version_.load(std::memory_order_acquire);
    if (seen == version) return;
    if (seen != kMarkVersionClearing &&
        mark_version_.compare_exchange_strong(seen, kMarkVersionClearing, std::memory_order_acquire)) {
      mark_bits().clear_all();
      mark_version_.store(version, std::memory_order_release);
      return;
    }
    std::this_thread::yield();  // another marker is clearing: 2 KiB of stores
  }
}

}  // namespace handoff
