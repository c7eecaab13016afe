#include "marker_policy.h"

namespace handoff::detail {

std::uint64_t expected_mark_bytes(bool eden, std::uint64_t live_bytes, std::uint64_t last_eden_marked) noexcept {
  return eden ? last_eden_marked : live_bytes;
}

std::size_t mark_workers(std::size_t max_workers, std::uint64_t expected_bytes, std::uint64_t min_bytes) noexcept {
  return expected_bytes >= min_bytes ? max_workers : 1;
}

std::size_t sweep_begin_workers(std::size_t max_workers, std::uint64_t block_slots, std::uint64_t min_blocks) noexcept {
  return block_slots >= min_blocks ? max_workers : 1;
}

}  // namespace handoff::detail
