// Counting set bits with the CPU's popcount instruction where it has one,
// without making the build machine-specific.
//
// Why not std::popcount: on x86-64 without -mpopcnt (the generic baseline
// every Debian package and this build target), std::popcount compiles to a
// call of libgcc's __popcountdi2, a dozen instructions per word. Counting a
// block's live bits (AtomBitmap::count) on every refill and sweep made that
// routine the top symbol of the churn benchmark at 256 B and 1024 B
// (papers/evaluation.md, "Churn"). Building with -mpopcnt would fix it but
// ties the binary to CPUs that have the instruction.
//
// Mechanism: the instruction is emitted by inline assembly, which needs no
// target attribute, so bit_count() stays an inline function that any caller
// (the sweep loop, AtomBitmap::count) can use; a flag read once at startup
// (CPUID, bit_count.cpp) chooses between it and the portable count. GCC's
// function multiversioning (target_clones) was the other candidate: it
// dispatches through an ifunc, which works only for whole out-of-line
// functions, so every inline caller of a count would pay a call.
//
// The flag is false until its initializer has run, and false selects the
// portable count, which is always correct: a count made from another static
// initializer before this one is only slower. It is written once, before
// main and before any thread the heap starts, so no reader races with the
// write. A build that already targets popcnt (-mpopcnt, -march=x86-64-v2
// and up) or another architecture uses std::popcount directly.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace handoff {
namespace detail {

#if (defined(__x86_64__) || defined(__i386__)) && !defined(__POPCNT__)
#define HANDOFF_POPCOUNT_DISPATCH 1
extern const bool cpu_has_popcnt;
#endif

}  // namespace detail

// Set bits in `word`.
inline std::size_t bit_count(std::uint64_t word) noexcept {
#if defined(HANDOFF_POPCOUNT_DISPATCH) && defined(__x86_64__)
  if (detail::cpu_has_popcnt) [[likely]] {
    std::uint64_t n;
    asm("popcnt %1, %0" : "=r"(n) : "rm"(word) : "cc");
    return static_cast<std::size_t>(n);
  }
#endif
  return static_cast<std::size_t>(std::popcount(word));
}

// Whether bit_count() uses the instruction (tests, the stats dump).
bool bit_count_uses_instruction() noexcept;

}  // namespace handoff
