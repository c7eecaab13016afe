#include <handoff/check.h>
#include <handoff/free_list.h>
#include <handoff/marked_block.h>

#include <bit>

namespace handoff {

std::size_t FreeList::build(const MarkedBlock& block) noexcept { return build(block, block.live_cell_count()); }

std::size_t FreeList::build(const MarkedBlock& block, std::size_t live_cells) noexcept {
  HANDOFF_ASSERT(live_cells == block.live_cell_count());
  cell_size_ = block.cell_size();
  head_ = nullptr;
  if (live_cells == 0) {
    // Bump mode over the whole payload.
    cursor_ = block.begin();
    limit_ = block.end();
    HANDOFF_POISON(cursor_, static_cast<std::size_t>(limit_ - cursor_));
    return block.cell_count();
  }
  // Linked mode: walk the free cell starts (start mask minus live bits) and
  // coalesce adjacent ones into intervals, linked in address order.
  FreeInterval* first = nullptr;
  FreeInterval* last = nullptr;
  char* run_begin = nullptr;
  char* run_end = nullptr;
  std::size_t free_cells = 0;
  auto close_run = [&] {
    if (run_begin == nullptr) return;
    HANDOFF_POISON(run_begin, static_cast<std::size_t>(run_end - run_begin));
    HANDOFF_UNPOISON(run_begin, sizeof(FreeInterval));
    auto* interval = reinterpret_cast<FreeInterval*>(run_begin);
    interval->next.store(nullptr, std::memory_order_relaxed);
    interval->end = run_end;
    if (last != nullptr) {
      last->next.store(interval, std::memory_order_relaxed);
    } else {
      first = interval;
    }
    last = interval;
  };
  char* const base = reinterpret_cast<char*>(const_cast<MarkedBlock*>(&block));
  const auto& starts = block.cell_start_mask();
  for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
    std::uint64_t free_bits = starts[w] & ~block.live_bits().word(w);
    while (free_bits != 0) {
      char* cell = base + (w * 64 + static_cast<std::size_t>(std::countr_zero(free_bits))) * kAtomSize;
      free_bits &= free_bits - 1;
      ++free_cells;
      if (cell == run_end) {
        run_end += cell_size_;
      } else {
        close_run();
        run_begin = cell;
        run_end = cell + cell_size_;
      }
    }
  }
  close_run();
  // The first interval becomes the bump interval.
  cursor_ = limit_ = nullptr;
  head_ = first;
  if (first != nullptr) {
    head_ = first->next.load(std::memory_order_relaxed);
    limit_ = first->end;
    cursor_ = reinterpret_cast<char*>(first);
  }
  return free_cells;
}

std::size_t FreeList::remaining_cells() const noexcept {
  std::size_t n = 0;
  for_each_remaining_cell([&](void*) { ++n; });
  return n;
}

}  // namespace handoff
