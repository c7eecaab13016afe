// Helpers shared by the allocator tests: sanitizer-aware scaling, a config
// that ignores the environment, pattern stamps for "nothing live is lost",
// and raw reads of memory the heap keeps poisoned under ASan.
#pragma once

#include <gtest/gtest.h>
#include <handoff/allocator.h>
// Internal: the block walk below reads it. The embedder tests
// (collector/tests, public headers only) cannot see it and do without.
#if __has_include(<handoff/directory.h>)
#include <handoff/directory.h>
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace handoff::test {

#if defined(HANDOFF_SANITIZED)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// `normal` in plain builds, `sanitized` under ASan or TSan.
constexpr std::size_t scaled(std::size_t normal, std::size_t sanitized) noexcept {
  return kSanitized ? sanitized : normal;
}

// 4 threads in plain builds, 2 under a sanitizer.
constexpr unsigned thread_count() noexcept { return kSanitized ? 2u : 4u; }

// Defaults only: tests must not depend on HANDOFF_* in the environment.
inline AllocatorConfig default_config() { return AllocatorConfig{}; }

inline AllocatorConfig config_with_limit(std::size_t max_heap_bytes) {
  AllocatorConfig config;
  config.max_heap_bytes = max_heap_bytes;
  return config;
}

inline std::uint64_t pattern_word(std::uint64_t tag, std::size_t i) noexcept {
  return (tag * 0x9E3779B97F4A7C15ull) ^ (i * 0xC2B2AE3D27D4EB4Full) ^ (i << 7);
}

// Fills the first `bytes` (rounded down to words) of `p` with a pattern of `tag`.
inline void stamp(void* p, std::size_t bytes, std::uint64_t tag) noexcept {
  auto* words = static_cast<std::uint64_t*>(p);
  for (std::size_t i = 0; i < bytes / sizeof(std::uint64_t); ++i) words[i] = pattern_word(tag, i);
}

inline bool stamp_intact(const void* p, std::size_t bytes, std::uint64_t tag) noexcept {
  const auto* words = static_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i < bytes / sizeof(std::uint64_t); ++i) {
    if (words[i] != pattern_word(tag, i)) return false;
  }
  return true;
}

// Reads memory the pool may keep poisoned (cached or purged blocks) without
// tripping ASan: the test deliberately inspects what a stale reader would see.
#if defined(__SANITIZE_ADDRESS__)
#define HANDOFF_TEST_NO_ASAN __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HANDOFF_TEST_NO_ASAN __attribute__((no_sanitize_address))
#endif
#endif
#ifndef HANDOFF_TEST_NO_ASAN
#define HANDOFF_TEST_NO_ASAN
#endif

HANDOFF_TEST_NO_ASAN inline std::uint64_t raw_load_u64(const void* p) noexcept {
  return *static_cast<const volatile std::uint64_t*>(p);
}

HANDOFF_TEST_NO_ASAN inline bool raw_all_zero(const void* p, std::size_t bytes) noexcept {
  const auto* words = static_cast<const volatile std::uint64_t*>(p);
  for (std::size_t i = 0; i < bytes / sizeof(std::uint64_t); ++i) {
    if (words[i] != 0) return false;
  }
  return true;
}

// Pool identities (block_pool.h), as one predicate with a readable failure.
inline ::testing::AssertionResult pool_identities_hold(const PoolStats& p) {
  if (p.committed_bytes != p.in_use_bytes + p.cached_bytes + p.purged_bytes) {
    return ::testing::AssertionFailure() << "committed " << p.committed_bytes << " != in_use " << p.in_use_bytes
                                         << " + cached " << p.cached_bytes << " + purged " << p.purged_bytes;
  }
  if (p.reserved_bytes != p.chunks * kChunkSize) {
    return ::testing::AssertionFailure() << "reserved " << p.reserved_bytes << " != chunks " << p.chunks
                                         << " * kChunkSize";
  }
  if (p.reserved_bytes < p.committed_bytes) {
    return ::testing::AssertionFailure() << "reserved " << p.reserved_bytes << " < committed " << p.committed_bytes;
  }
  if (p.resident_bytes != p.in_use_bytes + p.cached_bytes) {
    return ::testing::AssertionFailure() << "resident " << p.resident_bytes << " != in_use + cached";
  }
  return ::testing::AssertionSuccess();
}

// budget charged == blocks in use + large mappings.
inline ::testing::AssertionResult budget_identity_holds(Allocator& heap) {
  const AllocatorStats s = heap.stats();
  const std::size_t expected = s.pool.in_use_bytes + s.large.mapped_bytes;
  if (s.budget_charged_bytes != expected) {
    return ::testing::AssertionFailure() << "budget charged " << s.budget_charged_bytes << " != in_use "
                                         << s.pool.in_use_bytes << " + large mapped " << s.large.mapped_bytes;
  }
  return ::testing::AssertionSuccess();
}

#if __has_include(<handoff/directory.h>)
// Per-block identity for every block no thread owns.
inline ::testing::AssertionResult block_identities_hold(Allocator& heap) {
  for (std::size_t cls = 0; cls < kNumSizeClasses; ++cls) {
    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    directory_of(heap, cls).for_each_block([&](MarkedBlock& block) {
      if (block.state().state == BlockState::kOwned) return;
      if (block.live_cell_count() + block.free_cell_count() != block.cell_count() ||
          block.live_cell_count() > block.cell_count()) {
        result = ::testing::AssertionFailure() << "block " << static_cast<void*>(&block) << " class " << cls
                                               << ": live " << block.live_cell_count() << " + free "
                                               << block.free_cell_count() << " != " << block.cell_count();
      }
    });
    if (!result) return result;
  }
  return ::testing::AssertionSuccess();
}
#endif

}  // namespace handoff::test
