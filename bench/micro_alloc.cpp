// micro_alloc: Google Benchmark microbenchmarks on the workloads' backend
// interface (bench/workloads/backend.h), one executable per backend family
// (bench_micro_<family>; see bench/CMakeLists.txt for why).
//
//   fast_path/<backend>/<S>   allocate one fixed-size object of S bytes
//                             (make<T>: handoff's Heap::make), write one
//                             word, release it (malloc family: free;
//                             collectors: drop it, the collector reclaims
//                             it, so its collections are in the time). S
//                             is what the allocator is asked for: for
//                             handoff the cell, header word included.
//                             1..8 threads (ThreadRange), real time.
//   retain/<backend>/<S>      the refill path: allocate 65,536 objects of S
//                             bytes into a heap array, then release them
//                             all; every round needs new blocks (handoff:
//                             refills; the counter refills_per_object).
//   large/<backend>/<S>       S = 16 KiB .. 1 MiB: allocate, touch the
//                             first and last byte, release.
//
// items_per_second counts objects; ns per object = 1e9 / items_per_second.
//
// handoff threads attach with handoff::ThreadScope for the whole run and
// are parked (ParkedScope) while they wait in Google Benchmark's start and
// end barriers, where a collection started by another thread would
// otherwise wait for them forever.
#include "workloads/backend.h"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
#include "workloads/backend_handoff.h"
using Backend = bench::HandoffBackend;
constexpr std::size_t kHeaderBytes = 8;  // the cell's header word
#elif defined(HANDOFF_BENCH_BACKEND_BOEHM)
#include "workloads/backend_boehm.h"
using Backend = bench::BoehmBackend;
constexpr std::size_t kHeaderBytes = 0;
#else
#include "workloads/malloc_apis.h"
using Backend = bench::MallocBackend<bench::MallocApi>;
constexpr std::size_t kHeaderBytes = 0;
#endif

namespace {

constexpr std::int64_t kLargeSizes[] = {16 << 10, 64 << 10, 256 << 10, 1 << 20};
constexpr std::size_t kRetained = 65536;

Backend* g_backend = nullptr;

// A fixed-size object of exactly S bytes as the allocator sees it (handoff:
// the cell, header included), made with make<T>() (handoff: Heap::make, the
// fixed-size fast path). The constructor writes one word and leaves the
// rest uninitialised, as malloc would.
template <std::size_t S>
struct FixedCell {
  static_assert((S - kHeaderBytes) % sizeof(std::uintptr_t) == 0 && S > kHeaderBytes);
  std::uintptr_t words[(S - kHeaderBytes) / sizeof(std::uintptr_t)];
  FixedCell() noexcept { words[0] = 1; }  // NOLINT: the rest stays uninitialised on purpose
  template <class V>
  void trace(V&) const {}
};

std::uint32_t payload_for(std::int64_t size) {
  return static_cast<std::uint32_t>(static_cast<std::size_t>(size) - sizeof(bench::Blob) - kHeaderBytes);
}

// Attached for the whole run; parked outside the timed iterations.
class Attached {
 public:
  explicit Attached(benchmark::State& state) : state_(state), thread_(*g_backend) { parked_.emplace(*g_backend); }
  // Call at the top of each iteration body.
  void iteration_begins() {
    if (done_++ == 0) parked_.reset();
  }
  // Call at the end of each iteration body.
  void iteration_ends() {
    if (done_ == state_.max_iterations) parked_.emplace(*g_backend);
  }
  ~Attached() { parked_.reset(); }

 private:
  benchmark::State& state_;
  Backend::Thread thread_;
  std::optional<Backend::Blocking> parked_;
  benchmark::IterationCount done_ = 0;
};

#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
std::uint64_t refills() { return g_backend->heap().stats().allocator.counters.refills; }
#else
std::uint64_t refills() { return 0; }
#endif

template <std::size_t S>
void fast_path(benchmark::State& state) {
  Attached attached(state);
  for (auto _ : state) {
    attached.iteration_begins();
    auto* cell = g_backend->make<FixedCell<S>>();
    benchmark::DoNotOptimize(cell);
    g_backend->release(cell);
    attached.iteration_ends();
  }
  state.SetItemsProcessed(state.iterations());
}

template <std::size_t S>
void retain(benchmark::State& state) {
  using Cell = FixedCell<S>;
  using Table = Backend::ArrayOf<Backend::Ref<Cell>>;
  Attached attached(state);
  const std::uint64_t refills_before = refills();
  for (auto _ : state) {
    attached.iteration_begins();
    Table* table = g_backend->make_array<Backend::Ref<Cell>>(kRetained);
    for (std::size_t i = 0; i < kRetained; ++i) (*table)[i] = g_backend->make<Cell>();
    benchmark::DoNotOptimize(table);
    if constexpr (Backend::kFreesExplicitly) {
      for (std::size_t i = 0; i < kRetained; ++i) g_backend->release<Cell>((*table)[i]);
    }
    g_backend->release_array(table);
    attached.iteration_ends();
  }
  const auto objects = state.iterations() * static_cast<std::int64_t>(kRetained);
  state.SetItemsProcessed(objects);
  if (refills() != 0) {
    state.counters["refills_per_object"] =
        static_cast<double>(refills() - refills_before) / static_cast<double>(objects);
  }
}

void large(benchmark::State& state) {
  const std::uint32_t payload = payload_for(state.range(0));
  Attached attached(state);
  for (auto _ : state) {
    attached.iteration_begins();
    bench::Blob* blob = g_backend->make_blob(payload, 1);
    blob->payload()[0] = 1;
    blob->payload()[payload - 1] = 2;
    benchmark::DoNotOptimize(blob);
    g_backend->release_blob(blob);
    attached.iteration_ends();
  }
  state.SetItemsProcessed(state.iterations());
}

void register_benchmarks() {
  const std::string backend = HANDOFF_BENCH_BACKEND_NAME;
  // BENCH_MICRO_ITERATIONS=N fixes fast_path's iterations per thread (no
  // calibration runs): instruction counts under callgrind then divide by a
  // known number of objects.
  const char* fixed = std::getenv("BENCH_MICRO_ITERATIONS");
  const benchmark::IterationCount iterations = fixed != nullptr ? std::strtoll(fixed, nullptr, 10) : 0;
  auto fast = [&](std::int64_t size, void (*run)(benchmark::State&)) {
    auto* b = benchmark::RegisterBenchmark(("fast_path/" + backend + "/" + std::to_string(size)).c_str(), run)
                  ->ThreadRange(1, 8)
                  ->UseRealTime();
    if (iterations > 0) b->Iterations(iterations);
  };
  fast(16, fast_path<16>);
  fast(32, fast_path<32>);
  fast(64, fast_path<64>);
  fast(128, fast_path<128>);
  fast(256, fast_path<256>);
  fast(1024, fast_path<1024>);
  auto keep = [&](std::int64_t size, void (*run)(benchmark::State&)) {
    benchmark::RegisterBenchmark(("retain/" + backend + "/" + std::to_string(size)).c_str(), run)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  };
  keep(16, retain<16>);
  keep(32, retain<32>);
  keep(64, retain<64>);
  keep(128, retain<128>);
  keep(256, retain<256>);
  auto* l = benchmark::RegisterBenchmark(("large/" + backend).c_str(), large);
  for (std::int64_t s : kLargeSizes) l->Arg(s);
  l->UseRealTime();
}

void print_help() {
  std::printf(
      "bench_micro_%s: microbenchmarks of allocation on this executable's backend.\n"
      "  fast_path/<backend>/<S>  allocate S bytes, touch, release (free or drop); 1..8 threads\n"
      "  retain/<backend>/<S>     allocate 65,536 objects of S bytes, then release all (refill path)\n"
      "  large/<backend>/<S>      16 KiB .. 1 MiB objects\n"
      "S in 16, 32, 64, 128, 256 (fast_path also 1024; handoff: cell size, 8-byte header included).\n"
      "ns per object = 1e9 / items_per_second (real time). bench/run_eval.py runs every backend.\n\n",
      HANDOFF_BENCH_BACKEND_NAME);
  benchmark::PrintDefaultHelp();
}

}  // namespace

int main(int argc, char** argv) {
#if defined(HANDOFF_BENCH_BACKEND_BOEHM)
  GC_INIT();
#endif
  try {
    benchmark::Initialize(&argc, argv, print_help);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    bench::BackendOptions options;
#if defined(HANDOFF_BENCH_BACKEND_HANDOFF) || defined(HANDOFF_BENCH_BACKEND_BOEHM)
    options.variant = Backend::kVariants[0];
#endif
    auto backend = std::make_unique<Backend>(options);
    g_backend = backend.get();
    benchmark::AddCustomContext("backend", HANDOFF_BENCH_BACKEND_NAME);
    register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_micro_%s: %s\n", HANDOFF_BENCH_BACKEND_NAME, error.what());
    return 2;
  }
  return 0;
}
