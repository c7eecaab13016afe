// bit_count(): the dispatched popcount agrees with a bit-by-bit count, and
// uses the instruction on a CPU that has it.
#include <handoff/atom_bitmap.h>
#include <handoff/bit_count.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <string>

namespace handoff {
namespace {

std::size_t slow_count(std::uint64_t w) {
  std::size_t n = 0;
  for (int i = 0; i < 64; ++i) n += (w >> i) & 1;
  return n;
}

TEST(BitCount, AgreesWithABitByBitCount) {
  EXPECT_EQ(bit_count(0), 0u);
  EXPECT_EQ(bit_count(~std::uint64_t{0}), 64u);
  EXPECT_EQ(bit_count(std::uint64_t{1} << 63), 1u);
  std::mt19937_64 random(14);
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t w = random() & random();  // denser and sparser words than uniform
    ASSERT_EQ(bit_count(w), slow_count(w)) << std::hex << w;
  }
}

TEST(BitCount, AtomBitmapCountIsTheSumOverWords) {
  BlockBitmaps storage;
  AtomBitmap bits = storage.live();
  std::mt19937_64 random(3);
  std::size_t expected = 0;
  for (std::size_t atom = 0; atom < kAtomsPerBlock; ++atom) {
    if (random() % 3 == 0) {
      bits.set(atom);
      ++expected;
    }
  }
  EXPECT_EQ(bits.count(), expected);
}

#if defined(__x86_64__)
bool cpuinfo_lists_popcnt() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) return line.find(" popcnt") != std::string::npos;
  }
  return false;
}

TEST(BitCount, UsesTheInstructionWhereTheCpuHasIt) {
  if (!cpuinfo_lists_popcnt()) GTEST_SKIP() << "this CPU has no popcnt";
  EXPECT_TRUE(bit_count_uses_instruction());
}
#endif

}  // namespace
}  // namespace handoff
