#include "cache_budget.h"

#include <algorithm>
#include <limits>

namespace handoff::detail {

std::uint64_t cache_budget_trigger(std::uint64_t trigger, std::uint64_t marked_bytes, std::uint64_t allocated_since,
                                   std::uint64_t cache_bytes) noexcept {
  if (cache_bytes == 0 || allocated_since == 0) return trigger;
  // marked / allocated < permille / 1000, without overflow for any budget.
  const bool almost_nothing_alive = marked_bytes < allocated_since / 1000 * kCacheBudgetSurvivalPermille;
  return almost_nothing_alive ? std::max<std::uint64_t>(std::min(trigger, cache_bytes), 1) : trigger;
}

std::uint64_t cache_budget_for_threads(std::uint64_t per_thread_bytes, std::size_t allocating_threads,
                                       std::size_t cpus) noexcept {
  const std::uint64_t threads = std::max<std::uint64_t>(std::min(allocating_threads, cpus), 1);
  if (per_thread_bytes > std::numeric_limits<std::uint64_t>::max() / threads) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  return per_thread_bytes * threads;
}

}  // namespace handoff::detail
