// stress_handoff: the cached-block race.
//
// Mutator threads allocate and drop small objects in a few size classes and
// flush often, so their blocks keep going back to the directories. Each
// object fills its whole cell with a pattern of its tag and size, so a cell
// handed out twice, or a block re-claimed into the wrong size class (cells
// of another size), corrupts a payload that is checked, in every build. A
// reclaimer thread runs eager sweeps, so blocks keep becoming EMPTY; the
// concurrent sweeper retires every EMPTY block at once (retention 0) and
// frees retired blocks as soon as their grace period ends, and a second
// freer calls release_empty_blocks beside it (papers/handoff.md "Who may
// free": safety must not depend on who frees). Refills therefore
// keep scanning registries whose blocks are being unlinked and freed under
// them: exactly the window in which Bun's allocator dereferenced a freed
// block. Chaos delays at the protocol's points widen the window.
//
// With the grace period on (default), nothing may go wrong: survivors keep
// their patterns and every block comes back. With --no-grace (test builds
// only: the negative control), retired blocks are freed at once, and a
// refill reading a candidate block after it was freed is reported: by
// AddressSanitizer as a use-after-poison on the pooled block (the pool
// poisons what it holds), or by the directory's block validity check when
// the block was recycled into another size class first.
//
// Two modes (--mode, default both: half the time each):
//   allocator  the race above, on Allocator + ConcurrentSweeper directly;
//   heap       the same race through handoff::Heap: attached threads,
//              frequent collections, the heap's own concurrent sweeper
//              (stress_handoff_heap.cpp).
#include "heap_stress.h"

#include <handoff/allocator.h>
#include <handoff/block_pool.h>
#include <handoff/chaos.h>
#include <handoff/concurrent_sweeper.h>
#include <handoff/epoch.h>
#include <handoff/limbo.h>
#include <handoff/platform.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using handoff::stress::Options;

constexpr std::uint32_t kAlive = 0xA11CEu;
constexpr std::uint32_t kDead = 0xDEADu;

handoff::stress::ProgramInfo info{
    "stress_handoff",
    "The cached-block race: refills scan registries while the concurrent sweeper retires\n"
    "and frees blocks. Extra flags:\n"
    "  --mode M         allocator (Allocator + ConcurrentSweeper), heap (handoff::Heap with\n"
    "                   frequent collections) or both (default; half the time each)\n"
    "  --no-grace       free retired blocks at once (negative control; test builds only):\n"
    "                   the run is then expected to crash with a sanitizer or validity report\n"
    "  --chaos N        chaos delays per million protocol points (test builds; default 20000)",
    {4, 10.0, 1, false},
    {2, 2.0, 1, true},
    handoff::stress::print_heap_tunables,
};

struct Extra {
  bool no_grace = false;
  std::uint32_t chaos_per_million = 20000;
};

// Pulls this program's own flags out of argv before the shared parser runs.
Extra take_extra_flags(int& argc, char** argv) {
  Extra extra;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-grace") == 0) {
      extra.no_grace = true;
    } else if (std::strcmp(argv[i], "--chaos") == 0 && i + 1 < argc) {
      extra.chaos_per_million = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return extra;
}

// The first 16 bytes of a cell; the rest of its `size` bytes hold payload
// words derived from the tag.
struct Object {
  std::atomic<std::uint32_t> state;
  std::uint32_t size;
  std::uint64_t tag;
};

std::uint64_t payload_word(std::uint64_t tag, std::size_t i) noexcept {
  std::uint64_t x = tag * 0x9E3779B97F4A7C15ull + i;
  x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

Object* make_object(void* cell, std::size_t size, std::uint64_t tag) {
  auto* o = new (cell) Object{{kAlive}, static_cast<std::uint32_t>(size), tag};
  auto* words = reinterpret_cast<std::uint64_t*>(o + 1);
  for (std::size_t i = 0; i < (size - sizeof(Object)) / 8; ++i) words[i] = payload_word(tag, i);
  return o;
}

// Whole-cell check, in every build: a wrong-class cell overlaps its
// neighbour, and a cell handed out twice is overwritten by its second owner.
bool intact(const Object* o, unsigned thread, std::size_t expected_size) {
  if (o->state.load(std::memory_order_relaxed) != kAlive || (o->tag >> 48) != thread) return false;
  if (o->size != expected_size) return false;
  const auto* words = reinterpret_cast<const std::uint64_t*>(o + 1);
  for (std::size_t i = 0; i < (o->size - sizeof(Object)) / 8; ++i) {
    if (words[i] != payload_word(o->tag, i)) return false;
  }
  return true;
}

bool is_alive(void* cell) { return static_cast<Object*>(cell)->state.load(std::memory_order_acquire) != kDead; }

struct Shared {
  explicit Shared(const Options& o) : options(o) {}
  Options options;
  handoff::Allocator heap;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> sweeps{0};
  std::atomic<std::uint64_t> releases{0};  // by the second freer
};

void mutator(Shared& shared, unsigned thread) {
  handoff::ThreadAllocator local(shared.heap);
  std::mt19937_64 rng(shared.options.seed * 7919 + thread);
  constexpr std::size_t kKeep = 64;
  std::vector<std::pair<Object*, std::size_t>> survivors;
  std::uint64_t serial = 0;
  std::uint64_t ops = 0;
  std::size_t phase_size = 16;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    // Three size classes keep many blocks per directory in play; objects
    // fill their cell, so the size is the class's. Phases of mostly one
    // class leave the other classes' last blocks (R1) untouched for a while,
    // long enough for them to be swept, retired, freed and recycled into
    // another class before the thread comes back for them (R2, R3).
    if (ops % 2048 == 0) phase_size = std::size_t{16} << (rng() % 3);
    const std::size_t size = phase_size;
    Object* o = make_object(local.allocate(size), size, (std::uint64_t{thread} << 48) | serial++);
    if (survivors.size() < kKeep) {
      survivors.emplace_back(o, size);
    } else {
      auto& slot = survivors[rng() % kKeep];
      if (!intact(slot.first, thread, slot.second)) {
        handoff::stress::fail(info, shared.options,
                              "a survivor was overwritten: a live cell was reused or handed out with the wrong size");
      }
      slot.first->state.store(kDead, std::memory_order_release);
      slot = {o, size};
    }
    if (++ops % 512 == 0) {
      local.flush();  // hand blocks back: refills then scan the registries
      shared.ops.fetch_add(512, std::memory_order_relaxed);
    }
  }
  for (auto& [s, size] : survivors) {
    if (!intact(s, thread, size)) handoff::stress::fail(info, shared.options, "a survivor was overwritten at exit");
    s->state.store(kDead, std::memory_order_release);
  }
}

// The second freer: retires and frees empty blocks from its own thread while
// the concurrent sweeper does the same.
void second_freer(Shared& shared) {
  while (!shared.stop.load(std::memory_order_relaxed)) {
    shared.heap.release_empty_blocks();
    shared.releases.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void reclaimer(Shared& shared, handoff::ConcurrentSweeper& sweeper) {
  auto predicate = [](void* cell) { return is_alive(cell); };
  while (!shared.stop.load(std::memory_order_relaxed)) {
    shared.heap.sweep(predicate);
    sweeper.wake();
    shared.sweeps.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void progress(Shared& shared, const handoff::ConcurrentSweeper& sweeper, double elapsed) {
  const handoff::SweeperStats s = sweeper.stats();
  std::printf("[%6.1fs] ops %" PRIu64 " sweeps %" PRIu64 " retired %" PRIu64 " freed %" PRIu64
              " limbo %zu epoch %" PRIu64 " releases %" PRIu64 " rss %.1f MiB\n",
              elapsed, shared.ops.load(), shared.sweeps.load(), s.blocks_retired, s.blocks_freed, s.limbo_blocks,
              shared.heap.epochs().epoch(), shared.releases.load(), handoff::platform::process_rss_bytes() / 1048576.0);
  std::fflush(stdout);
}

int run_allocator_race(const Options& options, const Extra& extra);

}  // namespace

namespace handoff::stress {
int run_heap_race(const ProgramInfo& info, const Options& options, bool no_grace);
}

int main(int argc, char** argv) {
  const std::string mode = handoff::stress::take_flag_value(argc, argv, "--mode", info).value_or("both");
  const Extra extra = take_extra_flags(argc, argv);
  const Options options = handoff::stress::parse_options(argc, argv, info);
  if (mode != "allocator" && mode != "heap" && mode != "both") {
    std::fprintf(stderr, "stress_handoff: --mode expects allocator, heap or both, got '%s'\n", mode.c_str());
    return 2;
  }
#if defined(HANDOFF_TEST_HOOKS)
  handoff::chaos::configure({options.seed, extra.chaos_per_million, 100});
#else
  if (extra.no_grace) {
    std::fprintf(stderr, "stress_handoff: --no-grace needs a build with HANDOFF_TEST_HOOKS=ON "
                         "(the debug, asan or tsan preset)\n");
    return 2;
  }
#endif
  // Each part reproduces on its own: its reproduce command names its mode.
  auto part = [&](const char* which, double seconds) {
    Options o = options;
    o.seconds = seconds;
    o.extra_flags = std::string("--mode ") + which + (extra.no_grace ? " --no-grace" : "") + " --chaos " +
                    std::to_string(extra.chaos_per_million);
    return o;
  };
  if (mode == "allocator") return run_allocator_race(part("allocator", options.seconds), extra);
  if (mode == "heap") return handoff::stress::run_heap_race(info, part("heap", options.seconds), extra.no_grace);
  if (const int status = run_allocator_race(part("allocator", options.seconds / 2), extra); status != 0) return status;
  return handoff::stress::run_heap_race(info, part("heap", options.seconds / 2), extra.no_grace);
}

namespace {

int run_allocator_race(const Options& options, const Extra& extra) {
  Shared shared(options);
#if defined(HANDOFF_TEST_HOOKS)
  shared.heap.epochs().set_grace_period_enabled(!extra.no_grace);
#endif
  handoff::SweeperConfig config = handoff::SweeperConfig::from_environment();
  config.enabled = 1;
  config.keep_empty_blocks = 0;  // retire every empty block: the race needs them
  config.keep_last_cycle = 0;
  config.back_off = 0;  // sweep beside the mutators however many there are: the race needs that too
  config.min_cpu_percent = 0;  // and however busy the machine (sanitizer builds are slow)
  config.idle_wait_ms = 1;
  std::printf("stress_handoff --mode allocator: %u threads, %.1f s, seed %" PRIu64 "%s\n", options.threads, options.seconds,
              options.seed, extra.no_grace ? ", GRACE PERIOD OFF (negative control)" : "");
  {
    handoff::ConcurrentSweeper sweeper(shared.heap, config);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(shared), t);
    std::thread reclaim(reclaimer, std::ref(shared), std::ref(sweeper));
    std::thread freer(second_freer, std::ref(shared));
    const double elapsed = handoff::stress::run_with_progress(
        options.seconds, [&](double t) { progress(shared, sweeper, t); });
    shared.stop.store(true);
    for (auto& t : threads) t.join();
    reclaim.join();
    freer.join();
    progress(shared, sweeper, elapsed);
  }
  // Everything is dead and every thread has stopped: all blocks must come back.
  shared.heap.sweep([](void* cell) { return is_alive(cell); });
  shared.heap.release_empty_blocks();
  const handoff::PoolStats pool = shared.heap.pool().stats();
  if (pool.in_use_bytes != 0 || shared.heap.limbo().size() != 0) {
    handoff::stress::fail(info, options,
                          std::to_string(pool.in_use_bytes / handoff::kBlockSize) + " blocks in use and " +
                              std::to_string(shared.heap.limbo().size()) + " in limbo after everything died");
  }
  std::printf("stress_handoff --mode allocator: no violation\n");
  return 0;
}

}  // namespace
