// Helpers shared by the stress programs that drive the whole collector
// (handoff::Heap) rather than the allocator alone: the heap configuration a
// stress run starts from, the progress line, checksums and a seeded RNG.
#pragma once

#include "stress_cli.h"

#include <handoff/heap.h>

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <random>

namespace handoff::stress {

// The --help section listing the collector's tunables (ProgramInfo::extra_help).
void print_heap_tunables(std::ostream& out);

// HANDOFF_* variables first, so a user can still steer a run; a bad value is
// a usage error (exit 2), not a violation.
HeapConfig heap_config_from_environment(const ProgramInfo& info);

// One progress line from heap.stats(): operations, collections, blocks
// retired and freed by the concurrent sweeper, limbo size, RSS.
void print_heap_progress(const ProgramInfo& info, const Heap& heap, std::uint64_t ops, double elapsed);

// splitmix64: checksums and per-object patterns derived from an id.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A per-thread generator: the same (seed, thread) replays the same choices.
inline std::mt19937_64 thread_rng(std::uint64_t seed, unsigned thread) {
  return std::mt19937_64(mix(seed) ^ mix(0x5EED0000ull + thread));
}

// Waits `ms` milliseconds parked, so a collection never waits for this thread.
void parked_sleep_ms(Heap& heap, unsigned ms);

}  // namespace handoff::stress
