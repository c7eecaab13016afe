#include <handoff/platform.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>

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

std::size_t process_rss_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long pages_total = 0;
  unsigned long pages_resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &pages_total, &pages_resident);
  std::fclose(f);
  return n == 2 ? pages_resident * page_size() : 0;
}

}  // namespace handoff::platform
