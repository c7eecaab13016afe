// Compiled only so that check_fast_path.sh can disassemble the allocation
// fast path exactly as a user's -O2/-O3 code inlines it.
#include <handoff/allocator.h>

extern "C" void* handoff_probe_thread_allocate(handoff::ThreadAllocator& thread, std::size_t size) {
  return thread.allocate(size);
}

extern "C" void* handoff_probe_local_allocate(handoff::LocalAllocator& local) { return local.allocate(); }
