// bench_barrier: the cost of the generational write barrier (write_barrier.h).
//
// Each benchmark stores a pointer into one field of each of 4096 objects in
// turn (a different object, and so a different cache line, per store), so
// the figure per store includes what the barrier adds to a store that
// misses nothing but touches the owner's block header:
//
//   RawStore              plain T* field in a heap object: the baseline
//   MemberStoreOld        Member field of old objects (survived a full
//                         collection); their cards are set by the first pass,
//                         so every timed store is the common case: range map
//                         byte, card byte already 1, no store to the card
//   MemberStoreOldClean   the same, with the cards cleared (an eden
//                         collection) before every pass: the first store per
//                         card sets it
//   MemberStoreNew        Member field of objects allocated since the last
//                         collection (what binary-trees and GCBench do)
//   MemberStoreOffHeap    Member in a std::vector: the range map says "not a
//                         block", nothing else is read
//   MemberStoreNull       storing nullptr: no barrier at all
//
// The report's figure is each Member store's time minus RawStore's, in ns
// per store (papers/collector.md, "Generations").
#include <handoff/heap.h>

#include <benchmark/benchmark.h>

#include <cstddef>
#include <vector>

namespace {

struct Obj {
  handoff::Member<Obj> member;
  Obj* raw = nullptr;
  long pad[2] = {};
  void trace(handoff::Visitor& v) const {
    v.trace(member);
    v.trace_raw(raw);
  }
};

constexpr std::size_t kObjects = 4096;

handoff::HeapConfig quiet() {
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.collect_every = 0;
  config.verify = 0;
  config.initial_heap_bytes = std::uint64_t{1} << 30;  // no collection inside a timed loop
  return config;
}

struct Fixture {
  handoff::Heap heap{quiet()};
  handoff::ThreadScope attached{heap};
  handoff::Root<handoff::Array<handoff::Member<Obj>>> table{heap, heap.make_array<handoff::Member<Obj>>(kObjects)};
  std::vector<Obj*> objects;

  explicit Fixture(bool old) {
    for (std::size_t i = 0; i < kObjects; ++i) {
      Obj* o = heap.make<Obj>();
      (*table)[i] = o;
      objects.push_back(o);
    }
    if (old) heap.collect();  // full: every object is old
  }
};

template <class Store>
void run(benchmark::State& state, Fixture& f, Store store) {
  Obj* target = f.objects[0];
  for (auto _ : state) {
    for (Obj* o : f.objects) store(o, target);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kObjects));
}

void RawStore(benchmark::State& state) {
  Fixture f(true);
  run(state, f, [](Obj* o, Obj* t) { o->raw = t; });
}

void MemberStoreOld(benchmark::State& state) {
  Fixture f(true);
  run(state, f, [](Obj* o, Obj* t) { o->member = t; });
}

void MemberStoreOldClean(benchmark::State& state) {
  Fixture f(true);
  Obj* target = f.objects[0];
  for (auto _ : state) {
    state.PauseTiming();
    f.heap.collect(handoff::CollectionScope::kEden);  // clears the cards
    state.ResumeTiming();
    for (Obj* o : f.objects) o->member = target;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kObjects));
}

void MemberStoreNew(benchmark::State& state) {
  Fixture f(false);
  run(state, f, [](Obj* o, Obj* t) { o->member = t; });
}

void MemberStoreOffHeap(benchmark::State& state) {
  Fixture f(true);
  std::vector<handoff::Member<Obj>> off(kObjects * 4);  // same stride as the heap objects
  Obj* target = f.objects[0];
  for (auto _ : state) {
    for (std::size_t i = 0; i < off.size(); i += 4) off[i] = target;
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kObjects));
}

void MemberStoreNull(benchmark::State& state) {
  Fixture f(true);
  run(state, f, [](Obj* o, Obj*) { o->member = nullptr; });
}

BENCHMARK(RawStore);
BENCHMARK(MemberStoreOld);
BENCHMARK(MemberStoreOldClean);
BENCHMARK(MemberStoreNew);
BENCHMARK(MemberStoreOffHeap);
BENCHMARK(MemberStoreNull);

}  // namespace

BENCHMARK_MAIN();
