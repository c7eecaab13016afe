// bench_external_rss: small wrappers owning large external buffers
// (ExternalMemory), the workload where a trigger blind to external bytes
// lets garbage buffers pile up.
//
// Keeps --live wrappers (default 64) in a rooted array; each iteration
// replaces one of them (round robin) with a new 32-byte wrapper owning a
// fresh --buffer-bytes buffer (default 1 MiB, every page written), so the
// replaced one becomes garbage. Live external bytes stay at live x buffer.
// Reports the process's peak RSS (VmHWM) and its RSS before the workload,
// and their ratio to the live external bytes, as one JSON line.
//   --uncounted   attach the buffers with a size of 0: the trigger no longer
//                 sees them (what the counting buys)
//   --check X     exit 1 unless peak RSS <= X times the live external bytes
//   --tiny        32 live, 2000 iterations (a smoke run)
#include <handoff/external_memory.h>
#include <handoff/heap.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

namespace {

struct Wrapper : handoff::Leaf {
  handoff::ExternalMemory store;
};
using Wrappers = handoff::Array<handoff::Member<Wrapper>>;

struct Options {
  std::size_t live = 64;
  std::size_t buffer_bytes = 1 << 20;
  std::size_t iterations = 20000;
  bool uncounted = false;
  double check = 0;
};

void usage(int code) {
  std::printf(
      "usage: bench_external_rss [--live N] [--buffer-bytes B] [--iterations I] [--uncounted] [--check X]\n"
      "                          [--tiny] [--help]\n\n"
      "N wrappers (default 64) each own a B-byte external buffer (default 1 MiB); I iterations\n"
      "(default 20000) each replace one. Prints peak RSS against the live external bytes (JSON).\n"
      "--uncounted attaches with size 0 (the trigger does not see the buffers); --check X exits 1\n"
      "when peak RSS exceeds X times the live external bytes; --tiny: N=32, I=2000.\n");
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    auto value = [&]() -> std::size_t {
      const char* text = next();
      char* end = nullptr;
      const unsigned long long v = std::strtoull(text, &end, 10);
      if (end == text || *end != '\0' || v == 0) usage(2);
      return static_cast<std::size_t>(v);
    };
    if (arg == "--live") {
      o.live = value();
    } else if (arg == "--buffer-bytes") {
      o.buffer_bytes = value();
    } else if (arg == "--iterations") {
      o.iterations = value();
    } else if (arg == "--uncounted") {
      o.uncounted = true;
    } else if (arg == "--check") {
      o.check = std::strtod(next(), nullptr);
    } else if (arg == "--tiny") {
      o.live = 32;
      o.iterations = 2000;
    } else if (arg == "--help") {
      usage(0);
    } else {
      usage(2);
    }
  }
  return o;
}

// A field of /proc/self/status in bytes ("VmHWM", "VmRSS").
std::uint64_t status_bytes(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::strtoull(line.c_str() + n + 1, nullptr, 10) * 1024;
    }
  }
  return 0;
}

[[gnu::noinline]] void replace(handoff::Heap& heap, Wrappers& live, std::size_t slot, const Options& o) {
  auto buffer = std::make_unique<std::byte[]>(o.buffer_bytes);
  std::memset(buffer.get(), static_cast<int>(slot & 0xff), o.buffer_bytes);  // resident, not just reserved
  Wrapper* w = heap.make<Wrapper>();
  w->store.attach(heap, std::move(buffer), o.uncounted ? 0 : o.buffer_bytes);
  live[slot] = w;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  handoff::Heap heap(handoff::HeapConfig::from_environment());
  handoff::ThreadScope attached(heap);
  handoff::Root<Wrappers> live(heap, heap.make_array<handoff::Member<Wrapper>>(o.live));
  const std::uint64_t baseline = status_bytes("VmRSS");
  for (std::size_t i = 0; i < o.iterations; ++i) replace(heap, *live, i % o.live, o);
  const std::uint64_t peak = status_bytes("VmHWM");
  const handoff::HeapStats s = heap.stats();
  const double live_external = static_cast<double>(o.live) * static_cast<double>(o.buffer_bytes);
  const double ratio = static_cast<double>(peak) / live_external;
  std::printf(
      "{\"bench\":\"external_rss\",\"live\":%zu,\"buffer_bytes\":%zu,\"iterations\":%zu,\"counted\":%s,"
      "\"live_external_bytes\":%.0f,\"rss_before\":%llu,\"peak_rss\":%llu,\"peak_over_live\":%.3f,"
      "\"peak_above_baseline_over_live\":%.3f,\"collections\":%llu,\"full_collections\":%llu,"
      "\"external_bytes_at_end\":%llu}\n",
      o.live, o.buffer_bytes, o.iterations, o.uncounted ? "false" : "true", live_external,
      static_cast<unsigned long long>(baseline), static_cast<unsigned long long>(peak), ratio,
      (static_cast<double>(peak) - static_cast<double>(baseline)) / live_external,
      static_cast<unsigned long long>(s.collections), static_cast<unsigned long long>(s.full_collections),
      static_cast<unsigned long long>(s.external_bytes));
  if (o.check > 0 && ratio > o.check) {
    std::fprintf(stderr, "bench_external_rss: peak RSS is %.2f x the live external bytes (limit %.2f)\n", ratio,
                 o.check);
    return 1;
  }
  return 0;
}
