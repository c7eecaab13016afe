#include <handoff/chaos.h>

#include <array>
#include <atomic>
#include <chrono>
#include <thread>

namespace handoff {

const char* chaos_point_name(ChaosPoint point) noexcept {
  switch (point) {
    case ChaosPoint::kAfterPin: return "after_pin";
    case ChaosPoint::kAfterReadCandidate: return "after_read_candidate";
    case ChaosPoint::kBeforeClaimCas: return "before_claim_cas";
    case ChaosPoint::kBetweenUnlinkAndRetire: return "between_unlink_and_retire";
    case ChaosPoint::kBeforeFree: return "before_free";
    case ChaosPoint::kSweeperWalk: return "sweeper_walk";
    case ChaosPoint::kLookup: return "lookup";
    case ChaosPoint::kCount: break;
  }
  return "invalid";
}

#if defined(HANDOFF_TEST_HOOKS)
namespace chaos {
namespace {

std::atomic<std::uint64_t> g_seed{1};
std::atomic<std::uint32_t> g_per_million{0};
std::atomic<std::uint32_t> g_max_delay_us{50};
std::atomic<std::uint64_t> g_generation{0};  // bumps on configure: threads reseed
std::atomic<std::uint64_t> g_thread_counter{0};
std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ChaosPoint::kCount)> g_delays{};

struct ThreadRng {
  std::uint64_t state = 0;
  std::uint64_t generation = ~std::uint64_t{0};
  std::uint64_t index = g_thread_counter.fetch_add(1, std::memory_order_relaxed);

  std::uint64_t next() noexcept {  // splitmix64
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

thread_local ThreadRng t_rng;

}  // namespace

void configure(const Config& config) noexcept {
  g_seed.store(config.seed, std::memory_order_relaxed);
  g_per_million.store(config.per_million, std::memory_order_relaxed);
  g_max_delay_us.store(config.max_delay_us == 0 ? 1 : config.max_delay_us, std::memory_order_relaxed);
  g_generation.fetch_add(1, std::memory_order_release);
}

void hit(ChaosPoint point) noexcept {
  const std::uint32_t chance = g_per_million.load(std::memory_order_relaxed);
  if (chance == 0) return;
  ThreadRng& rng = t_rng;
  const std::uint64_t generation = g_generation.load(std::memory_order_acquire);
  if (rng.generation != generation) {  // seeded per (seed, thread): replayable choices
    rng.generation = generation;
    rng.state = g_seed.load(std::memory_order_relaxed) * 0x100000001B3ull + rng.index;
  }
  const std::uint64_t roll = rng.next();
  if (roll % 1000000 >= chance) return;
  g_delays[static_cast<std::size_t>(point)].fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t us = (roll >> 20) % g_max_delay_us.load(std::memory_order_relaxed);
  if ((roll >> 40) & 1) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
}

std::uint64_t delays(ChaosPoint point) noexcept {
  return g_delays[static_cast<std::size_t>(point)].load(std::memory_order_relaxed);
}

}  // namespace chaos
#endif

}  // namespace handoff
