#include "heap_stress.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace handoff::stress {

void print_heap_tunables(std::ostream& out) {
  out << "collector tunables (environment):\n";
  HeapConfig config;
  print_tunables(out, config, HeapConfig::table());
}

HeapConfig heap_config_from_environment(const ProgramInfo& info) {
  try {
    return HeapConfig::from_environment();
  } catch (const Error& e) {
    std::cerr << info.name << ": " << e.what() << "\n";
    std::exit(2);
  }
}

void print_heap_progress(const ProgramInfo& info, const Heap& heap, std::uint64_t ops, double elapsed) {
  const HeapStats s = heap.stats();
  std::printf("[%6.1fs] %s ops %" PRIu64 " collections %" PRIu64 " retired %" PRIu64 " freed %" PRIu64
              " limbo %zu live %.1f MiB rss %.1f MiB\n",
              elapsed, info.name, ops, s.collections, s.sweeper.blocks_retired, s.sweeper.blocks_freed,
              s.allocator.limbo.size, static_cast<double>(s.live_bytes) / 1048576.0,
              static_cast<double>(s.allocator.process_rss_bytes) / 1048576.0);
  std::fflush(stdout);
}

void parked_sleep_ms(Heap& heap, unsigned ms) {
  ParkedScope parked(heap);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace handoff::stress
