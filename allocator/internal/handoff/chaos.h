// Chaos points: named places in the handoff protocol where a test build can
// inject seeded delays or yields, to widen the race windows the protocol
// closes. Compiled only with HANDOFF_TEST_HOOKS (the debug, asan and tsan
// presets); in other builds HANDOFF_CHAOS_POINT is nothing at all.
//
//   after_pin                 A1 done, before the registry scan
//   after_read_candidate      A2: a block pointer was read from the registry
//   before_claim_cas          A4: the state word was read, the CAS not yet tried
//   between_unlink_and_retire S2: slot cleared, block not yet in limbo
//   before_free               S4: grace period judged over, block not yet freed
//   sweeper_walk              S1: the concurrent sweeper read a block pointer
//                             from the registry, not yet its state word
//   lookup                    find_cell: the block was judged readable, its
//                             header not yet read
#pragma once

#include <handoff/config.h>

#include <cstddef>
#include <cstdint>

namespace handoff {

enum class ChaosPoint : unsigned {
  kAfterPin,
  kAfterReadCandidate,
  kBeforeClaimCas,
  kBetweenUnlinkAndRetire,
  kBeforeFree,
  kSweeperWalk,
  kLookup,
  kCount,
};

const char* chaos_point_name(ChaosPoint point) noexcept;

#if defined(HANDOFF_TEST_HOOKS)
namespace chaos {

struct Config {
  std::uint64_t seed = 1;
  std::uint32_t per_million = 0;    // chance of a delay at each hit; 0 = off
  std::uint32_t max_delay_us = 50;  // delays are a yield or a sleep up to this
};

// Process-wide; takes effect for hits after the call.
void configure(const Config& config) noexcept;
void hit(ChaosPoint point) noexcept;
// Delays injected at `point` so far (for tests that check the points fire).
std::uint64_t delays(ChaosPoint point) noexcept;

}  // namespace chaos
#define HANDOFF_CHAOS_POINT(point) ::handoff::chaos::hit(::handoff::ChaosPoint::point)
#else
#define HANDOFF_CHAOS_POINT(point) ((void)0)
#endif

}  // namespace handoff
