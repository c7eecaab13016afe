#include <handoff/platform.h>

#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>

namespace handoff::platform {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

void* reserve_aligned(std::size_t size, std::size_t alignment) noexcept {
  // Over-reserve by `alignment`, then trim the misaligned head and the tail.
  const std::size_t span = size + alignment;
  void* raw = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (base + alignment - 1) & ~(alignment - 1);
  const std::size_t head = aligned - base;
  const std::size_t tail = span - head - size;
  if (head != 0) ::munmap(raw, head);
  if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
  return reinterpret_cast<void*>(aligned);
}

bool commit(void* p, std::size_t size) noexcept {
  return ::mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void purge(void* p, std::size_t size) noexcept {
  ::madvise(p, size, MADV_DONTNEED);
}

void release(void* p, std::size_t size) noexcept { ::munmap(p, size); }

namespace {
std::uint64_t read_backable_bytes() noexcept {
  std::uint64_t bytes = std::numeric_limits<std::uint64_t>::max();
  struct sysinfo info {};
  if (::sysinfo(&info) == 0) {
    bytes = (static_cast<std::uint64_t>(info.totalram) + info.totalswap) * info.mem_unit;
  }
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    bytes = std::min<std::uint64_t>(bytes, limit.rlim_cur);
  }
  return bytes;
}
}  // namespace

std::uint64_t backable_bytes() noexcept {
  static const std::uint64_t bytes = read_backable_bytes();
  return bytes;
}

std::size_t process_rss_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long pages_total = 0;
  unsigned long pages_resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &pages_total, &pages_resident);
  std::fclose(f);
  return n == 2 ? pages_resident * page_size() : 0;
}

std::size_t online_cpus() noexcept {
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<std::size_t>(online) : 1;
}

std::uint64_t thread_cpu_ns() noexcept {
  timespec ts{};
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

bool schedule_as_batch() noexcept {
#if defined(SCHED_BATCH)
  const sched_param param{};
  return ::sched_setscheduler(0, SCHED_BATCH, &param) == 0;  // 0: the calling thread (Linux)
#else
  return false;
#endif
}

}  // namespace handoff::platform
