// stress_oom: running out of memory cleanly.
//
// The heap has a hard limit (HANDOFF_MAX_HEAP_BYTES semantics; 16 MiB, the
// smoke run 8 MiB). Each thread holds a rooted, checksummed structure (chains
// of nodes and a large array) and then loops:
//   - garbage: mixed small and large allocations, through make (which must
//     throw handoff::Error with ErrorCode::kOutOfMemory when it fails) and
//     try_make (which must return nullptr); any other outcome is a violation;
//   - now and then a fill: a chain held on the stack grows until the limit
//     refuses it (the documented error must come, before the chain holds
//     twice the limit), then is dropped; the heap must recover.
// A coordinator thread arms the allocation-failure injector
// (HeapBudget::fail_nth_charge) with i = 1, 2, ..., N in turn: the i-th block
// or large-object charge from then on fails as if the OS had refused it. It
// runs the verifier every few rounds. Every thread checks its structure after
// each fill and at the end; the main thread runs the verifier last.
//
// Violations: an allocation failure reported any other way (another error
// code, another exception, a null from make, a crash); a checksum changed
// (something live was lost); the limit never enforced; the heap not
// recovering after the filler chains died; nothing exercised.
#include "heap_stress.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace {

using handoff::Array;
using handoff::ErrorCode;
using handoff::Member;
using handoff::Root;
using handoff::stress::mix;
using handoff::stress::Options;

const handoff::stress::ProgramInfo kInfo{
    "stress_oom",
    "A heap limit plus allocation-failure injection (the i-th block or large-object charge\n"
    "fails, for i = 1..N): every failure must be the documented clean error, nothing live\n"
    "may be lost, the verifier must pass. Extra flag:\n"
    "  --inject N   largest i for the injector (default 200; --smoke 40)",
    {4, 10.0, 1, false},
    {2, 1.5, 1, true},
    handoff::stress::print_heap_tunables,
};

using Big = Array<std::uint64_t>;

struct Node {
  Member<Node> next;
  Member<Big> big;
  std::uint64_t id;
  std::uint64_t words;
  Node(std::uint64_t i, std::uint64_t w) : id(i), words(w) {
    for (std::uint64_t k = 0; k < words; ++k) data()[k] = mix(id + k);
  }
  std::uint64_t* data() { return reinterpret_cast<std::uint64_t*>(this + 1); }
  const std::uint64_t* data() const { return reinterpret_cast<const std::uint64_t*>(this + 1); }
  void trace(handoff::Visitor& v) const {
    v.trace(next);
    v.trace(big);
  }
  bool intact() const {
    for (std::uint64_t k = 0; k < words; ++k) {
      if (data()[k] != mix(id + k)) return false;
    }
    return true;
  }
};

struct Shared {
  Shared(const Options& o, handoff::HeapConfig config) : options(o), limit(config.max_heap_bytes), heap(config) {}
  Options options;
  std::uint64_t inject_max = 200;
  std::uint64_t limit;
  handoff::Heap heap;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> make_failures{0};
  std::atomic<std::uint64_t> try_make_nulls{0};
  std::atomic<std::uint64_t> fills{0};
  std::atomic<std::uint64_t> injections{0};

  [[noreturn]] void violation(const std::string& what) { handoff::stress::fail(kInfo, options, what); }
};

handoff::HeapConfig oom_config(const Options& options) {
  handoff::HeapConfig config = handoff::stress::heap_config_from_environment(kInfo);
  config.max_heap_bytes = options.smoke ? (8u << 20) : (16u << 20);
  config.allocator.max_heap_bytes = config.max_heap_bytes;
  config.initial_heap_bytes = 1 << 20;
  return config;
}

// Allocates through make or try_make; nullptr when the allocation failed in
// the documented way; a violation for anything else.
template <class Make>
auto checked(Shared& shared, bool use_try, Make make) -> decltype(make(true)) {
  try {
    auto* object = make(use_try);
    if (object == nullptr) {
      if (!use_try) shared.violation("make returned nullptr instead of throwing");
      shared.try_make_nulls.fetch_add(1, std::memory_order_relaxed);
    }
    return object;
  } catch (const handoff::Error& e) {
    if (use_try) shared.violation(std::string("try_make threw instead of returning nullptr: ") + e.what());
    if (e.code() != ErrorCode::kOutOfMemory) shared.violation(std::string("allocation failed with the wrong error: ") + e.what());
    shared.make_failures.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  } catch (const std::exception& e) {
    shared.violation(std::string("allocation failed with a foreign exception: ") + e.what());
  }
}

// try_make has no trailing-storage form: a fixed-size node of about 2 KiB
// (so that a fill reaches the limit through try_make too).
struct PaddedNode : Node {
  std::uint64_t pad[256] = {};
  explicit PaddedNode(std::uint64_t i) : Node(i, 0) {}
};

// `via`: 0 make, 1 try_make, 2 either at random.
Node* new_node(Shared& shared, std::mt19937_64& rng, std::uint64_t id, std::uint64_t words, int via = 2) {
  handoff::Heap& heap = shared.heap;
  const bool use_try = via == 2 ? rng() % 2 == 0 : via == 1;
  return checked(shared, use_try, [&](bool try_path) -> Node* {
    if (try_path) return words < 64 ? heap.try_make<Node>(id, 0) : heap.try_make<PaddedNode>(id);
    return heap.make_with_extra<Node>(words * sizeof(std::uint64_t), id, words);
  });
}

Big* new_big(Shared& shared, std::mt19937_64& rng, std::size_t length) {
  (void)rng;
  return checked(shared, false, [&](bool) -> Big* { return shared.heap.make_array<std::uint64_t>(length); });
}

struct Structure {
  Root<Array<Member<Node>>> chains;
  Root<Big> big;
  std::uint64_t big_id = 0;
};

void check_structure(Shared& shared, const Structure& s, const char* when) {
  for (const Member<Node>& head : *s.chains) {
    for (const Node* n = head.get(); n != nullptr; n = n->next.get()) {
      if (!n->intact()) shared.violation(std::string(when) + ": rooted node " + std::to_string(n->id) + " changed");
    }
  }
  const Big& big = *s.big;
  for (std::size_t k = 0; k < big.size(); ++k) {
    if (big[k] != mix(s.big_id + k)) shared.violation(std::string(when) + ": rooted large array changed");
  }
}

// Built before the injector is armed; retried if another thread's fill is
// holding the heap at its limit right now.
Structure build_structure(Shared& shared, unsigned thread) {
  handoff::Heap& heap = shared.heap;
  Structure s;
  s.chains = Root<Array<Member<Node>>>(heap, heap.make_array<Member<Node>>(32));
  s.big_id = mix(thread + 1);
  Big* big = heap.make_array<std::uint64_t>(2048);
  for (std::size_t k = 0; k < big->size(); ++k) (*big)[k] = mix(s.big_id + k);
  s.big = Root<Big>(heap, big);
  std::uint64_t id = std::uint64_t{thread + 1} << 40;
  for (std::size_t i = 0; i < 32; ++i) {
    for (int j = 0; j < 4; ++j) {
      Node* n = heap.make_with_extra<Node>(16 * sizeof(std::uint64_t), ++id, 16);
      n->next = (*s.chains)[i].get();
      (*s.chains)[i] = n;
    }
  }
  return s;
}

// Grows a stack-held chain until the limit refuses (through make when `via`
// is 0, try_make when 1); then drops it.
void fill(Shared& shared, std::mt19937_64& rng, std::uint64_t& serial, int via) {
  Node* head = nullptr;
  std::uint64_t bytes = 0;
  while (true) {
    Node* n = new_node(shared, rng, ++serial, 64 + rng() % 448, via);
    if (n == nullptr) break;
    bytes += n->words == 0 ? sizeof(PaddedNode) : sizeof(Node) + n->words * sizeof(std::uint64_t);
    if (rng() % 8 == 0) {
      n->big = new_big(shared, rng, 1100 + rng() % 3000);
      if (!n->big) break;
      bytes += n->big->size() * sizeof(std::uint64_t);
    }
    n->next = head;
    head = n;
    if (bytes > 2 * shared.limit) shared.violation("a chain of " + std::to_string(bytes >> 20) + " MiB grew past the heap limit");
  }
  for (const Node* n = head; n != nullptr; n = n->next.get()) {
    if (!n->intact()) shared.violation("a node of the filler chain changed while it was live");
  }
  shared.fills.fetch_add(1, std::memory_order_relaxed);
}

void mutator(Shared& shared, unsigned thread, std::atomic<unsigned>& built) {
  handoff::ThreadScope attached(shared.heap);
  auto rng = handoff::stress::thread_rng(shared.options.seed, thread);
  const Structure s = build_structure(shared, thread);
  built.fetch_add(1);
  // No fill may hold the heap at its limit while another thread builds.
  while (built.load() < shared.options.threads) handoff::stress::parked_sleep_ms(shared.heap, 1);
  std::uint64_t serial = std::uint64_t{thread + 1} << 48;
  std::uint64_t ops = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    if (rng() % 50 == 0) {
      new_big(shared, rng, 1100 + rng() % 6000);  // garbage at once
    } else {
      new_node(shared, rng, ++serial, rng() % 64);
    }
    // The first fill comes early (through try_make), so that a short run on
    // a slow build (a sanitizer, a loaded machine) still exercises it.
    if (++ops % 500 == 0 || ops == 100) {
      fill(shared, rng, serial, ops == 100 ? 1 : static_cast<int>((ops / 500) % 2));
      check_structure(shared, s, "after a fill");
    }
    if (ops % 128 == 0) shared.ops.fetch_add(128, std::memory_order_relaxed);
  }
  check_structure(shared, s, "at thread exit");
}

// Arms the injector with i = 1..N in turn, waiting for each to fire.
void injector(Shared& shared) {
  handoff::ThreadScope attached(shared.heap);
  auto fired = [&] {
    const handoff::HeapStats s = shared.heap.stats();
    return s.allocator.pool.acquire_failures + s.last_resort_collections + s.out_of_memory_errors;
  };
  std::uint64_t i = 1;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    const std::uint64_t before = fired();
    shared.heap.allocator().budget().fail_nth_charge(i);
    shared.injections.fetch_add(1, std::memory_order_relaxed);
    for (int wait = 0; wait < 50 && fired() == before && !shared.stop.load(std::memory_order_relaxed); ++wait) {
      handoff::stress::parked_sleep_ms(shared.heap, 1);
    }
    if (i % 8 == 0) shared.heap.verify();
    i = i % shared.inject_max + 1;
  }
  shared.heap.allocator().budget().fail_nth_charge(0);
}

}  // namespace

int main(int argc, char** argv) {
  const auto inject_flag = handoff::stress::take_flag_value(argc, argv, "--inject", kInfo);
  Options options = handoff::stress::parse_options(argc, argv, kInfo);
  Shared shared(options, oom_config(options));
  shared.inject_max = options.smoke ? 40 : 200;
  if (inject_flag) {
    shared.inject_max = std::strtoull(inject_flag->c_str(), nullptr, 10);
    if (shared.inject_max == 0) {
      std::fprintf(stderr, "%s: --inject expects a positive integer\n", kInfo.name);
      return 2;
    }
    shared.options.extra_flags = "--inject " + *inject_flag;
  }
  std::printf("%s: %u threads, %.1f s, seed %" PRIu64 ", limit %" PRIu64 " MiB, injector 1..%" PRIu64 "\n",
              kInfo.name, options.threads, options.seconds, options.seed, shared.limit >> 20, shared.inject_max);
  std::atomic<unsigned> built{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(shared), t, std::ref(built));
  while (built.load() < options.threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread injecting(injector, std::ref(shared));
  const double elapsed = handoff::stress::run_with_progress(options.seconds, [&](double t) {
    handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), t);
  });
  shared.stop.store(true);
  for (auto& t : threads) t.join();
  injecting.join();
  {
    handoff::ThreadScope attached(shared.heap);
    shared.heap.collect();
    shared.heap.verify();
    // Recovered: with every filler dead, the heap has room again.
    if (shared.heap.try_make<Node>(1, 0) == nullptr) shared.violation("the heap did not recover after every filler chain died");
  }
  handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), elapsed);
  const handoff::HeapStats stats = shared.heap.stats();
  if (shared.make_failures.load() == 0) shared.violation("make never failed: nothing was exercised");
  if (shared.try_make_nulls.load() == 0) shared.violation("try_make never failed: nothing was exercised");
  if (stats.out_of_memory_errors == 0) shared.violation("HeapStats.out_of_memory_errors stayed 0 although allocations failed");
  std::printf("%s: no violation (%" PRIu64 " make errors, %" PRIu64 " try_make nulls, %" PRIu64 " fills, %" PRIu64
              " injections, %" PRIu64 " last-resort collections)\n",
              kInfo.name, shared.make_failures.load(), shared.try_make_nulls.load(), shared.fills.load(),
              shared.injections.load(), stats.last_resort_collections);
  return 0;
}
