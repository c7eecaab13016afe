// A program that uses the allocator layer alone, built against an install of
// the allocator component only: it allocates, drops everything, and lets the
// concurrent sweeper sweep, retire and free the blocks in the background.
#include <handoff/allocator.h>
#include <handoff/concurrent_sweeper.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int main() {
  handoff::Allocator heap;
  handoff::SweeperConfig config;
  config.keep_empty_blocks = 0;  // retire every empty block,
  config.keep_last_cycle = 0;    // however many the last cycle filled
  config.idle_wait_ms = 1;
  handoff::ConcurrentSweeper sweeper(heap, config);
  std::vector<void*> cells;
  {
    handoff::ThreadAllocator thread(heap);
    for (int i = 0; i < 4096; ++i) cells.push_back(thread.allocate(64));
    thread.flush();
  }
  if (!heap.is_live_cell(cells.front())) {
    std::printf("sweeper consumer: a fresh cell is not live\n");
    return 1;
  }
  // Nothing is allocating: the precondition of begin_cycle.
  sweeper.begin_cycle([](void*) { return false; });  // every cell is dead
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  handoff::SweeperStats s = sweeper.stats();
  while ((s.blocks_swept == 0 || s.blocks_freed == 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    s = sweeper.stats();
  }
  const bool ok = s.running && s.blocks_swept > 0 && s.cells_freed > 0 && s.blocks_freed > 0 &&
                  !heap.is_live_cell(cells.front());
  std::printf("sweeper consumer: %llu blocks swept, %llu cells freed, %llu blocks retired, %llu freed: %s\n",
              static_cast<unsigned long long>(s.blocks_swept), static_cast<unsigned long long>(s.cells_freed),
              static_cast<unsigned long long>(s.blocks_retired), static_cast<unsigned long long>(s.blocks_freed),
              ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
