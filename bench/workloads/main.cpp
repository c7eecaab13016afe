// bench_workload_<family>: runs one macro workload (workloads.h) on this
// executable's allocator backend and prints one JSON line.
//
// One source, one executable per backend family (bench/CMakeLists.txt
// defines exactly one HANDOFF_BENCH_BACKEND_*): jemalloc, mimalloc and
// tcmalloc each replace the process malloc, so two of them cannot share a
// process. The workload and the backend variant are chosen at run time.
//
// The line holds wall time (steady clock around the workload only: the
// backend's construction and teardown are outside it), CPU time of the
// whole process over the same interval (getrusage: every thread, the
// concurrent sweeper's and Boehm's marker threads included), peak RSS
// (VmHWM, the whole process's life up to the end of the workload; see
// peak_rss_kib for why not ru_maxrss, which is recorded too), the
// workload's own counts and the backend's counters.
#include "backend.h"
#include "workloads.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <span>
#include <string_view>

#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
#include "backend_handoff.h"
using Backend = bench::HandoffBackend;
#elif defined(HANDOFF_BENCH_BACKEND_BOEHM)
#include "backend_boehm.h"
using Backend = bench::BoehmBackend;
#else
#include "malloc_apis.h"
using Backend = bench::MallocBackend<bench::MallocApi>;
#endif

namespace {

constexpr const char* kWorkloads[] = {"gcbench", "binary-trees", "larson", "prodcons", "steady"};

struct Options {
  std::string workload;
  bench::WorkloadParams params;
  bench::BackendOptions backend;
};

std::span<const char* const> variants() {
#if defined(HANDOFF_BENCH_BACKEND_HANDOFF) || defined(HANDOFF_BENCH_BACKEND_BOEHM)
  return Backend::kVariants;
#else
  static constexpr const char* kOne[] = {HANDOFF_BENCH_BACKEND_NAME};
  return kOne;
#endif
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: bench_workload_%s --workload NAME [options]\n\n"
               "Runs one macro workload on this executable's allocator and prints one JSON line:\n"
               "wall time, CPU time (getrusage, all threads), peak RSS (ru_maxrss), the workload's\n"
               "allocation counts and the backend's counters. bench/run_eval.py runs the matrix.\n\n"
               "  --workload NAME     gcbench | binary-trees | larson | prodcons | steady\n"
               "  --backend NAME      variant of this executable:",
               HANDOFF_BENCH_BACKEND_NAME);
  for (const char* v : variants()) std::fprintf(out, " %s", v);
  std::fprintf(out,
               " (default: the first)\n"
               "  --threads N         worker threads (default 1)\n"
               "  --depth D           binary-trees: maximum depth (default %d)\n"
               "  --ops N             larson, prodcons, steady: operations over all threads\n"
               "  --slots N           larson: slots per thread; steady: working-set bytes\n"
               "  --generations G     larson: thread generations (default 10)\n"
               "  --tiny              a smoke-sized run (well under a second)\n"
               "  --max-heap-mb M     collectors only: heap limit (handoff: HeapConfig.max_heap_bytes,\n"
               "                      boehm: GC_set_max_heap_size); out of memory = not completed\n"
               "  --growth-percent P  handoff only: HeapConfig.growth_percent\n"
               "  --live-probe        collectors only: collect where the live heap peaks and report\n"
               "                      the largest live size seen (live_bytes_probe_max)\n"
               "  --help              this text\n\n"
               "Workloads (see bench/workloads/workloads.h):\n"
               "  gcbench       Boehm's GCBench, standard parameters (stretch 18, long-lived 16,\n"
               "                500,000 doubles, trees 4..16 step 2 top-down and bottom-up)\n"
               "  binary-trees  stretch max+1, long-lived max, 2^(max-d+4) trees of depth d=4..max\n"
               "  larson        server: slot tables, threads replaced every generation\n"
               "  prodcons      producers -> bounded queue -> consumers, messages of 1..4 nodes\n"
               "  steady        steady working set (64 MiB) with churn, mixed sizes\n",
               bench::kBinaryTreesDefaultDepth);
#if defined(HANDOFF_BENCH_BACKEND_HANDOFF)
  std::fprintf(out, "\nhandoff tunables (HANDOFF_* environment variables) apply before the options above.\n");
#endif
}

[[noreturn]] void bad(const std::string& message) {
  std::fprintf(stderr, "bench_workload_%s: %s (try --help)\n", HANDOFF_BENCH_BACKEND_NAME, message.c_str());
  std::exit(2);
}

std::uint64_t number(const char* text, const char* option) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') bad(std::string(option) + " needs a non-negative integer, got '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  o.backend.variant = variants()[0];
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) bad(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (arg == "--workload") {
      o.workload = value();
    } else if (arg == "--backend") {
      o.backend.variant = value();
    } else if (arg == "--threads") {
      o.params.threads = static_cast<int>(number(value(), "--threads"));
    } else if (arg == "--depth") {
      o.params.depth = static_cast<int>(number(value(), "--depth"));
    } else if (arg == "--ops") {
      o.params.ops = number(value(), "--ops");
    } else if (arg == "--slots") {
      o.params.slots = number(value(), "--slots");
    } else if (arg == "--generations") {
      o.params.generations = static_cast<int>(number(value(), "--generations"));
    } else if (arg == "--tiny") {
      o.params.tiny = true;
    } else if (arg == "--max-heap-mb") {
      const double mb = std::strtod(value(), nullptr);
      if (!(mb > 0)) bad("--max-heap-mb needs a positive number");
      o.backend.max_heap_bytes = static_cast<std::uint64_t>(mb * 1048576.0);
    } else if (arg == "--growth-percent") {
      o.backend.growth_percent = static_cast<std::int64_t>(number(value(), "--growth-percent"));
    } else if (arg == "--live-probe") {
      o.backend.live_probe = true;
    } else {
      bad("unknown option '" + std::string(arg) + "'");
    }
  }
  bool known = false;
  for (const char* w : kWorkloads) known = known || o.workload == w;
  if (!known) bad(o.workload.empty() ? "--workload is required" : "unknown workload '" + o.workload + "'");
  known = false;
  for (const char* v : variants()) known = known || o.backend.variant == v;
  if (!known) bad("this executable has no backend '" + o.backend.variant + "'");
  if (o.params.threads < 1 || o.params.threads > 256) bad("--threads must be in 1..256");
  if (o.params.depth != 0 && (o.params.depth < 4 || o.params.depth > 24)) bad("--depth must be in 4..24");
#if !defined(HANDOFF_BENCH_BACKEND_HANDOFF) && !defined(HANDOFF_BENCH_BACKEND_BOEHM)
  if (o.backend.max_heap_bytes != 0 || o.backend.live_probe) bad("--max-heap-mb and --live-probe need a collector");
#endif
#if !defined(HANDOFF_BENCH_BACKEND_HANDOFF)
  if (o.backend.growth_percent >= 0) bad("--growth-percent applies to handoff only");
#endif
  return o;
}

bench::RunReport run(Backend& b, const Options& o) {
  if (o.workload == "gcbench") return bench::run_gcbench(b, o.params);
  if (o.workload == "binary-trees") return bench::run_binary_trees(b, o.params);
  if (o.workload == "larson") return bench::run_larson(b, o.params);
  if (o.workload == "prodcons") return bench::run_prodcons(b, o.params);
  return bench::run_steady(b, o.params);
}

// Peak resident set of this process image, from /proc/self/status (VmHWM,
// KiB). ru_maxrss is not used for the comparison: Linux carries it across
// execve, so a child of a larger process (the Python driver) reports at
// least its parent's peak; VmHWM belongs to the address space, which
// execve replaces.
long peak_rss_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::strtol(line + 6, nullptr, 10);
  }
  std::fclose(f);
  return kib;
}

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

std::string malloc_library() {
  Dl_info info{};
  void* (*process_malloc)(std::size_t) = &std::malloc;
  if (dladdr(reinterpret_cast<void*>(process_malloc), &info) == 0 || info.dli_fname == nullptr) return "unknown";
  return info.dli_fname;
}

int run_and_report(const Options& o) {
  std::string line;
  bench::Json json(line);
  json.field("workload", o.workload);
  json.field("backend", o.backend.variant);
  json.field("family", HANDOFF_BENCH_BACKEND_NAME);
  json.field("threads", o.params.threads);
  json.field("tiny", o.params.tiny);
  json.field("process_malloc", malloc_library());
  int status = 0;
  {
    Backend backend(o.backend);
    bench::RunReport report;
    std::string error;
    rusage before{};
    rusage after{};
    getrusage(RUSAGE_SELF, &before);
    const auto start = std::chrono::steady_clock::now();
    {
      typename Backend::Thread attached(backend);
      try {
        report = run(backend, o);
      } catch (const bench::OutOfMemory& oom) {
        error = std::string("out of memory: ") + oom.what();
        status = 3;
      }
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    getrusage(RUSAGE_SELF, &after);
    json.field("completed", status == 0);
    if (!error.empty()) json.field("error", error);
    json.field("wall_s", wall);
    json.field("cpu_user_s", seconds(after.ru_utime) - seconds(before.ru_utime));
    json.field("cpu_sys_s", seconds(after.ru_stime) - seconds(before.ru_stime));
    json.field("peak_rss_kib", static_cast<std::int64_t>(peak_rss_kib()));
    json.field("ru_maxrss_kib", static_cast<std::int64_t>(after.ru_maxrss));
    json.field("minor_faults", static_cast<std::int64_t>(after.ru_minflt - before.ru_minflt));
    json.field("objects", report.tally.objects);
    json.field("bytes", report.tally.bytes);
    json.field("checksum", report.tally.checksum);
    if (!report.params.empty()) json.raw("params", report.params);
    std::string counters;
    bench::Json c(counters);
    backend.counters(c);
    c.close();
    json.raw("counters", counters);
  }
  json.close();
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(HANDOFF_BENCH_BACKEND_BOEHM)
  GC_INIT();
#endif
  const Options options = parse(argc, argv);
  try {
    return run_and_report(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_workload_%s: %s\n", HANDOFF_BENCH_BACKEND_NAME, error.what());
    return 1;
  }
}
