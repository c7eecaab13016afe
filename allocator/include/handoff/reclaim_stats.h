// What the reclaim protocol reports in Allocator::stats(): the epoch domain's
// and the limbo's counters. Public (AllocatorStats holds them by value);
// the mechanisms they count, epoch.h and limbo.h, are internal headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace handoff {

struct EpochStats {
  std::uint64_t epoch = 0;
  std::uint64_t advances = 0;
  std::uint64_t failed_advances = 0;  // a participant pinned at an older epoch
  std::size_t participants = 0;       // registered now
};

struct LimboStats {
  std::size_t size = 0;  // blocks waiting now
  std::uint64_t retired = 0;
  std::uint64_t freed = 0;
};

}  // namespace handoff
