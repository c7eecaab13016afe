// park_cost: what a ParkedScope costs, against the safepoint poll it should
// cost about as much as (collector/src/safepoint.cpp, papers/collector.md).
//
//   park/enter_leave/threads:N   one ParkedScope opened and closed, on N
//                                attached threads at once, no collection
//                                pending: the fast path (one CAS each way
//                                on the thread's own state word). Read the
//                                CPU time: it is each thread's cost per
//                                enter+leave, so N = 2 and 4 show whether
//                                parking threads slow each other down.
//   park/enter_leave_collecting  the same on one thread while another
//                                attached thread collects in a loop (its
//                                heap is tiny, so the world is stopped or
//                                being stopped much of the time): enters
//                                and leaves take the slow path whenever a
//                                stop is requested, and a leave waits for
//                                the collection to end. The counters say
//                                how many collections ran meanwhile and
//                                how many enter+leave pairs there were per
//                                collection; the figure depends on how
//                                the two threads share the cores, so read
//                                it with its spread.
//   safepoint/poll               Heap::safepoint() with no stop requested.
#include <benchmark/benchmark.h>
#include <handoff/heap.h>

#include <atomic>
#include <thread>

namespace {

handoff::Heap& shared_heap() {
  static handoff::Heap heap{handoff::HeapConfig{}};
  return heap;
}

void park_enter_leave(benchmark::State& state) {
  handoff::Heap& heap = shared_heap();
  handoff::ThreadScope attached(heap);
  for (auto _ : state) {
    handoff::ParkedScope parked(heap);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(park_enter_leave)->Name("park/enter_leave")->Threads(1)->Threads(2)->Threads(4);

void park_enter_leave_collecting(benchmark::State& state) {
  handoff::Heap heap{handoff::HeapConfig{}};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> collections{0};
  std::thread collector([&] {
    handoff::ThreadScope attached(heap);
    while (!stop.load(std::memory_order_relaxed)) {
      heap.collect();
      collections.fetch_add(1, std::memory_order_relaxed);
    }
  });
  {
    handoff::ThreadScope attached(heap);
    for (auto _ : state) {
      handoff::ParkedScope parked(heap);
      benchmark::ClobberMemory();
    }
    stop.store(true, std::memory_order_relaxed);
    handoff::ParkedScope parked(heap);  // the collector's last collection must not wait for us
    collector.join();
  }
  const double ran = static_cast<double>(collections.load());
  state.counters["collections"] = ran;
  state.counters["scopes_per_collection"] = ran == 0 ? 0.0 : static_cast<double>(state.iterations()) / ran;
}
BENCHMARK(park_enter_leave_collecting)->Name("park/enter_leave_collecting")->UseRealTime();

void safepoint_poll(benchmark::State& state) {
  handoff::Heap& heap = shared_heap();
  handoff::ThreadScope attached(heap);
  for (auto _ : state) {
    heap.safepoint();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(safepoint_poll)->Name("safepoint/poll");

}  // namespace

BENCHMARK_MAIN();
