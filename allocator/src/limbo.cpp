#include <handoff/block_pool.h>
#include <handoff/chaos.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>
#include <handoff/marked_block.h>

namespace handoff {

void Limbo::push(MarkedBlock* block, std::uint64_t tag) {
  std::lock_guard lock(mutex_);
  blocks_.push_back({block, tag});
  ++retired_;
}

std::size_t Limbo::reclaim(EpochDomain& epochs, BlockPool& pool) {
  std::vector<MarkedBlock*> ready;
  {
    std::lock_guard lock(mutex_);
    if (blocks_.empty()) return 0;
    epochs.try_advance();
    // One pass: the epoch may move while we look, so each entry is judged once.
    std::size_t kept = 0;
    for (const Retired& r : blocks_) {
      if (epochs.grace_period_over(r.tag)) {
        ready.push_back(r.block);
      } else {
        blocks_[kept++] = r;
      }
    }
    blocks_.resize(kept);
    freed_ += ready.size();
  }
  for (MarkedBlock* block : ready) {
    HANDOFF_CHAOS_POINT(kBeforeFree);
    pool.release(block);  // S4: no registered thread can still read it
  }
  return ready.size();
}

void Limbo::release_all(BlockPool& pool) {
  std::lock_guard lock(mutex_);
  for (const Retired& r : blocks_) pool.release(r.block);
  freed_ += blocks_.size();
  blocks_.clear();
}

std::size_t Limbo::size() const {
  std::lock_guard lock(mutex_);
  return blocks_.size();
}

LimboStats Limbo::stats() const {
  std::lock_guard lock(mutex_);
  return {blocks_.size(), retired_, freed_};
}

}  // namespace handoff
