// Platform layer: the only place that talks to the operating system about
// memory. Everything goes through libc (mmap, mprotect, madvise, munmap) so
// that AddressSanitizer and ThreadSanitizer see every call.
//
// Terms used across the project:
//   reserve  - claim address space only (PROT_NONE); costs no memory.
//   commit   - make a reserved range readable and writable.
//   purge    - hand the pages' contents back to the OS (MADV_DONTNEED) while
//              keeping the range mapped and readable: later reads see zeros.
//              This keeps block memory type-stable (see DESIGN.md).
//   release  - unmap a range entirely (used only for large objects and when
//              a pool is destroyed).
#pragma once

#include <cstddef>
#include <cstdint>

namespace handoff::platform {

// Size of an OS page, read once.
std::size_t page_size() noexcept;

// Reserves `size` bytes aligned to `alignment` (a power of two that is a
// multiple of the page size). Returns nullptr when the OS refuses.
void* reserve_aligned(std::size_t size, std::size_t alignment) noexcept;

// Makes [p, p+size) readable and writable. Returns false when the OS refuses.
bool commit(void* p, std::size_t size) noexcept;

// Drops the contents of [p, p+size) but keeps it mapped read/write.
void purge(void* p, std::size_t size) noexcept;

// Unmaps [p, p+size).
void release(void* p, std::size_t size) noexcept;

// The most memory this machine can back: physical memory plus swap, or the
// address-space limit (RLIMIT_AS) when that is lower; read once. A request
// larger than this is refused (kOutOfMemory) before any mapping is made:
// the kernel's overcommit would reserve it and leave the out-of-memory
// killer to end the program when it is written. (Requests that fit one by
// one but not together are what HANDOFF_MAX_HEAP_BYTES limits.)
std::uint64_t backable_bytes() noexcept;

// Resident set size of this process in bytes, from /proc/self/statm (0 when
// unavailable). Used by stats and stress progress lines.
std::size_t process_rss_bytes() noexcept;

// Online CPUs (sysconf, which reads a file under /sys: call it once and
// keep the answer); at least 1.
std::size_t online_cpus() noexcept;

// CPU time the calling thread has run, in nanoseconds
// (CLOCK_THREAD_CPUTIME_ID; 0 when unavailable).
std::uint64_t thread_cpu_ns() noexcept;

// Puts the calling thread under the batch scheduling policy (Linux
// SCHED_BATCH, same nice value): it gets its fair share of the CPU, but its
// wake-up never preempts the thread running on the core it lands on.
// Returns false where the policy does not exist or the OS refuses.
bool schedule_as_batch() noexcept;

}  // namespace handoff::platform
