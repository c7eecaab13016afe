// alloc_reclaim: allocate N objects of S bytes, write one word into each,
// then reclaim all of them; the time per object is the result.
//
// One source, one executable per backend. jemalloc, mimalloc and tcmalloc
// each export malloc/free, so linking two of them into one process would
// make one of them the process malloc and confound the comparison. The
// backend is chosen at compile time (bench/CMakeLists.txt defines exactly
// one HANDOFF_BENCH_BACKEND_* macro), and each backend is used the way its
// users deploy it:
//
//   glibc      std::malloc / std::free, nothing linked
//   jemalloc   std::malloc / std::free, libjemalloc linked (replaces malloc)
//   tcmalloc   std::malloc / std::free, libtcmalloc_minimal linked (same)
//   mimalloc   mi_malloc / mi_free
//   tbbmalloc  scalable_malloc / scalable_free
//   boehm      GC_MALLOC / GC_FREE (bdw-gc used malloc-style)
//   handoff    ThreadAllocator::allocate, then flush + Allocator::sweep
//   handoff-lazy  same allocation, then flush + begin_lazy_sweep: the next
//              iteration's refills sweep the blocks they claim (JSC's lazy
//              sweeping), finish_lazy_sweep runs after the timing loop
//
// Timed region per iteration = allocation of N + one word written into each
// object + reclaim of all N. Every backend keeps the N pointers in the same
// preallocated std::vector<void*>, so the bookkeeping costs the same. Two
// untimed warm-up rounds precede the timing loop, so every backend is
// measured in its steady state rather than paying first-touch page faults
// in one iteration of a few: the first round gets memory from the OS, and
// mimalloc's second round (its first reuse of the pages it retired) runs
// about 7x slower than its third and later ones. A backend that returns
// memory to the OS after every round (glibc trims its heap top; tbbmalloc
// releases empty slabs) pays the page faults in every round: that is its
// steady state as deployed.
//
// Benchmark names carry the backend, alloc_reclaim/<backend>/<S>/<N>, so
// results from the separate executables merge (bench/run_alloc_bench.py).
// The ns per object is 1e9 / items_per_second (real time).

#include <benchmark/benchmark.h>

#include <dlfcn.h>
#include <gnu/libc-version.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
#include <handoff/allocator.h>

#include <sstream>
#elif defined(HANDOFF_BENCH_BACKEND_JEMALLOC)
#include <jemalloc/jemalloc.h>
#elif defined(HANDOFF_BENCH_BACKEND_TCMALLOC)
#include <gperftools/tcmalloc.h>
#elif defined(HANDOFF_BENCH_BACKEND_MIMALLOC)
#include <mimalloc.h>
#elif defined(HANDOFF_BENCH_BACKEND_TBBMALLOC)
#include <tbb/scalable_allocator.h>
#include <tbb/version.h>
#elif defined(HANDOFF_BENCH_BACKEND_BOEHM)
#include <gc/gc.h>
#elif !defined(HANDOFF_BENCH_BACKEND_GLIBC)
#error "define exactly one HANDOFF_BENCH_BACKEND_* (see bench/CMakeLists.txt)"
#endif

namespace {

constexpr std::int64_t kObjects = 100000;           // N of the main benchmark
constexpr std::int64_t kFastPathObjects = 1000;     // N of fast_path/handoff
constexpr std::int64_t kSizes[] = {16, 32, 64, 128, 256, 1024};
constexpr int kWarmupRounds = 2;                    // untimed; see the top comment

[[noreturn, maybe_unused]] void die(const char* what) {
  std::fprintf(stderr, "bench_alloc_%s: %s\n", HANDOFF_BENCH_BACKEND_NAME, what);
  std::exit(2);
}

// Where the process's malloc comes from: proves that linking jemalloc or
// tcmalloc really replaced it (and that nothing was LD_PRELOADed into the
// other programs).
std::string malloc_library() {
  Dl_info info{};
  void* (*process_malloc)(std::size_t) = &std::malloc;
  if (dladdr(reinterpret_cast<void*>(process_malloc), &info) == 0 || info.dli_fname == nullptr) return "unknown";
  return info.dli_fname;
}

// ---- backends ---------------------------------------------------------
// Each malloc-style backend is a pair of static functions; the loop below
// is the same template for all of them.

#if defined(HANDOFF_BENCH_BACKEND_GLIBC) || defined(HANDOFF_BENCH_BACKEND_JEMALLOC) || \
    defined(HANDOFF_BENCH_BACKEND_TCMALLOC)
struct Api {
  static void* allocate(std::size_t size) noexcept { return std::malloc(size); }
  static void release(void* p) noexcept { std::free(p); }
};
#elif defined(HANDOFF_BENCH_BACKEND_MIMALLOC)
struct Api {
  static void* allocate(std::size_t size) noexcept { return mi_malloc(size); }
  static void release(void* p) noexcept { mi_free(p); }
};
#elif defined(HANDOFF_BENCH_BACKEND_TBBMALLOC)
struct Api {
  static void* allocate(std::size_t size) noexcept { return scalable_malloc(size); }
  static void release(void* p) noexcept { scalable_free(p); }
};
#elif defined(HANDOFF_BENCH_BACKEND_BOEHM)
struct Api {
  static void* allocate(std::size_t size) noexcept { return GC_MALLOC(size); }
  static void release(void* p) noexcept { GC_FREE(p); }
};
#endif

// Which library, which version, and whether the link did what we meant.
// Returns the expected substring of malloc_library(), or nullptr.
const char* describe_backend(std::string& version) {
#if defined(HANDOFF_BENCH_BACKEND_GLIBC)
  version = std::string("glibc ") + gnu_get_libc_version();
  return "libc.so";
#elif defined(HANDOFF_BENCH_BACKEND_JEMALLOC)
  const char* v = nullptr;
  std::size_t len = sizeof v;
  if (mallctl("version", &v, &len, nullptr, 0) != 0 || v == nullptr) die("mallctl(\"version\") failed");
  version = v;
  return "libjemalloc";
#elif defined(HANDOFF_BENCH_BACKEND_TCMALLOC)
  version = tc_version(nullptr, nullptr, nullptr);
  return "libtcmalloc_minimal";
#elif defined(HANDOFF_BENCH_BACKEND_MIMALLOC)
  const int v = mi_version();
  version = "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
  return "libmimalloc";  // libmimalloc overrides malloc too once linked
#elif defined(HANDOFF_BENCH_BACKEND_TBBMALLOC)
  version = "oneTBB " TBB_VERSION_STRING;
  return nullptr;
#elif defined(HANDOFF_BENCH_BACKEND_BOEHM)
  const unsigned v = GC_get_version();
  version = "bdw-gc " + std::to_string(v >> 16) + "." + std::to_string((v >> 8) & 0xff) + "." +
            std::to_string(v & 0xff);
  return nullptr;
#else
  version = "handoff (this tree)";
  return nullptr;
#endif
}

// ---- the benchmarks ---------------------------------------------------

std::vector<void*> make_cell_table(std::size_t count) {
  std::vector<void*> cells(count);
  benchmark::DoNotOptimize(cells.data());  // escapes: stores into it stay
  return cells;
}

template <class Allocate>
[[gnu::always_inline]] inline void allocate_all(std::vector<void*>& cells, std::size_t size, Allocate&& allocate) {
  const std::size_t count = cells.size();
  for (std::size_t i = 0; i < count; ++i) {
    void* p = allocate(size);
    *static_cast<std::uintptr_t*>(p) = i;  // touch it the same way everywhere
    cells[i] = p;
  }
}

void set_result(benchmark::State& state, std::size_t count) {
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
  state.counters["objects"] = static_cast<double>(count);
}

#if !defined(HANDOFF_BENCH_BACKEND_HANDOFF)

void alloc_reclaim(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> cells = make_cell_table(static_cast<std::size_t>(state.range(1)));
#if defined(HANDOFF_BENCH_BACKEND_BOEHM)
  // The table lives in glibc's heap, which Boehm does not scan; without this
  // a collection in the middle of the allocation loop would free objects we
  // then GC_FREE a second time.
  GC_add_roots(cells.data(), cells.data() + cells.size());
  const std::size_t collections_before = GC_get_gc_no();
#endif
  auto round = [&] {
    allocate_all(cells, size, [](std::size_t s) {
      void* p = Api::allocate(s);
      if (p == nullptr) [[unlikely]] die("out of memory");
      return p;
    });
    for (void* p : cells) Api::release(p);
    benchmark::ClobberMemory();
  };
  for (int i = 0; i < kWarmupRounds; ++i) round();
  for (auto _ : state) round();
  set_result(state, cells.size());
#if defined(HANDOFF_BENCH_BACKEND_BOEHM)
  state.counters["collections"] = static_cast<double>(GC_get_gc_no() - collections_before);
  GC_remove_roots(cells.data(), cells.data() + cells.size());
#endif
}

void register_benchmarks() {
  const std::string name = std::string("alloc_reclaim/") + HANDOFF_BENCH_BACKEND_NAME;
  auto* b = benchmark::RegisterBenchmark(name.c_str(), alloc_reclaim);
  for (std::int64_t size : kSizes) b->Args({size, kObjects});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

#else  // handoff

bool all_dead(void*) { return false; }

// After the last round: every cell must be free again (the predicate said
// all dead), and the block count tells whether the heap grew.
void check_and_count(benchmark::State& state, const handoff::Allocator& heap) {
  const handoff::AllocatorStats stats = heap.stats();
  std::size_t blocks = 0;
  std::size_t live = 0;
  for (const auto& c : stats.classes) {
    blocks += c.blocks;
    live += c.live_cells;
  }
  if (live != 0) die("cells still live after reclaiming every object");
  const double rounds = static_cast<double>(state.iterations() + kWarmupRounds);
  state.counters["blocks"] = static_cast<double>(blocks);
  state.counters["refills_per_round"] = static_cast<double>(stats.counters.refills) / rounds;
}

// Eager: the reclaim of iteration k is a whole-heap sweep at its end.
void alloc_reclaim_eager(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> cells = make_cell_table(static_cast<std::size_t>(state.range(1)));
  auto pred = [](void* cell) { return all_dead(cell); };
  handoff::Allocator heap;
  {
    handoff::ThreadAllocator thread(heap);
    auto round = [&] {
      allocate_all(cells, size, [&](std::size_t s) { return thread.allocate(s); });
      thread.flush();
      const handoff::SweepTotals totals = heap.sweep(pred);
      benchmark::ClobberMemory();
      return totals;
    };
    for (int i = 0; i < kWarmupRounds; ++i) {
      const handoff::SweepTotals totals = round();
      if (totals.freed_cells != cells.size() || totals.live_cells != 0) die("eager sweep freed the wrong count");
    }
    for (auto _ : state) round();
  }
  set_result(state, cells.size());
  check_and_count(state, heap);
}

// Lazy: iteration k marks every block UNSWEPT; iteration k+1's refills
// sweep the blocks they claim, so reclaim is paid inside allocation (JSC's
// lazy sweeping). begin_lazy_sweep requires the previous lazy cycle to be
// finished (allocator.h), so each iteration ends with finish (of the cycle
// its own allocations consumed) and then begin. In the steady state the
// allocations claim every UNSWEPT block, so finish only walks state words;
// the lazily_swept counter shows which share of the reclaim the refills did.
void alloc_reclaim_lazy(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<void*> cells = make_cell_table(static_cast<std::size_t>(state.range(1)));
  auto pred = [](void* cell) { return all_dead(cell); };  // outlives every refill
  handoff::Allocator heap;
  std::size_t swept_by_finish = 0;
  {
    handoff::ThreadAllocator thread(heap);
    auto round = [&] {
      allocate_all(cells, size, [&](std::size_t s) { return thread.allocate(s); });
      thread.flush();
      const handoff::SweepTotals leftover = heap.finish_lazy_sweep();
      heap.begin_lazy_sweep(pred);
      benchmark::ClobberMemory();
      return leftover.freed_cells;
    };
    for (int i = 0; i < kWarmupRounds; ++i) round();  // leaves the blocks UNSWEPT for iteration 1
    for (auto _ : state) swept_by_finish += round();
    heap.finish_lazy_sweep();  // the last cycle, outside the timing
  }
  set_result(state, cells.size());
  check_and_count(state, heap);
  const double reclaimed = static_cast<double>(state.iterations()) * static_cast<double>(cells.size());
  state.counters["lazily_swept"] = 1.0 - static_cast<double>(swept_by_finish) / reclaimed;
}

void register_benchmarks() {
  struct Variant {
    const char* name;
    void (*run)(benchmark::State&);
  };
  for (const Variant v : {Variant{"alloc_reclaim/handoff", alloc_reclaim_eager},
                          Variant{"alloc_reclaim/handoff-lazy", alloc_reclaim_lazy}}) {
    auto* b = benchmark::RegisterBenchmark(v.name, v.run);
    for (std::int64_t size : kSizes) b->Args({size, kObjects});
    b->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  // The fast path with little around it: a batch small enough to stay in
  // cache (1000 objects, a few blocks), still reclaimed inside the timing so
  // that memory does not grow.
  auto* fast = benchmark::RegisterBenchmark("fast_path/handoff", alloc_reclaim_eager);
  for (std::int64_t size : kSizes) fast->Args({size, kFastPathObjects});
  fast->UseRealTime()->Unit(benchmark::kMicrosecond);
}

#endif

void print_help() {
  std::printf(
      "bench_alloc_%s: allocate N objects of S bytes (S in 16, 32, 64, 128, 256, 1024;\n"
      "N = %lld), write one word into each, reclaim them all; time per object.\n"
      "Backend of this executable: %s. One executable per backend, because\n"
      "jemalloc, mimalloc and tcmalloc each replace the process malloc.\n"
      "Benchmarks: alloc_reclaim/<backend>/<S>/<N>%s.\n"
      "ns per object = 1e9 / items_per_second (real time).\n"
      "bench/run_alloc_bench.py runs every backend interleaved and merges the JSON.\n\n",
      HANDOFF_BENCH_BACKEND_NAME, static_cast<long long>(kObjects), HANDOFF_BENCH_BACKEND_NAME,
#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
      "\n  (backends handoff and handoff-lazy) and fast_path/handoff/<S>/1000"
#else
      ""
#endif
  );
#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
  std::printf("handoff tunables (environment variables, current values):\n");
  std::ostringstream tunables;
  handoff::print_tunables(tunables, handoff::AllocatorConfig::from_environment(), handoff::AllocatorConfig::table());
  std::printf("%s\n", tunables.str().c_str());
#endif
  std::printf("Google Benchmark options:\n");
  benchmark::PrintDefaultHelp();
}

void add_context() {
  std::string version;
  const char* expected = describe_backend(version);
  const std::string library = malloc_library();
  if (expected != nullptr && library.find(expected) == std::string::npos) {
    std::fprintf(stderr, "bench_alloc_%s: the process malloc comes from %s, expected %s; check the link line\n",
                 HANDOFF_BENCH_BACKEND_NAME, library.c_str(), expected);
    std::exit(2);
  }
  benchmark::AddCustomContext("backend", HANDOFF_BENCH_BACKEND_NAME);
  benchmark::AddCustomContext("backend_version", version);
  benchmark::AddCustomContext("process_malloc", library);
#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
  std::ostringstream tunables;
  handoff::tunables_json(tunables, handoff::AllocatorConfig::from_environment(), handoff::AllocatorConfig::table());
  benchmark::AddCustomContext("handoff_tunables", tunables.str());
#endif
#if defined(__clang__)
  benchmark::AddCustomContext("compiler", "clang " __clang_version__);
#else
  benchmark::AddCustomContext("compiler", "gcc " __VERSION__);
#endif
#if defined(NDEBUG)
  benchmark::AddCustomContext("bench_build_type", "release (NDEBUG)");
#else
  benchmark::AddCustomContext("bench_build_type", "debug (assertions on)");
#endif
}

}  // namespace

int main(int argc, char** argv) {
#if defined(HANDOFF_BENCH_BACKEND_BOEHM)
  GC_INIT();
#endif
  try {
    benchmark::Initialize(&argc, argv, print_help);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    add_context();
    register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& error) {  // e.g. a malformed HANDOFF_* variable
    die(error.what());
  }
  return 0;
}
