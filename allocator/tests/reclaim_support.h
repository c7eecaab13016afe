// Test helpers for the reclaim protocol's internals (epoch.h, limbo.h:
// internal headers, so kept out of test_support.h, which the embedder and
// libgc tests include with the public headers only).
#pragma once

#include <handoff/block_pool.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>

#include <cstddef>

namespace handoff::test {

// Calls Limbo::reclaim until it frees something (at most 10 times).
struct ReclaimAttempts {
  std::size_t calls = 0;
  std::size_t freed = 0;
};
inline ReclaimAttempts reclaim_until_freed(Limbo& limbo, EpochDomain& epochs, BlockPool& pool) {
  ReclaimAttempts r;
  while (r.freed == 0 && r.calls < 10) {
    ++r.calls;
    r.freed = limbo.reclaim(epochs, pool);
  }
  return r;
}

}  // namespace handoff::test
