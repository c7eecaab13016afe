// A program outside the project, built against the installed library.
#include <handoff/allocator.h>

#include <cstdio>

int main() {
  handoff::Allocator heap;
  int ok = 0;
  {
    handoff::ThreadAllocator thread(heap);
    void* p = thread.allocate(64);
    thread.flush();
    ok = heap.is_live_cell(p) ? 1 : 0;
  }
  std::printf("consumer: allocation %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
