// stress_finalizers: finalizers, destructors, weak references and DeferGC
// under concurrent collections.
//
// Every tracked object gets an id; per-id counters record how often its
// finalizer and its destructor ran. Threads make:
//   - finalizable objects (Fin) with a child; some are rooted for a while,
//     most die at once. Fin::finalize() checks its child is intact (objects a
//     finalizer can reach are kept alive for it), then allocates and drops a
//     root, as a finalizer that builds something would;
//   - plain objects with a destructor (Tracked), each watched by a Weak; some
//     also held by a Root;
//   - DeferGC scopes in which objects held only by a C++ vector (no root)
//     must stay intact, and during which no collection may begin.
// One thread collects now and then; all run queued finalizers.
//
// Violations: a finalizer or destructor that ran twice; a destructor before
// the finalizer; a Weak cleared while its object was rooted; a Weak that
// returns an object whose destructor ran; a collection inside a DeferGC
// scope; and at the end, after the last collections and the heap's
// destruction: a finalizable object never finalized, any object never
// destroyed.
#include "heap_stress.h"

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using handoff::Member;
using handoff::Root;
using handoff::Weak;
using handoff::stress::mix;
using handoff::stress::Options;

const handoff::stress::ProgramInfo kInfo{
    "stress_finalizers",
    "Finalizers that allocate and drop roots, weak references to dying objects, DeferGC\n"
    "scopes; each finalizer and destructor must run exactly once, weak references clear\n"
    "only for unreachable objects.",
    {4, 10.0, 1, false},
    {2, 1.5, 1, true},
    handoff::stress::print_heap_tunables,
};

enum class Kind : std::uint8_t { kNone, kFin, kTracked, kChild };

// Per-id bookkeeping, shared by every thread and read by destructors (which
// must not touch the heap: these are plain atomics outside it).
struct Ledger {
  explicit Ledger(std::size_t capacity) : kind(capacity), finalized(capacity), destroyed(capacity) {}
  std::vector<std::atomic<Kind>> kind;
  std::vector<std::atomic<std::uint8_t>> finalized;
  std::vector<std::atomic<std::uint8_t>> destroyed;
  std::atomic<std::uint64_t> next{1};
  std::atomic<bool> heap_closing{false};

  std::optional<std::uint64_t> new_id(Kind k) {
    const std::uint64_t id = next.fetch_add(1, std::memory_order_relaxed);
    if (id >= kind.size()) return std::nullopt;
    kind[id].store(k, std::memory_order_relaxed);
    return id;
  }
};

struct Shared;
Shared* g_shared = nullptr;  // finalize() and destructors take no arguments

struct Shared {
  Shared(const Options& o, handoff::HeapConfig config)
      : options(o), ledger(o.smoke ? (1u << 21) : (1u << 24)), heap(config) {}
  Options options;
  Ledger ledger;  // outlives the heap: the heap's destructor runs destructors
  std::optional<handoff::Heap> heap;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> defer_scopes{0};
  std::atomic<std::uint64_t> weak_checks{0};

  [[noreturn]] void violation(const std::string& what) { handoff::stress::fail(kInfo, options, what); }
};

void destroyed_once(std::uint64_t id, const char* type) {
  if (g_shared->ledger.destroyed[id].fetch_add(1, std::memory_order_relaxed) != 0) {
    g_shared->violation(std::string(type) + " " + std::to_string(id) + ": destructor ran twice");
  }
}

struct Child : handoff::Leaf {
  std::uint64_t id;    // 0: not in the ledger
  std::uint64_t salt;  // tells untracked children apart
  std::uint64_t check;
  explicit Child(std::uint64_t i, std::uint64_t s = 0) : id(i), salt(s), check(mix(i ^ s)) {}
  ~Child() { if (id != 0) destroyed_once(id, "Child"); }
  bool intact() const { return check == mix(id ^ salt); }
};

Child* make_child(handoff::Heap& heap) {
  const std::uint64_t id = g_shared->ledger.new_id(Kind::kChild).value_or(0);
  return heap.make<Child>(id);
}

struct Fin {
  Member<Child> child;
  std::uint64_t id;
  Fin(std::uint64_t i, Child* c) : child(c), id(i) {}
  void trace(handoff::Visitor& v) const { v.trace(child); }
  void finalize() {
    Shared& s = *g_shared;
    if (s.ledger.finalized[id].fetch_add(1, std::memory_order_relaxed) != 0) s.violation("Fin " + std::to_string(id) + ": finalizer ran twice");
    if (s.ledger.destroyed[id].load(std::memory_order_relaxed) != 0) s.violation("Fin " + std::to_string(id) + ": finalizer ran after the destructor");
    if (child && !child->intact()) s.violation("Fin " + std::to_string(id) + ": its child was reclaimed before the finalizer ran");
    // A finalizer may allocate and use roots.
    Root<Child> made(*s.heap, make_child(*s.heap));
    made.release();
  }
  ~Fin() {
    Shared& s = *g_shared;
    destroyed_once(id, "Fin");
    if (!s.ledger.heap_closing.load(std::memory_order_relaxed) && s.ledger.finalized[id].load(std::memory_order_relaxed) == 0) {
      s.violation("Fin " + std::to_string(id) + ": destructor ran before the finalizer");
    }
  }
};

struct Tracked : handoff::Leaf {
  std::uint64_t id;
  explicit Tracked(std::uint64_t i) : id(i) {}
  ~Tracked() { destroyed_once(id, "Tracked"); }
};

struct Watched {
  std::unique_ptr<Weak<Tracked>> weak;
  Root<Tracked> strong;  // empty when only the weak reference remains
  const Tracked* object = nullptr;
  std::uint64_t id = 0;
};

constexpr std::size_t kFinSlots = 64;
constexpr std::size_t kWatched = 64;

handoff::HeapConfig finalizer_config() {
  handoff::HeapConfig config = handoff::stress::heap_config_from_environment(kInfo);
  config.initial_heap_bytes = 512 << 10;
  config.growth_percent = 50;
  return config;
}

void check_watched(Shared& shared, const Watched& w) {
  if (!w.weak) return;
  const Tracked* seen = w.weak->get();
  if (seen == nullptr) {
    if (!w.strong.empty()) shared.violation("Weak cleared while its object " + std::to_string(w.id) + " was rooted");
    return;
  }
  if (seen != w.object) shared.violation("Weak to object " + std::to_string(w.id) + " returned another pointer");
  if (shared.ledger.destroyed[w.id].load(std::memory_order_relaxed) != 0) {
    shared.violation("Weak returned object " + std::to_string(w.id) + " after its destructor ran");
  }
  if (seen->id != w.id) shared.violation("Weak returned a reused cell (object " + std::to_string(w.id) + ")");
}

void watch_new(Shared& shared, Watched& w, std::mt19937_64& rng) {
  check_watched(shared, w);
  w = Watched{};
  const auto id = shared.ledger.new_id(Kind::kTracked);
  if (!id) return;
  Tracked* t = shared.heap->make<Tracked>(*id);
  w.weak = std::make_unique<Weak<Tracked>>(*shared.heap, t);
  w.object = t;
  w.id = *id;
  if (rng() % 2 == 0) w.strong = Root<Tracked>(*shared.heap, t);
}

void deferred_batch(Shared& shared, std::mt19937_64& rng) {
  handoff::Heap& heap = *shared.heap;
  handoff::DeferGC defer(heap);
  const std::uint64_t collections = heap.stats().collections;
  std::vector<Child*> unrooted;  // on the C++ heap: only DeferGC protects these
  for (unsigned i = 0; i < 32 + rng() % 64; ++i) unrooted.push_back(heap.make<Child>(0, rng()));
  for (const Child* c : unrooted) {
    if (!c->intact()) shared.violation("an object made inside DeferGC was reclaimed inside the scope");
  }
  if (heap.stats().collections != collections) shared.violation("a collection ran inside a DeferGC scope");
  shared.defer_scopes.fetch_add(1, std::memory_order_relaxed);
}

void mutator(Shared& shared, unsigned thread) {
  handoff::Heap& heap = *shared.heap;
  handoff::ThreadScope attached(heap);
  auto rng = handoff::stress::thread_rng(shared.options.seed, thread);
  std::vector<Root<Fin>> fins(kFinSlots);
  std::vector<Watched> watched(kWatched);
  std::uint64_t ops = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    const unsigned roll = static_cast<unsigned>(rng() % 100);
    if (roll < 45) {
      if (const auto id = shared.ledger.new_id(Kind::kFin)) {
        Fin* f = heap.make<Fin>(*id, make_child(heap));
        if (rng() % 4 == 0) fins[rng() % kFinSlots] = Root<Fin>(heap, f);  // the old one becomes garbage
      }
    } else if (roll < 85) {
      watch_new(shared, watched[rng() % kWatched], rng);
    } else if (roll < 88) {
      deferred_batch(shared, rng);
    } else if (roll < 98) {
      Watched& w = watched[rng() % kWatched];
      check_watched(shared, w);
      if (!w.strong.empty()) w.strong.release();  // now only weakly held
    } else {
      heap.run_finalizers();
    }
    if (++ops % 128 == 0) {
      for (const Watched& w : watched) check_watched(shared, w);
      shared.weak_checks.fetch_add(1, std::memory_order_relaxed);
      shared.ops.fetch_add(128, std::memory_order_relaxed);
      if (thread == 0 && ops % 1024 == 0) heap.collect();
    }
  }
  for (const Watched& w : watched) check_watched(shared, w);
  heap.run_finalizers();
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = handoff::stress::parse_options(argc, argv, kInfo);
  auto shared = std::make_unique<Shared>(options, finalizer_config());
  g_shared = shared.get();
  std::printf("%s: %u threads, %.1f s, seed %" PRIu64 "\n", kInfo.name, options.threads, options.seconds, options.seed);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(*shared), t);
  const double elapsed = handoff::stress::run_with_progress(options.seconds, [&](double t) {
    handoff::stress::print_heap_progress(kInfo, *shared->heap, shared->ops.load(), t);
  });
  shared->stop.store(true);
  for (auto& t : threads) t.join();
  Ledger& ledger = shared->ledger;
  const std::uint64_t ids = std::min<std::uint64_t>(ledger.next.load(), ledger.kind.size());
  {
    // Every root is gone: each Fin is unreachable. Collect and run the
    // finalizers until a collection queues none (finalizers make children).
    handoff::ThreadScope attached(*shared->heap);
    for (int round = 0; round < 8; ++round) {
      shared->heap->collect();
      shared->heap->run_finalizers();
      const handoff::HeapStats s = shared->heap->stats();
      if (round >= 2 && s.finalizers_queued == s.finalizers_run) break;
    }
    shared->heap->verify();
  }
  handoff::stress::print_heap_progress(kInfo, *shared->heap, shared->ops.load(), elapsed);
  const handoff::HeapStats stats = shared->heap->stats();
  std::uint64_t fins = 0;
  for (std::uint64_t id = 1; id < ids; ++id) {
    if (ledger.kind[id].load() != Kind::kFin) continue;
    ++fins;
    if (ledger.finalized[id].load() != 1) shared->violation("Fin " + std::to_string(id) + " finalized " + std::to_string(ledger.finalized[id].load()) + " times after every root was gone");
  }
  ledger.heap_closing.store(true);
  shared->heap.reset();  // runs every remaining destructor
  for (std::uint64_t id = 1; id < ids; ++id) {
    if (ledger.kind[id].load() == Kind::kNone) continue;
    if (ledger.destroyed[id].load() != 1) shared->violation("object " + std::to_string(id) + " destroyed " + std::to_string(ledger.destroyed[id].load()) + " times by the end");
  }
  if (stats.finalizers_run == 0) shared->violation("no finalizer ran: nothing was exercised");
  if (stats.weak_cleared == 0) shared->violation("no weak reference was cleared: nothing was exercised");
  std::printf("%s: no violation (%" PRIu64 " ids, %" PRIu64 " finalizable, %" PRIu64 " finalizers run, %" PRIu64
              " weak cleared, %" PRIu64 " DeferGC scopes, %" PRIu64 " collections)\n",
              kInfo.name, ids - 1, fins, stats.finalizers_run, stats.weak_cleared, shared->defer_scopes.load(),
              stats.collections);
  g_shared = nullptr;
  return 0;
}
