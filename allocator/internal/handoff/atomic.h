// The atomic type of the concurrency modules that the relaxed-memory check
// verifies (epoch.h): handoff::Atomic<T> is std::atomic<T> in every build of
// the library. The Relacy harness (allocator/tests/relacy/) defines
// HANDOFF_RELACY and includes rl_atomic.h first, which maps it to a thin
// wrapper over rl::atomic<T> taking the same std::memory_order arguments,
// so the same source is explored under the C++ memory model's weak
// behaviours.
#pragma once

#if defined(HANDOFF_RELACY)
#include "rl_atomic.h"  // from the harness's directory
#else
#include <atomic>

namespace handoff {
template <class T>
using Atomic = std::atomic<T>;
}  // namespace handoff
#endif
