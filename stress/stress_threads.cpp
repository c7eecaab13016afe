// stress_threads: thread lifetimes. Threads attach (ThreadScope), allocate in
// many size classes (so each caches a current block per class), keep a few
// objects alive through a shared rooted table, and exit while collections
// run. --threads of them live at once; 10,000 lifetimes make a full run
// (--lifetimes N; the smoke run does 600). --seconds caps the run.
//
// Checks (DESIGN.md invariant 5, thread exit hands back):
//   - after every thread has exited and a collection ran, no block of any
//     size class is OWNED, no mutator or ThreadAllocator is still attached,
//     and the epoch domain has no participant left;
//   - the objects exiting threads left in the shared table are intact;
//   - memory stays bounded: blocks in use and RSS after the run stay within
//     a fixed allowance over what the first batch of threads needed.
#include "heap_stress.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using handoff::Member;
using handoff::Root;
using handoff::stress::mix;
using handoff::stress::Options;

const handoff::stress::ProgramInfo kInfo{
    "stress_threads",
    "Threads attach, allocate, cache blocks and exit (10,000 lifetimes at full size);\n"
    "every cached block must come back and memory must stay bounded. Extra flag:\n"
    "  --lifetimes N   thread lifetimes to run (default 10000; --smoke 600)",
    {4, 60.0, 1, false},
    {2, 2.5, 1, true},
    handoff::stress::print_heap_tunables,
};

struct Obj {
  Member<Obj> next;
  std::uint64_t id;
  std::uint64_t check;
  explicit Obj(std::uint64_t i) : id(i), check(mix(i)) {}
  void trace(handoff::Visitor& v) const { v.trace(next); }
  bool intact() const { return check == mix(id); }
};

constexpr std::size_t kTable = 1024;

struct Shared {
  Shared(const Options& o, handoff::HeapConfig config) : options(o), heap(config) {}
  Options options;
  handoff::Heap heap;
  Root<handoff::Array<Member<Obj>>> table;  // written under table_mutex
  std::mutex table_mutex;
  std::atomic<std::uint64_t> lifetimes{0};
  std::atomic<std::uint64_t> ops{0};

  [[noreturn]] void violation(const std::string& what) { handoff::stress::fail(kInfo, options, what); }
};

handoff::HeapConfig threads_config() {
  handoff::HeapConfig config = handoff::stress::heap_config_from_environment(kInfo);
  config.initial_heap_bytes = 1 << 20;
  config.allocation_slice_bytes = 16 << 10;
  return config;
}

// One thread's life: attach, allocate in many classes, leave a few objects
// behind, maybe collect, detach (ThreadScope's destructor hands back).
void lifetime(Shared& shared, std::uint64_t life) {
  handoff::ThreadScope attached(shared.heap);
  std::mt19937_64 rng(mix(shared.options.seed) ^ mix(life));
  Obj* kept = nullptr;
  const unsigned count = 50 + static_cast<unsigned>(rng() % 200);
  for (unsigned i = 0; i < count; ++i) {
    const std::size_t extra = (rng() % 4 == 0) ? rng() % 4000 : rng() % 256;  // many size classes
    Obj* o = shared.heap.make_with_extra<Obj>(extra, (life << 20) | i);
    if (rng() % 16 == 0) {
      o->next = kept;
      kept = o;
    }
  }
  if (kept != nullptr) {
    std::lock_guard lock(shared.table_mutex);  // no safepoint inside: Member stores only
    (*shared.table)[rng() % kTable] = kept;
  }
  if (rng() % 64 == 0) shared.heap.collect();
  shared.ops.fetch_add(count, std::memory_order_relaxed);
  shared.lifetimes.fetch_add(1, std::memory_order_relaxed);
}

void check_table(Shared& shared, const char* when) {
  for (const Member<Obj>& head : *shared.table) {
    for (const Obj* o = head.get(); o != nullptr; o = o->next.get()) {
      if (!o->intact()) shared.violation(std::string(when) + ": object " + std::to_string(o->id) + " left by an exited thread changed");
    }
  }
}

std::size_t owned_blocks(const handoff::HeapStats& stats) {
  std::size_t owned = 0;
  for (const auto& c : stats.allocator.classes) owned += c.blocks_in_state[static_cast<std::size_t>(handoff::BlockState::kOwned)];
  return owned;
}

struct Footprint {
  std::size_t in_use_bytes;
  std::size_t rss_bytes;
};

Footprint footprint(Shared& shared) {
  {
    handoff::ThreadScope attached(shared.heap);
    shared.heap.collect();
  }
  const handoff::HeapStats s = shared.heap.stats();
  return {s.allocator.pool.in_use_bytes + s.allocator.large.mapped_bytes, s.allocator.process_rss_bytes};
}

// Runs `lifetimes` thread lifetimes, `parallel` at a time, until done or the
// deadline; returns how many ran.
std::uint64_t run_batches(Shared& shared, std::uint64_t first, std::uint64_t lifetimes,
                          std::chrono::steady_clock::time_point deadline) {
  std::uint64_t life = first;
  while (life < first + lifetimes && std::chrono::steady_clock::now() < deadline) {
    std::vector<std::thread> batch;
    for (unsigned t = 0; t < shared.options.threads && life < first + lifetimes; ++t) {
      batch.emplace_back(lifetime, std::ref(shared), life++);
    }
    for (auto& t : batch) t.join();
  }
  return life - first;
}

}  // namespace

int main(int argc, char** argv) {
  const auto lifetimes_flag = handoff::stress::take_flag_value(argc, argv, "--lifetimes", kInfo);
  Options options = handoff::stress::parse_options(argc, argv, kInfo);
  std::uint64_t target = options.smoke ? 600 : 10000;
  if (lifetimes_flag) {
    target = std::strtoull(lifetimes_flag->c_str(), nullptr, 10);
    if (target < 2) {
      std::fprintf(stderr, "%s: --lifetimes expects an integer >= 2\n", kInfo.name);
      return 2;
    }
    options.extra_flags = "--lifetimes " + *lifetimes_flag;
  }
  Shared shared(options, threads_config());
  {
    handoff::ThreadScope attached(shared.heap);
    shared.table = Root<handoff::Array<Member<Obj>>>(shared.heap, shared.heap.make_array<Member<Obj>>(kTable));
  }
  std::printf("%s: %u threads at once, %" PRIu64 " lifetimes, at most %.1f s, seed %" PRIu64 "\n", kInfo.name,
              options.threads, target, options.seconds, options.seed);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(options.seconds));
  // A first tenth sets the baseline footprint; the rest must stay near it.
  const std::uint64_t warmup = std::max<std::uint64_t>(target / 10, options.threads);
  std::uint64_t ran = run_batches(shared, 0, warmup, deadline);
  const Footprint base = footprint(shared);
  std::thread driver([&] { ran += run_batches(shared, ran, target - ran, deadline); });
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  double next = 1.0;
  while (shared.lifetimes.load() < target && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (elapsed() >= next) {
      handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), elapsed());
      std::printf("          lifetimes %" PRIu64 " of %" PRIu64 "\n", shared.lifetimes.load(), target);
      next += 1.0;
    }
  }
  driver.join();
  const Footprint end = footprint(shared);
  {
    handoff::ThreadScope attached(shared.heap);
    check_table(shared, "after every thread exited");
    shared.heap.verify();
  }
  handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), elapsed());
  const handoff::HeapStats stats = shared.heap.stats();
  if (owned_blocks(stats) != 0) shared.violation(std::to_string(owned_blocks(stats)) + " blocks still OWNED after every thread exited and a collection ran");
  if (stats.attached_threads != 0 || stats.allocator.attached_threads != 0) {
    shared.violation(std::to_string(stats.attached_threads) + " mutator threads and " + std::to_string(stats.allocator.attached_threads) + " ThreadAllocators still attached after every thread exited");
  }
  // The concurrent sweeper and directory walks pin briefly through a
  // temporary participant; a thread's leaked registration stays forever.
  std::size_t participants = stats.allocator.epoch.participants;
  for (int i = 0; i < 200 && participants != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    participants = shared.heap.stats().allocator.epoch.participants;
  }
  if (participants != 0) shared.violation(std::to_string(participants) + " epoch participants still registered 2 s after every thread exited");
  // Bounded: live data is at most the shared table's chains, the same at the
  // end as after the warm-up, so blocks in use may not grow past a fixed
  // allowance; RSS (which also counts thread stacks the C library caches)
  // gets a larger one.
  constexpr std::size_t kMiB = 1 << 20;
  if (end.in_use_bytes > base.in_use_bytes * 2 + 16 * kMiB) {
    shared.violation("heap memory grew from " + std::to_string(base.in_use_bytes / kMiB) + " MiB to " + std::to_string(end.in_use_bytes / kMiB) + " MiB over the thread lifetimes");
  }
  if (end.rss_bytes > base.rss_bytes * 2 + 128 * kMiB) {
    shared.violation("RSS grew from " + std::to_string(base.rss_bytes / kMiB) + " MiB to " + std::to_string(end.rss_bytes / kMiB) + " MiB over the thread lifetimes");
  }
  const std::uint64_t done = shared.lifetimes.load();
  std::printf("%s: no violation (%" PRIu64 " thread lifetimes%s; heap %zu -> %zu KiB, rss %zu -> %zu MiB)\n",
              kInfo.name, done, done < target ? ", stopped early by --seconds" : "", base.in_use_bytes >> 10,
              end.in_use_bytes >> 10, base.rss_bytes / kMiB, end.rss_bytes / kMiB);
  return 0;
}
