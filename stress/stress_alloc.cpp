// stress_alloc: the allocator alone under concurrent allocation, dropping
// and sweeping, before the collector exists.
//
// Mutator threads allocate objects of mixed sizes (about 1% large objects),
// stamp each with a pattern derived from (seed, thread, serial), keep a
// bounded set of survivors and drop the rest by flipping the object's state
// word to "dead". A reclaimer thread sweeps the heap continuously with a
// predicate that reads that state word. So blocks move between owned, full,
// swept and empty while other threads claim them.
//
// Violations detected:
//   - a survivor's pattern changed: a live cell was swept and reused;
//   - Allocator::find_cell mapped an interior pointer of a survivor to some
//     other cell;
//   - after the run, a full sweep leaves live cells != survivors (something
//     live was lost, or something dead was kept), or a pool accounting
//     identity fails, or blocks remain in use after everything died.
#include "stress_cli.h"

#include <handoff/allocator.h>
#include <handoff/block_pool.h>
#include <handoff/platform.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace {

using handoff::stress::Options;

constexpr std::uint32_t kAlive = 0xA11CEu;
constexpr std::uint32_t kDead = 0xDEADu;

const handoff::stress::ProgramInfo kInfo{
    "stress_alloc",
    "Concurrent allocation, dropping and sweeping on the allocator alone; checks that no\n"
    "live cell is ever reused, interior lookups stay exact, and nothing is lost or leaked.",
    {4, 10.0, 1, false},
    {2, 2.0, 1, true},
};

struct Object {
  std::atomic<std::uint32_t> state;
  std::uint32_t size;
  std::uint64_t tag;
  std::uint64_t* payload() { return reinterpret_cast<std::uint64_t*>(this + 1); }
  std::size_t payload_words() const { return (size - sizeof(Object)) / sizeof(std::uint64_t); }
};
static_assert(sizeof(Object) == 16);

std::uint64_t word_for(std::uint64_t tag, std::size_t i) { return tag ^ (i * 0x9E3779B97F4A7C15ull); }

void stamp(Object* o) {
  for (std::size_t i = 0; i < o->payload_words(); ++i) o->payload()[i] = word_for(o->tag, i);
}

bool intact(Object* o) {
  if (o->state.load(std::memory_order_relaxed) != kAlive) return false;
  for (std::size_t i = 0; i < o->payload_words(); ++i) {
    if (o->payload()[i] != word_for(o->tag, i)) return false;
  }
  return true;
}

std::size_t pick_size(std::mt19937_64& rng) {
  const unsigned roll = static_cast<unsigned>(rng() % 1000);
  if (roll < 700) return 16 + rng() % 113;                      // 16..128
  if (roll < 950) return 129 + rng() % 1920;                    // up to 2 KiB
  if (roll < 990) return 2049 + rng() % (handoff::kMaxSmallSize - 2048);
  return handoff::kMaxSmallSize + 1 + rng() % (64 * 1024);     // large
}

struct Shared {
  explicit Shared(const Options& o) : options(o) {}
  handoff::Allocator heap;  // tunables from HANDOFF_* variables
  Options options;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> sweeps{0};
  std::atomic<std::uint64_t> swept_cells{0};
  std::mutex survivors_mutex;
  std::vector<Object*> survivors;  // handed over by threads at exit

  void violation(const std::string& what) { handoff::stress::fail(kInfo, options, what); }
};

std::string describe(const char* what, unsigned thread, const Object* o) {
  std::ostringstream out;
  out << what << " (thread " << thread << ", object " << static_cast<const void*>(o) << ", size " << o->size
      << ", tag " << o->tag << ")";
  return out.str();
}

void check_lookup(Shared& shared, unsigned thread, Object* o, std::mt19937_64& rng) {
  const char* interior = reinterpret_cast<const char*>(o) + rng() % o->size;
  void* found = shared.heap.find_cell(interior);
  // nullptr is allowed: the cell may sit in this thread's current block.
  if (found != nullptr && found != o) shared.violation(describe("find_cell mapped an interior pointer to another cell", thread, o));
}

void mutator(Shared& shared, unsigned thread) {
  handoff::ThreadAllocator local(shared.heap);
  std::mt19937_64 rng(shared.options.seed * 1000003 + thread);
  const std::size_t cap = shared.options.smoke ? 2000 : 20000;
  std::vector<Object*> survivors;
  survivors.reserve(cap);
  std::uint64_t serial = 0;
  std::uint64_t ops = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    const std::size_t size = pick_size(rng);
    auto* o = new (local.allocate(size)) Object{{kAlive}, static_cast<std::uint32_t>(size & ~std::size_t{7}),
                                                (shared.options.seed << 40) ^ (std::uint64_t{thread} << 32) ^ serial++};
    stamp(o);
    if (survivors.size() < cap) {
      survivors.push_back(o);
    } else {
      Object*& slot = survivors[rng() % cap];
      if (!intact(slot)) shared.violation(describe("survivor corrupted before drop", thread, slot));
      slot->state.store(kDead, std::memory_order_release);
      slot = o;
    }
    if (++ops % 4096 == 0) {
      for (Object* s : survivors) {
        if (!intact(s)) shared.violation(describe("survivor corrupted", thread, s));
      }
      check_lookup(shared, thread, survivors[rng() % survivors.size()], rng);
      shared.ops.fetch_add(4096, std::memory_order_relaxed);
      if (rng() % 8 == 0) local.flush();
    }
  }
  for (Object* s : survivors) {
    if (!intact(s)) shared.violation(describe("survivor corrupted at exit", thread, s));
  }
  std::lock_guard lock(shared.survivors_mutex);
  shared.survivors.insert(shared.survivors.end(), survivors.begin(), survivors.end());
}

bool is_alive(void* cell) {
  return static_cast<Object*>(cell)->state.load(std::memory_order_acquire) != kDead;
}

void reclaimer(Shared& shared) {
  auto predicate = [](void* cell) { return is_alive(cell); };
  while (!shared.stop.load(std::memory_order_relaxed)) {
    const handoff::SweepTotals t = shared.heap.sweep(predicate);
    shared.sweeps.fetch_add(1, std::memory_order_relaxed);
    shared.swept_cells.fetch_add(t.freed_cells + t.freed_large, std::memory_order_relaxed);
    shared.heap.purge(false);
    std::this_thread::yield();
  }
}

void progress_line(Shared& shared, double elapsed) {
  const handoff::PoolStats pool = shared.heap.pool().stats();
  std::printf("[%6.1fs] ops %" PRIu64 " sweeps %" PRIu64 " freed %" PRIu64 " blocks in use %zu cached %zu purged %zu rss %.1f MiB\n",
              elapsed, shared.ops.load(), shared.sweeps.load(), shared.swept_cells.load(),
              pool.in_use_bytes / handoff::kBlockSize, pool.cached_bytes / handoff::kBlockSize,
              pool.purged_bytes / handoff::kBlockSize, handoff::platform::process_rss_bytes() / 1048576.0);
  std::fflush(stdout);
}

void final_checks(Shared& shared) {
  auto predicate = [](void* cell) { return is_alive(cell); };
  const handoff::SweepTotals kept = shared.heap.sweep(predicate);
  if (kept.live_cells + kept.live_large != shared.survivors.size()) {
    shared.violation("after a full sweep " + std::to_string(kept.live_cells + kept.live_large) +
                     " cells are live but " + std::to_string(shared.survivors.size()) + " survivors exist");
  }
  for (Object* s : shared.survivors) {
    if (!intact(s)) shared.violation(describe("survivor corrupted by the final sweep", 0, s));
    s->state.store(kDead, std::memory_order_release);
  }
  const handoff::SweepTotals dead = shared.heap.sweep(predicate);
  if (dead.live_cells + dead.live_large != 0) shared.violation("cells still live after every object died");
  shared.heap.release_empty_blocks();  // every thread has stopped: the world is quiescent
  const handoff::PoolStats pool = shared.heap.pool().stats();
  if (pool.committed_bytes != pool.in_use_bytes + pool.cached_bytes + pool.purged_bytes) {
    shared.violation("pool identity committed == in_use + cached + purged does not hold");
  }
  if (pool.in_use_bytes != 0) shared.violation(std::to_string(pool.in_use_bytes / handoff::kBlockSize) + " blocks still in use after everything died");
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = handoff::stress::parse_options(argc, argv, kInfo);
  Shared shared(options);
  std::printf("%s: %u threads, %.1f s, seed %" PRIu64 "\n", kInfo.name, options.threads, options.seconds,
              options.seed);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(shared), t);
  std::thread sweeper(reclaimer, std::ref(shared));
  const double elapsed =
      handoff::stress::run_with_progress(options.seconds, [&](double t) { progress_line(shared, t); });
  shared.stop.store(true);
  for (auto& t : threads) t.join();
  sweeper.join();
  final_checks(shared);
  progress_line(shared, elapsed);
  std::printf("%s: no violation (%zu survivors verified, every block returned)\n", kInfo.name,
              shared.survivors.size());
  return 0;
}
