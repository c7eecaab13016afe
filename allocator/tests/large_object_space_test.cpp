// The large-object space: own mappings, interior lookups, sweeping, the
// shared heap budget.
#include "test_support.h"

#include <handoff/large_object_space.h>
#include <handoff/platform.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

namespace handoff {
namespace {

const std::size_t kSizes[] = {kMaxSmallSize + 1, std::size_t{1} << 20, std::size_t{10} << 20};

std::size_t expected_mapping(std::size_t size) {
  const std::size_t page = platform::page_size();
  return (size + LargeObjectSpace::kHeaderSize + page - 1) / page * page;
}

TEST(LargeObjectSpace, ObjectsAreWritableAndFoundFromAnyInteriorPointer) {
  HeapBudget budget(0);
  LargeObjectSpace space(budget);
  std::vector<char*> objects;
  for (std::size_t size : kSizes) {
    auto* p = static_cast<char*>(space.allocate(size).cell);
    ASSERT_NE(p, nullptr) << "size " << size;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u);
    std::memset(p, 0xC3, size);
    test::stamp(p, size, size);
    objects.push_back(p);
  }
  for (std::size_t i = 0; i < objects.size(); ++i) {
    char* p = objects[i];
    const std::size_t size = kSizes[i];
    EXPECT_TRUE(test::stamp_intact(p, size, size));
    EXPECT_EQ(space.size_of(p), size);
    EXPECT_EQ(space.size_of(p + 1), 0u) << "size_of wants the object start";
    for (std::size_t off : {std::size_t{0}, std::size_t{1}, size / 3, size / 2, size - 1}) {
      EXPECT_EQ(space.find(p + off), p) << "size " << size << " offset " << off;
    }
    EXPECT_EQ(space.find(p + size), nullptr) << "one past the end";
    EXPECT_EQ(space.find(p - 1), nullptr) << "the header is not the object";
    EXPECT_EQ(space.find(p - LargeObjectSpace::kHeaderSize), nullptr);
  }
  int local = 0;
  EXPECT_EQ(space.find(&local), nullptr);
  EXPECT_EQ(space.find(nullptr), nullptr);

  const LargeObjectStats s = space.stats();
  EXPECT_EQ(s.objects, 3u);
  std::size_t bytes = 0;
  std::size_t mapped = 0;
  for (std::size_t size : kSizes) {
    bytes += size;
    mapped += expected_mapping(size);
  }
  EXPECT_EQ(s.object_bytes, bytes);
  EXPECT_EQ(s.mapped_bytes, mapped);
  EXPECT_EQ(s.allocated, 3u);
  EXPECT_EQ(budget.charged(), mapped) << "the budget is charged for whole mappings";

  std::map<void*, std::size_t> listed;
  space.for_each_object([&](void* object, std::size_t size) { listed[object] = size; });
  EXPECT_EQ(listed.size(), 3u);
  for (std::size_t i = 0; i < objects.size(); ++i) EXPECT_EQ(listed[objects[i]], kSizes[i]);
}

TEST(LargeObjectSpace, BoundsCoverEveryObjectItMaps) {
  HeapBudget budget(0);
  LargeObjectSpace space(budget);
  EXPECT_FALSE(space.bounds().contains(reinterpret_cast<std::uintptr_t>(&space)));
  std::vector<char*> objects;
  for (std::size_t size : kSizes) objects.push_back(static_cast<char*>(space.allocate(size).cell));
  const AddressBounds bounds = space.bounds();
  for (std::size_t i = 0; i < objects.size(); ++i) {
    ASSERT_NE(objects[i], nullptr);
    EXPECT_TRUE(bounds.contains(reinterpret_cast<std::uintptr_t>(objects[i])));
    EXPECT_TRUE(bounds.contains(reinterpret_cast<std::uintptr_t>(objects[i]) + kSizes[i] - 1));
  }
}

TEST(LargeObjectSpace, SweepFreesTheDeadAndUnchargesThem) {
  HeapBudget budget(0);
  LargeObjectSpace space(budget);
  std::vector<char*> objects;
  for (std::size_t size : kSizes) objects.push_back(static_cast<char*>(space.allocate(size).cell));
  char* keep = objects[1];
  test::stamp(keep, kSizes[1], 99);
  std::size_t calls = 0;
  auto is_live = [&](void* p) { ++calls; return p == keep; };
  const SweepCounts c = space.sweep(is_live);
  EXPECT_EQ(calls, 3u);
  EXPECT_EQ(c.live_cells, 1u);
  EXPECT_EQ(c.freed_cells, 2u);
  const LargeObjectStats s = space.stats();
  EXPECT_EQ(s.objects, 1u);
  EXPECT_EQ(s.object_bytes, kSizes[1]);
  EXPECT_EQ(s.mapped_bytes, expected_mapping(kSizes[1]));
  EXPECT_EQ(s.freed, 2u);
  EXPECT_EQ(budget.charged(), expected_mapping(kSizes[1]));
  EXPECT_EQ(space.find(objects[0]), nullptr) << "freed";
  EXPECT_EQ(space.find(objects[2] + 100), nullptr) << "freed";
  EXPECT_EQ(space.size_of(objects[2]), 0u);
  EXPECT_EQ(space.find(keep + 5), keep);
  EXPECT_TRUE(test::stamp_intact(keep, kSizes[1], 99));
  auto none = [](void*) { return false; };
  space.sweep(none);
  EXPECT_EQ(space.stats().objects, 0u);
  EXPECT_EQ(budget.charged(), 0u);
}

TEST(LargeObjectSpace, ObjectsAllocatedDuringASweepAreKept) {
  HeapBudget budget(0);
  LargeObjectSpace space(budget);
  void* old_object = space.allocate(kMaxSmallSize + 1).cell;
  void* born_during_sweep = nullptr;
  auto is_live = [&](void*) {
    if (born_during_sweep == nullptr) born_during_sweep = space.allocate(kMaxSmallSize + 1).cell;
    return false;
  };
  const SweepCounts c = space.sweep(is_live);
  EXPECT_EQ(c.freed_cells, 1u);
  ASSERT_NE(born_during_sweep, nullptr);
  EXPECT_EQ(space.find(old_object), nullptr);
  EXPECT_EQ(space.find(born_during_sweep), born_during_sweep);
}

TEST(LargeObjectSpace, BudgetAndFailureInjectorRefuseCleanly) {
  HeapBudget budget(std::size_t{1} << 20);
  LargeObjectSpace space(budget);
  EXPECT_EQ(space.allocate(std::size_t{2} << 20).failure, AllocationFailure::kNoMapping) << "over the heap limit";
  EXPECT_EQ(budget.charged(), 0u);
  void* small = space.allocate(kMaxSmallSize + 1).cell;
  ASSERT_NE(small, nullptr);
  budget.fail_nth_charge(1);
  EXPECT_EQ(space.allocate(kMaxSmallSize + 1).cell, nullptr) << "injected failure";
  EXPECT_NE(space.allocate(kMaxSmallSize + 1).cell, nullptr) << "the injector fires once";
  EXPECT_EQ(space.stats().objects, 2u);
  EXPECT_EQ(budget.charged(), space.stats().mapped_bytes);
}

TEST(LargeObjectSpace, RequestsTheOsRefusesReturnNullAndUncharge) {
  HeapBudget budget(0);
  LargeObjectSpace space(budget);
  EXPECT_EQ(space.allocate(std::size_t{1} << 50).failure, AllocationFailure::kUnbackable);
  EXPECT_EQ(space.allocate(LargeObjectSpace::max_request()).cell, nullptr);
  EXPECT_EQ(budget.charged(), 0u);
  EXPECT_EQ(space.stats().objects, 0u);
  EXPECT_LT(LargeObjectSpace::max_request(), SIZE_MAX - LargeObjectSpace::kHeaderSize);
}

}  // namespace
}  // namespace handoff
