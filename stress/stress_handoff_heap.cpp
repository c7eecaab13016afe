// stress_handoff --mode heap: the cached-block race through the whole
// collector.
//
// Mutator threads attach to a handoff::Heap and allocate small objects in a
// few size classes, keeping a bounded table of survivors (a heap array held
// only by a local variable, so the conservative stack scan must find it) and
// a short chain held by a Root. A small collection trigger and a collector
// thread calling collect() in a loop make collections frequent; the
// concurrent sweeper retires every empty block at once (retention 0) and
// frees retired blocks when their grace period ends. So local allocators keep
// handing back their current blocks at safepoints and claiming blocks that
// the sweeper is sweeping, retiring and freeing under them.
//
// Violations: a survivor whose id/checksum changed (a live cell was swept or
// reused); the verifier failing; a block still OWNED after every thread left;
// no block ever retired (the race never happened).
#include "heap_stress.h"

#include <handoff/epoch.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace handoff::stress {
namespace {

// An object with `extra` payload bytes after it (make_with_extra), all of
// them derived from its id, so the whole cell it asked for is checked: a
// cell of the wrong size class overlaps the next one.
struct Obj {
  Member<Obj> next;
  std::uint64_t id;
  std::uint64_t check;
  std::uint64_t extra;
  Obj(std::uint64_t i, std::size_t extra_bytes) : id(i), check(mix(i)), extra(extra_bytes) {
    auto* words = reinterpret_cast<std::uint64_t*>(this + 1);
    for (std::size_t w = 0; w < extra / 8; ++w) words[w] = mix(id + w + 1);
  }
  void trace(Visitor& v) const { v.trace(next); }
  bool intact() const {
    if (check != mix(id) || extra > 48) return false;
    const auto* words = reinterpret_cast<const std::uint64_t*>(this + 1);
    for (std::size_t w = 0; w < extra / 8; ++w) {
      if (words[w] != mix(id + w + 1)) return false;
    }
    return true;
  }
};

struct Shared {
  Shared(const ProgramInfo& i, const Options& o, HeapConfig config) : info(i), options(o), heap(config) {}
  const ProgramInfo& info;
  const Options& options;
  Heap heap;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};

  [[noreturn]] void violation(const std::string& what) { fail(info, options, "heap mode: " + what); }
};

HeapConfig race_config(const ProgramInfo& info) {
  HeapConfig config = heap_config_from_environment(info);
  config.initial_heap_bytes = 256 << 10;  // collect often
  config.growth_percent = 50;
  config.allocation_slice_bytes = 16 << 10;  // reach safepoints often
  config.sweeper.enabled = 1;
  config.sweeper.keep_empty_blocks = 0;  // retire every empty block: the race needs them
  config.sweeper.keep_last_cycle = 0;
  config.sweeper.back_off = 0;  // sweep beside the mutators however many there are: the race needs that too
  config.sweeper.min_cpu_percent = 0;  // and however busy the machine (sanitizer builds are slow)
  config.sweeper.idle_wait_ms = 1;
  return config;
}

Obj* make_obj(Heap& heap, std::mt19937_64& rng, std::uint64_t id) {
  // Three size classes keep several directories in play.
  static constexpr std::size_t kExtra[] = {0, 16, 48};
  const std::size_t extra = kExtra[rng() % 3];
  return heap.make_with_extra<Obj>(extra, id, extra);
}

void check_chain(Shared& shared, const Root<Obj>& chain, std::uint64_t first) {
  std::uint64_t expect = first;
  for (Obj* o = chain.get(); o != nullptr; o = o->next.get(), ++expect) {
    if (o->id != expect || !o->intact()) shared.violation("a rooted chain object was overwritten (id " + std::to_string(o->id) + ", expected " + std::to_string(expect) + ")");
  }
}

void mutator(Shared& shared, unsigned thread) {
  ThreadScope attached(shared.heap);
  auto rng = thread_rng(shared.options.seed, thread);
  constexpr std::size_t kKeep = 64;
  // Held only by this local: the conservative stack scan is its root.
  Array<Member<Obj>>* table = shared.heap.make_array<Member<Obj>>(kKeep);
  Root<Obj> chain;
  std::uint64_t chain_first = 0;
  std::uint64_t serial = std::uint64_t{thread} << 40;
  std::uint64_t ops = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    Obj* o = make_obj(shared.heap, rng, ++serial);
    Member<Obj>& slot = (*table)[rng() % kKeep];
    if (slot && (!slot->intact() || (slot->id >> 40) != thread)) {
      shared.violation("a survivor was overwritten: a live cell was reused (thread " + std::to_string(thread) + ")");
    }
    slot = o;
    if (++ops % 256 == 0) {
      for (const Member<Obj>& s : *table) {
        if (s && !s->intact()) shared.violation("survivor corrupted (thread " + std::to_string(thread) + ")");
      }
      check_chain(shared, chain, chain_first);
      chain_first = ++serial;
      Obj* head = make_obj(shared.heap, rng, chain_first);
      head->next = make_obj(shared.heap, rng, ++serial);
      head->next->next = make_obj(shared.heap, rng, ++serial);
      if (chain.empty()) chain = Root<Obj>(shared.heap, head); else chain.set(head);
      shared.ops.fetch_add(256, std::memory_order_relaxed);
    }
  }
  check_chain(shared, chain, chain_first);
}

void collector(Shared& shared) {
  ThreadScope attached(shared.heap);
  std::uint64_t rounds = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    if (++rounds % 16 == 0) {
      shared.heap.verify();  // aborts with a report when an invariant fails
    } else {
      shared.heap.collect();
    }
    parked_sleep_ms(shared.heap, 1);
  }
}

std::size_t owned_blocks(const HeapStats& stats) {
  std::size_t owned = 0;
  for (const auto& c : stats.allocator.classes) owned += c.blocks_in_state[static_cast<std::size_t>(BlockState::kOwned)];
  return owned;
}

}  // namespace

int run_heap_race(const ProgramInfo& info, const Options& options, bool no_grace) {
  const double seconds = options.seconds;
  Shared shared(info, options, race_config(info));
#if defined(HANDOFF_TEST_HOOKS)
  shared.heap.allocator().epochs().set_grace_period_enabled(!no_grace);
#else
  (void)no_grace;
#endif
  std::printf("%s --mode heap: %u threads, %.1f s, seed %" PRIu64 "\n", info.name, options.threads, seconds,
              options.seed);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(shared), t);
  std::thread collecting(collector, std::ref(shared));
  const double elapsed = run_with_progress(
      seconds, [&](double t) { print_heap_progress(info, shared.heap, shared.ops.load(), t); });
  shared.stop.store(true);
  for (auto& t : threads) t.join();
  collecting.join();
  {
    ThreadScope attached(shared.heap);
    shared.heap.collect();
    shared.heap.verify();
  }
  print_heap_progress(info, shared.heap, shared.ops.load(), elapsed);
  const HeapStats stats = shared.heap.stats();
  if (owned_blocks(stats) != 0) shared.violation(std::to_string(owned_blocks(stats)) + " blocks still OWNED after every thread detached");
  if (stats.attached_threads != 0) shared.violation(std::to_string(stats.attached_threads) + " threads still attached");
  if (stats.collections == 0) shared.violation("no collection ran: the race was never exercised");
  if (stats.sweeper.blocks_retired == 0) shared.violation("the concurrent sweeper never retired a block: the race was never exercised");
  std::printf("%s --mode heap: no violation\n", info.name);
  return 0;
}

}  // namespace handoff::stress
