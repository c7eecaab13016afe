// stress_churn: mixed sizes, random lifetimes, checksummed survivors.
//
// Each thread keeps three kinds of objects:
//   - a rooted table of chains of variable-size blobs (16 B .. 4 KiB of
//     payload, 1-4 blobs linked through Member fields, so tracing matters);
//   - a rooted table of large arrays (make_array<std::uint64_t>, 8 KiB .. 64 KiB,
//     above the largest size class: the large-object space);
//   - a short ring of recent blobs in a local array, found only by the
//     conservative stack scan;
// and allocates garbage that dies at once. Slots are replaced at random, so
// lifetimes range from zero to the whole run. Every object's payload is a
// pattern derived from its id; it is checked when the object is dropped and
// the whole set is checked each time the thread sees a new collection
// (HeapStats.collections changed), and once more on the main thread at the
// end. A small trigger makes collections frequent; thread 0 also runs the
// verifier now and then.
//
// Violations: a pattern changed (a live cell was swept, reused or lost), a
// chain's ids broke, the verifier aborted (its own report).
#include "heap_stress.h"

#include <array>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using handoff::Array;
using handoff::Member;
using handoff::Root;
using handoff::stress::mix;
using handoff::stress::Options;

const handoff::stress::ProgramInfo kInfo{
    "stress_churn",
    "Mixed sizes including large objects, random lifetimes, rooted survivors with\n"
    "checksums verified after every collection each thread observes.",
    {4, 10.0, 1, false},
    {2, 1.5, 1, true},
    handoff::stress::print_heap_tunables,
};

struct Blob {
  Member<Blob> next;
  std::uint64_t id;
  std::uint64_t words;
  Blob(std::uint64_t i, std::uint64_t w) : id(i), words(w) {
    for (std::uint64_t k = 0; k < words; ++k) payload()[k] = mix(id ^ (k << 48));
  }
  std::uint64_t* payload() { return reinterpret_cast<std::uint64_t*>(this + 1); }
  const std::uint64_t* payload() const { return reinterpret_cast<const std::uint64_t*>(this + 1); }
  void trace(handoff::Visitor& v) const { v.trace(next); }
  bool intact() const {
    for (std::uint64_t k = 0; k < words; ++k) {
      if (payload()[k] != mix(id ^ (k << 48))) return false;
    }
    return words <= 512;
  }
};

using Big = Array<std::uint64_t>;
using ChainTable = Array<Member<Blob>>;
using BigTable = Array<Member<Big>>;

constexpr std::size_t kChains = 256;
constexpr std::size_t kBigs = 8;
constexpr std::size_t kRing = 16;

struct ThreadRoots {
  Root<ChainTable> chains;
  Root<BigTable> bigs;
};

struct Shared {
  Shared(const Options& o, handoff::HeapConfig config) : options(o), heap(config) {}
  Options options;
  handoff::Heap heap;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> checks{0};  // full-set checks after a collection
  std::mutex roots_mutex;
  std::vector<std::unique_ptr<ThreadRoots>> roots;  // each thread's, handed over at exit

  [[noreturn]] void violation(const std::string& what) { handoff::stress::fail(kInfo, options, what); }
};

handoff::HeapConfig churn_config() {
  handoff::HeapConfig config = handoff::stress::heap_config_from_environment(kInfo);
  config.initial_heap_bytes = 1 << 20;
  config.growth_percent = 50;
  config.allocation_slice_bytes = 32 << 10;
  return config;
}

Blob* make_chain(handoff::Heap& heap, std::mt19937_64& rng, std::uint64_t& serial) {
  const unsigned length = 1 + static_cast<unsigned>(rng() % 4);
  Blob* head = nullptr;
  // Built back to front, so ids increase along the chain.
  serial += length;
  for (unsigned i = 0; i < length; ++i) {
    const std::uint64_t words = (rng() % 8 == 0) ? rng() % 512 : rng() % 16;
    Blob* b = heap.make_with_extra<Blob>(words * sizeof(std::uint64_t), serial - i, words);
    b->next = head;
    head = b;
  }
  return head;
}

Big* make_big(handoff::Heap& heap, std::mt19937_64& rng, std::uint64_t id) {
  const std::size_t length = 1010 + rng() % (8192 - 1010);  // 8 KiB .. 64 KiB: large objects
  Big* big = heap.make_array<std::uint64_t>(length);
  (*big)[0] = id;
  for (std::size_t k = 1; k < length; ++k) (*big)[k] = mix(id + k);
  return big;
}

std::string chain_problem(const Blob* head) {
  std::uint64_t expect = head->id;
  for (const Blob* b = head; b != nullptr; b = b->next.get(), ++expect) {
    if (b->id != expect) return "chain id " + std::to_string(b->id) + " where " + std::to_string(expect) + " was expected";
    if (!b->intact()) return "blob " + std::to_string(b->id) + " payload changed";
  }
  return {};
}

std::string big_problem(const Big* big) {
  const std::uint64_t id = (*big)[0];
  for (std::size_t k = 1; k < big->size(); ++k) {
    if ((*big)[k] != mix(id + k)) return "large array " + std::to_string(id) + " element " + std::to_string(k) + " changed";
  }
  return {};
}

void check_all(Shared& shared, const ThreadRoots& roots, const char* when) {
  for (const Member<Blob>& c : *roots.chains) {
    if (!c) continue;
    if (std::string p = chain_problem(c.get()); !p.empty()) shared.violation(std::string(when) + ": " + p);
  }
  for (const Member<Big>& b : *roots.bigs) {
    if (!b) continue;
    if (std::string p = big_problem(b.get()); !p.empty()) shared.violation(std::string(when) + ": " + p);
  }
}

void mutator(Shared& shared, unsigned thread) {
  handoff::ThreadScope attached(shared.heap);
  handoff::Heap& heap = shared.heap;
  auto rng = handoff::stress::thread_rng(shared.options.seed, thread);
  auto roots = std::make_unique<ThreadRoots>();
  roots->chains = Root<ChainTable>(heap, heap.make_array<Member<Blob>>(kChains));
  roots->bigs = Root<BigTable>(heap, heap.make_array<Member<Big>>(kBigs));
  std::array<Blob*, kRing> ring{};  // on the stack: conservative roots only
  std::uint64_t serial = std::uint64_t{thread + 1} << 40;
  std::uint64_t seen_collections = 0;
  std::uint64_t ops = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    const unsigned roll = static_cast<unsigned>(rng() % 100);
    if (roll < 50) {
      Member<Blob>& slot = (*roots->chains)[rng() % kChains];
      if (slot) {
        if (std::string p = chain_problem(slot.get()); !p.empty()) shared.violation("chain dropped: " + p);
      }
      slot = make_chain(heap, rng, serial);
    } else if (roll < 52) {
      Member<Big>& slot = (*roots->bigs)[rng() % kBigs];
      if (slot) {
        if (std::string p = big_problem(slot.get()); !p.empty()) shared.violation("large array dropped: " + p);
      }
      slot = make_big(heap, rng, ++serial);
    } else if (roll < 80) {
      Blob*& slot = ring[rng() % kRing];
      if (slot != nullptr && !slot->intact()) shared.violation("a stack-held blob changed (conservative roots)");
      slot = make_chain(heap, rng, serial);
    } else {
      make_chain(heap, rng, serial);  // garbage at once
    }
    if (++ops % 256 == 0) {
      shared.ops.fetch_add(256, std::memory_order_relaxed);
      const std::uint64_t collections = heap.stats().collections;
      if (collections != seen_collections) {
        seen_collections = collections;
        check_all(shared, *roots, "after a collection");
        for (Blob* b : ring) {
          if (b != nullptr && !chain_problem(b).empty()) shared.violation("a stack-held chain changed after a collection");
        }
        shared.checks.fetch_add(1, std::memory_order_relaxed);
      }
      if (thread == 0 && ops % (64 * 256) == 0) heap.verify();
    }
  }
  check_all(shared, *roots, "at thread exit");
  std::lock_guard lock(shared.roots_mutex);
  shared.roots.push_back(std::move(roots));
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = handoff::stress::parse_options(argc, argv, kInfo);
  Shared shared(options, churn_config());
  std::printf("%s: %u threads, %.1f s, seed %" PRIu64 "\n", kInfo.name, options.threads, options.seconds, options.seed);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(shared), t);
  const double elapsed = handoff::stress::run_with_progress(options.seconds, [&](double t) {
    handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), t);
  });
  shared.stop.store(true);
  for (auto& t : threads) t.join();
  {
    // Survivors are held by Roots only now: two collections, then the
    // checksum pass over every thread's tables, then the verifier.
    handoff::ThreadScope attached(shared.heap);
    shared.heap.collect();
    shared.heap.collect();
    for (const auto& roots : shared.roots) check_all(shared, *roots, "final pass on the main thread");
    shared.heap.verify();
  }
  handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), elapsed);
  const handoff::HeapStats stats = shared.heap.stats();
  if (stats.collections < 3) shared.violation("fewer than 3 collections ran: nothing was exercised");
  if (stats.allocator.large.allocated == 0) shared.violation("no large object was allocated");
  std::printf("%s: no violation (%" PRIu64 " collections, %" PRIu64 " post-collection checks)\n", kInfo.name,
              stats.collections, shared.checks.load());
  return 0;
}
