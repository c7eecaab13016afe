// Errors users can cause: each has a code and a message naming the problem,
// and the heap works normally afterwards.
#include "test_support.h"

#include <handoff/allocator.h>
#include <handoff/block_pool.h>
#include <handoff/error.h>
#include <handoff/large_object_space.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <string>

namespace handoff {
namespace {

// Runs `f`, which must throw handoff::Error with `code`; returns what().
std::string expect_error(const std::function<void()>& f, ErrorCode code) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than handoff::Error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "did not throw " << error_code_name(code);
  return {};
}

// After an error the heap still allocates, sweeps and balances its books.
void expect_heap_still_works(Allocator& heap, ThreadAllocator& thread) {
  void* small = thread.allocate(40);
  void* large = thread.allocate(kMaxSmallSize + 1);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  test::stamp(small, 40, 1);
  thread.flush();
  auto keep_small = [&](void* c) { return c == small; };
  const SweepTotals t = heap.sweep(keep_small);
  EXPECT_GE(t.live_cells, 1u);
  EXPECT_TRUE(heap.is_live_cell(small));
  EXPECT_TRUE(test::stamp_intact(small, 40, 1));
  EXPECT_FALSE(heap.is_live_cell(large));
  EXPECT_TRUE(test::pool_identities_hold(heap.pool().stats()));
  EXPECT_TRUE(test::budget_identity_holds(heap));
  EXPECT_TRUE(test::block_identities_hold(heap));
}

TEST(Errors, AllocateZeroIsRejectedWithAClearMessage) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  const std::string what = expect_error([&] { thread.allocate(0); }, ErrorCode::kZeroSize);
  EXPECT_NE(what.find("allocate(0)"), std::string::npos) << what;
  EXPECT_EQ(what.rfind("handoff: ", 0), 0u) << what;
  EXPECT_EQ(thread.try_allocate(0), nullptr);
  EXPECT_EQ(thread.last_error(), ErrorCode::kZeroSize);
  EXPECT_EQ(heap.pool().stats().blocks_acquired, 0u) << "nothing changed";
  expect_heap_still_works(heap, thread);
}

TEST(Errors, HugeSizesOverflow) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (std::size_t size : {SIZE_MAX, SIZE_MAX - 8, SIZE_MAX - LargeObjectSpace::kHeaderSize,
                           LargeObjectSpace::max_request() + 1}) {
    const std::string what = expect_error([&] { thread.allocate(size); }, ErrorCode::kSizeOverflow);
    EXPECT_NE(what.find(std::to_string(size)), std::string::npos) << "names the size: " << what;
    EXPECT_EQ(thread.try_allocate(size), nullptr);
    EXPECT_EQ(thread.last_error(), ErrorCode::kSizeOverflow);
  }
  EXPECT_EQ(heap.stats().large.objects, 0u);
  expect_heap_still_works(heap, thread);
}

// Each failure has one code and one wording (allocation_error), which the
// throwing entry points use as they are: no layer words its own copy.
TEST(Errors, EachAllocationFailureHasOneCodeAndOneMessage) {
  struct Case {
    AllocationFailure failure;
    ErrorCode code;
    std::size_t size;
    const char* names;
  };
  const Case cases[] = {
      {AllocationFailure::kZeroSize, ErrorCode::kZeroSize, 0, "allocate(0)"},
      {AllocationFailure::kSizeOverflow, ErrorCode::kSizeOverflow, SIZE_MAX, "overflows"},
      {AllocationFailure::kUnbackable, ErrorCode::kOutOfMemory, std::size_t{1} << 50, "larger than this machine"},
      {AllocationFailure::kNoBlock, ErrorCode::kOutOfMemory, 48, "cell size 48 B"},
      {AllocationFailure::kNoMapping, ErrorCode::kOutOfMemory, 100000, "refused the mapping"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(error_code_of(c.failure), c.code);
    const Error e = allocation_error(c.failure, c.size);
    EXPECT_EQ(e.code(), c.code);
    const std::string what = e.what();
    EXPECT_NE(what.find(c.names), std::string::npos) << what;
    if (c.failure != AllocationFailure::kNoBlock) {
      EXPECT_NE(what.find(std::to_string(c.size)), std::string::npos) << what;
    }
  }
  EXPECT_EQ(LargeObjectSpace::refusal(SIZE_MAX), AllocationFailure::kSizeOverflow);
  EXPECT_EQ(LargeObjectSpace::refusal(std::size_t{1} << 50), AllocationFailure::kUnbackable);
  EXPECT_EQ(LargeObjectSpace::refusal(kMaxSmallSize + 1), AllocationFailure::kNone);

  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  EXPECT_EQ(expect_error([&] { thread.allocate(SIZE_MAX); }, ErrorCode::kSizeOverflow),
            allocation_error(AllocationFailure::kSizeOverflow, SIZE_MAX).what());
  EXPECT_EQ(expect_error([&] { thread.allocate(std::size_t{1} << 50); }, ErrorCode::kOutOfMemory),
            allocation_error(AllocationFailure::kUnbackable, std::size_t{1} << 50).what());
}

TEST(Errors, SizesTheOsRefusesAreOutOfMemory) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (std::size_t size : {std::size_t{1} << 50, LargeObjectSpace::max_request()}) {
    const std::string what = expect_error([&] { thread.allocate(size); }, ErrorCode::kOutOfMemory);
    EXPECT_NE(what.find(std::to_string(size)), std::string::npos) << what;
    EXPECT_EQ(thread.try_allocate(size), nullptr);
    EXPECT_EQ(thread.last_error(), ErrorCode::kOutOfMemory);
    EXPECT_EQ(heap.budget().charged(), 0u) << "a refused request leaves nothing charged";
  }
  expect_heap_still_works(heap, thread);
}

TEST(Errors, RefusedSizesLeaveALimitedHeapBalanced) {
  Allocator heap(test::config_with_limit(32 * kBlockSize));
  ThreadAllocator thread(heap);
  void* keep = thread.allocate(100);
  expect_error([&] { thread.allocate(std::size_t{1} << 50); }, ErrorCode::kOutOfMemory);
  expect_error([&] { thread.allocate(LargeObjectSpace::max_request()); }, ErrorCode::kOutOfMemory);
  expect_error([&] { thread.allocate(64 * kBlockSize); }, ErrorCode::kOutOfMemory);
  EXPECT_EQ(heap.budget().charged(), kBlockSize);
  thread.flush();
  EXPECT_TRUE(heap.is_live_cell(keep));
  expect_heap_still_works(heap, thread);
}

TEST(Errors, TryAllocateSuccessAfterAnErrorStillReturnsMemory) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  EXPECT_EQ(thread.last_error(), ErrorCode::kNone);
  EXPECT_EQ(thread.try_allocate(0), nullptr);
  EXPECT_NE(thread.try_allocate(32), nullptr);
  EXPECT_NE(thread.try_allocate(kMaxSmallSize + 1), nullptr);
}

TEST(Errors, CellSizeOfANonHeapPointerNamesThePointer) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  auto* cell = static_cast<char*>(thread.allocate(64));
  int on_stack = 0;
  thread.flush();
  EXPECT_EQ(heap.cell_size(cell), 64u);
  for (const void* p : {static_cast<const void*>(&on_stack), static_cast<const void*>(cell + 8),
                        static_cast<const void*>(nullptr)}) {
    const std::string what = expect_error([&] { heap.cell_size(p); }, ErrorCode::kNotAHeapPointer);
    char address[32];
    std::snprintf(address, sizeof address, "%p", p);
    EXPECT_NE(what.find(address), std::string::npos) << "message should contain " << address << ": " << what;
  }
  auto none = [](void*) { return false; };
  heap.sweep(none);
  expect_error([&] { heap.cell_size(cell); }, ErrorCode::kNotAHeapPointer);
  expect_heap_still_works(heap, thread);
}

TEST(Errors, EveryCodeHasADistinctName) {
  std::set<std::string> names;
  for (ErrorCode code : {ErrorCode::kNone, ErrorCode::kZeroSize, ErrorCode::kSizeOverflow, ErrorCode::kOutOfMemory,
                         ErrorCode::kNotAHeapPointer, ErrorCode::kBadTunable, ErrorCode::kMisuse}) {
    names.insert(error_code_name(code));
  }
  EXPECT_EQ(names.size(), 7u);
  const Error e(ErrorCode::kMisuse, "detached cache");
  EXPECT_EQ(e.code(), ErrorCode::kMisuse);
  EXPECT_EQ(std::string(e.what()), std::string("handoff: ") + error_code_name(ErrorCode::kMisuse) + ": detached cache");
}

TEST(ErrorsDeathTest, DestroyingAnAllocatorWithAnAttachedThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto* heap = new Allocator(test::default_config());
        new ThreadAllocator(*heap);  // deliberately leaked
        delete heap;
      },
      "still attached");
}

}  // namespace
}  // namespace handoff
