#include <handoff/directory.h>
#include <handoff/mark_services.h>

#include <ostream>

namespace handoff {
namespace {

// The first problem of one block, or an empty string.
std::string audit_block(const MarkedBlock& block, std::uint32_t version) {
  const BlockState state = block.state().state;
  if (state != BlockState::kFull && state != BlockState::kSwept && state != BlockState::kEmpty &&
      state != BlockState::kRetired) {
    return std::string("block in state ") + block_state_name(state) + " while the world is stopped";
  }
  block.check_invariants();
  if (block.mark_version() == version) {
    for (std::size_t w = 0; w < AtomBitmap::kWords; ++w) {
      if ((block.mark_bits().word(w) & ~block.live_bits().word(w)) != 0) return "a free cell is marked";
    }
  }
  if (block.live_cell_count() + block.free_cell_count() != block.cell_count()) {
    return "live + free cells differ from the block's capacity";
  }
  return {};
}

}  // namespace

void for_each_marked_small_cell(Allocator& heap, std::uint32_t version, const std::function<bool(void*)>& f) {
  bool more = true;
  for (std::size_t cls = 0; cls < kNumSizeClasses && more; ++cls) {
    directory_of(heap, cls).for_each_block([&](MarkedBlock& block) {
      if (!more || block.mark_version() != version) return;
      block.for_each_live_cell([&](void* cell) {
        if (more && block.is_marked(cell, version)) more = f(cell);
      });
    });
  }
}

void for_each_block_with_dirty_cards(Allocator& heap, std::size_t size_class, DirtyBlockVisit visit, void* context) {
  directory_of(heap, size_class).for_each_block([&](MarkedBlock& block) {
    if (block.any_card_dirty()) visit(context, block);
  });
}

BlockAudit audit_blocks_after_mark(Allocator& heap, std::uint32_t version) {
  BlockAudit audit;
  for (std::size_t cls = 0; cls < kNumSizeClasses && audit.problem.empty(); ++cls) {
    std::size_t live = 0;
    std::size_t capacity = 0;
    directory_of(heap, cls).for_each_block([&](const MarkedBlock& block) {
      if (!audit.problem.empty()) return;
      audit.problem = audit_block(block, version);
      if (!audit.problem.empty()) audit.block = &block;
      live += block.live_cell_count();
      capacity += block.cell_count();
    });
    if (audit.problem.empty() && live > capacity) {
      audit.problem = "a directory holds more live cells than it has room for";
    }
  }
  return audit;
}

void dump_block_holding(const void* p, std::ostream& out) { MarkedBlock::of(p)->dump(out); }

}  // namespace handoff
