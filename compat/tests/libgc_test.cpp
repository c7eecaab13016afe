// handoff's libgc against gc.h's documented behaviour. Each test runs in its
// own process (CTest), so each gets a fresh heap; sweeping is synchronous
// (HANDOFF_SYNC_SWEEP, set before the heap exists) so that GC_base of a
// collected object reads NULL right after GC_gcollect.
#define GC_THREADS 1
#define GC_NO_THREAD_REDIRECTS 1
#include <gc/gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_typed.h>

#include <gtest/gtest.h>

#include "libgc_test_support.h"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Pointers kept where the collector cannot see them.
std::uintptr_t hide(const void* p) { return ~reinterpret_cast<std::uintptr_t>(p); }
void* reveal(std::uintptr_t h) { return reinterpret_cast<void*>(~h); }

using handoff::libgc_test::clear_stack;
using handoff::libgc_test::collect;

class LibGc : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("HANDOFF_SYNC_SWEEP", "1", 1);
    GC_INIT();
  }
};

// `count` objects of `size` bytes from `alloc`, hidden in malloc memory.
template <class Alloc>
[[gnu::noinline]] std::vector<std::uintptr_t> allocate_hidden(std::size_t count, std::size_t size, Alloc alloc) {
  std::vector<std::uintptr_t> hidden;
  for (std::size_t i = 0; i < count; ++i) hidden.push_back(hide(alloc(size)));
  return hidden;
}

std::size_t count_alive(const std::vector<std::uintptr_t>& hidden) {
  std::size_t alive = 0;
  for (std::uintptr_t h : hidden) alive += GC_base(reveal(h)) != nullptr ? 1 : 0;
  return alive;
}

void* global_root = nullptr;  // in .bss: a data-segment root

}  // namespace

TEST_F(LibGc, MallocReturnsZeroedMemoryEvenWhenCellsAreReused) {
  for (int round = 0; round < 3; ++round) {
    auto hidden = allocate_hidden(2000, 48, [](std::size_t n) {
      void* p = GC_malloc(n);
      std::memset(p, 0xab, GC_size(p));
      return p;
    });
    collect();
    for (int i = 0; i < 2000; ++i) {
      auto* p = static_cast<unsigned char*>(GC_malloc(48));
      ASSERT_NE(p, nullptr);
      for (std::size_t k = 0; k < GC_size(p); ++k) ASSERT_EQ(p[k], 0) << "byte " << k;
    }
  }
}

TEST_F(LibGc, SizeZeroGivesDistinctUsableObjects) {
  void* a = GC_malloc(0);
  void* b = GC_malloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_GE(GC_size(a), 1u);
  EXPECT_EQ(GC_base(a), a);
}

TEST_F(LibGc, SizeAndBaseReferToTheClientObject) {
  for (std::size_t n : {1u, 7u, 8u, 16u, 100u, 1000u, 9000u, 100000u, 3000000u}) {
    auto* p = static_cast<char*>(GC_malloc(n));
    ASSERT_NE(p, nullptr);
    EXPECT_GE(GC_size(p), n);
    EXPECT_EQ(GC_base(p), p);
    EXPECT_EQ(GC_base(p + n / 2), p);
    EXPECT_EQ(GC_base(p + n), p) << "one past the end still belongs to the object";
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 8, 0u);
  }
}

TEST_F(LibGc, BaseOfMemoryOutsideTheHeapIsNull) {
  int local = 0;
  void* m = std::malloc(64);
  EXPECT_EQ(GC_base(&local), nullptr);
  EXPECT_EQ(GC_base(&global_root), nullptr);
  EXPECT_EQ(GC_base(m), nullptr);
  EXPECT_EQ(GC_base(nullptr), nullptr);
  std::free(m);
}

TEST_F(LibGc, UnreachableObjectsAreCollected) {
  auto hidden = allocate_hidden(1000, 64, GC_malloc);
  EXPECT_EQ(count_alive(hidden), 1000u);
  collect();
  EXPECT_LT(count_alive(hidden), 50u);
}

TEST_F(LibGc, DataSegmentRootsKeepObjectsAlive) {
  global_root = GC_malloc(64);
  static_cast<void**>(global_root)[0] = GC_malloc(64);  // reachable through it
  const std::uintptr_t inner = hide(static_cast<void**>(global_root)[0]);
  for (int i = 0; i < 3; ++i) collect();
  EXPECT_EQ(GC_base(global_root), global_root);
  EXPECT_NE(GC_base(reveal(inner)), nullptr);
  global_root = nullptr;
}

TEST_F(LibGc, InteriorPointersKeepObjectsAlive) {
  auto* p = static_cast<char*>(GC_malloc(256));
  global_root = p + 100;
  const std::uintptr_t h = hide(p);
  p = nullptr;
  collect();
  EXPECT_EQ(GC_base(reveal(h)), reveal(h));
  global_root = static_cast<char*>(reveal(h)) + 256;  // one past the end
  collect();
  EXPECT_EQ(GC_base(reveal(h)), reveal(h));
  global_root = nullptr;
}

TEST_F(LibGc, AtomicObjectsAreNeverScanned) {
  auto** atomic = static_cast<void**>(GC_malloc_atomic(64));
  auto** normal = static_cast<void**>(GC_malloc(64));
  global_root = atomic;
  void* holder_root = normal;
  (void)holder_root;
  auto hidden_atomic = allocate_hidden(100, 32, GC_malloc);
  auto hidden_normal = allocate_hidden(100, 32, GC_malloc);
  for (int i = 0; i < 100; ++i) {
    // Each object is referenced from one of the two holders only.
    if (i < 8) {
      atomic[i] = reveal(hidden_atomic[i]);
      normal[i] = reveal(hidden_normal[i]);
    }
  }
  static void* normal_root;
  normal_root = normal;
  collect();
  ASSERT_EQ(GC_base(normal_root), normal_root) << "the holder itself is rooted";
  for (int i = 0; i < 8; ++i) {
    EXPECT_NE(GC_base(reveal(hidden_normal[i])), nullptr) << "referenced from a GC_malloc object";
  }
  std::size_t survivors = 0;
  for (int i = 0; i < 8; ++i) survivors += GC_base(reveal(hidden_atomic[i])) != nullptr ? 1 : 0;
  EXPECT_EQ(survivors, 0u) << "references from GC_malloc_atomic memory keep nothing alive";
  global_root = nullptr;
  normal_root = nullptr;
}

TEST_F(LibGc, UncollectableObjectsLiveUntilFreed) {
  auto hidden = allocate_hidden(100, 40, GC_malloc_uncollectable);
  auto** first = static_cast<void**>(reveal(hidden[0]));
  first[0] = GC_malloc(16);  // scanned: uncollectable objects are roots
  const std::uintptr_t child = hide(first[0]);
  first = nullptr;
  collect();
  EXPECT_EQ(count_alive(hidden), 100u);
  EXPECT_NE(GC_base(reveal(child)), nullptr);
  for (std::uintptr_t h : hidden) GC_free(reveal(h));
  collect();
  EXPECT_LT(count_alive(hidden), 10u);
}

TEST_F(LibGc, ReallocFollowsTheAnsiRules) {
  auto* p = static_cast<char*>(GC_realloc(nullptr, 10));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(GC_base(p), p);
  std::memcpy(p, "abcdefghi", 10);
  auto* q = static_cast<char*>(GC_realloc(p, 5000));
  ASSERT_NE(q, nullptr);
  EXPECT_STREQ(q, "abcdefghi");
  for (std::size_t i = 10; i < 5000; ++i) ASSERT_EQ(q[i], 0) << "grown part is zeroed at " << i;
  auto* r = static_cast<char*>(GC_realloc(q, 3));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(std::memcmp(r, "abc", 3), 0);
  EXPECT_EQ(GC_realloc(r, 0), nullptr);
  // The kind is kept.
  void* atomic = GC_malloc_atomic(16);
  void* grown = GC_realloc(atomic, 4096);
  size_t size = 0;
  EXPECT_EQ(GC_get_kind_and_size(grown, &size), 0);  // GC_I_PTRFREE
  EXPECT_GE(size, 4096u);
}

TEST_F(LibGc, FreeOfNullIsANoOpAndForeignPointersAreReported) {
  GC_free(nullptr);
  static std::string warnings;
  GC_set_warn_proc([](char* message, GC_word) { warnings += message; });
  int local = 0;
  GC_free(&local);
  EXPECT_NE(warnings.find("not an object of the GC heap"), std::string::npos);
  auto* p = static_cast<char*>(GC_malloc(64));
  GC_free(p + 8);
  EXPECT_NE(warnings.find("not the start of a GC object"), std::string::npos);
}

TEST_F(LibGc, WarnProcRoundTrips) {
  GC_warn_proc old = GC_get_warn_proc();
  ASSERT_NE(old, nullptr);
  GC_set_warn_proc(GC_ignore_warn_proc);
  EXPECT_EQ(GC_get_warn_proc(), GC_ignore_warn_proc);
  GC_set_warn_proc(old);
}

TEST_F(LibGc, StrdupAndStrndupCopyIntoTheHeap) {
  char* s = GC_strdup("handoff");
  ASSERT_NE(s, nullptr);
  EXPECT_STREQ(s, "handoff");
  EXPECT_EQ(GC_base(s), s);
  char* t = GC_strndup("handoff", 4);
  EXPECT_STREQ(t, "hand");
  EXPECT_EQ(GC_strdup(nullptr), nullptr);
}

TEST_F(LibGc, AddedRootsKeepObjectsAliveUntilRemoved) {
  auto** area = static_cast<void**>(std::calloc(16, sizeof(void*)));
  GC_add_roots(area, area + 16);
  auto hidden = allocate_hidden(16, 32, GC_malloc);
  for (int i = 0; i < 16; ++i) area[i] = reveal(hidden[i]);
  collect();
  EXPECT_EQ(count_alive(hidden), 16u);
  GC_remove_roots(area, area + 16);
  collect();
  EXPECT_LT(count_alive(hidden), 2u);
  std::free(area);
}

TEST_F(LibGc, DisableDefersCollectionsAndEnableResumesThem) {
  const GC_word before = GC_get_gc_no();
  GC_disable();
  EXPECT_TRUE(GC_is_disabled());
  GC_gcollect();
  EXPECT_EQ(GC_get_gc_no(), before);
  GC_enable();
  EXPECT_FALSE(GC_is_disabled());
  GC_gcollect();
  EXPECT_GT(GC_get_gc_no(), before);
}

TEST_F(LibGc, CountersReportTheHeap) {
  const GC_word before = GC_get_gc_no();
  void* p = GC_malloc(100000);
  EXPECT_NE(p, nullptr);
  EXPECT_GT(GC_get_heap_size(), 0u);
  GC_gcollect();
  EXPECT_EQ(GC_get_gc_no(), before + 1);
  EXPECT_EQ(GC_get_version() >> 16, 8u);
  EXPECT_TRUE(GC_is_init_called());
  EXPECT_TRUE(GC_get_all_interior_pointers());
}

TEST_F(LibGc, OutOfMemoryCallsTheOomFunction) {
  static std::size_t requested = 0;
  const GC_oom_func old = GC_get_oom_fn();
  ASSERT_NE(old, nullptr);
  GC_set_oom_fn([](std::size_t n) -> void* {
    requested = n;
    return nullptr;
  });
  EXPECT_EQ(GC_malloc(static_cast<std::size_t>(1) << 62), nullptr);
  EXPECT_EQ(requested, static_cast<std::size_t>(1) << 62);
  GC_set_oom_fn(old);
  EXPECT_EQ(GC_malloc(static_cast<std::size_t>(1) << 62), nullptr) << "the default returns NULL";
}

TEST_F(LibGc, MemalignAlignsInteriorPointers) {
  for (std::size_t align : {16u, 64u, 4096u}) {
    void* p = GC_memalign(align, 100);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
    EXPECT_NE(GC_base(p), nullptr);
  }
  void* q = nullptr;
  EXPECT_EQ(GC_posix_memalign(&q, 32, 10), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q) % 32, 0u);
  EXPECT_EQ(GC_posix_memalign(&q, 3, 10), EINVAL);
}

TEST_F(LibGc, MallocManyLinksObjectsThroughTheirFirstWord) {
  void* list = GC_malloc_many(32);
  int n = 0;
  for (void* p = list; p != nullptr; p = GC_NEXT(p)) {
    EXPECT_GE(GC_size(p), 32u);
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST_F(LibGc, TypedAllocationIsScannedConservatively) {
  GC_word bitmap[GC_BITMAP_SIZE(void* [4])] = {0};
  GC_set_bit(bitmap, 0);
  GC_descr d = GC_make_descriptor(bitmap, 4);
  auto** p = static_cast<void**>(GC_malloc_explicitly_typed(4 * sizeof(void*), d));
  ASSERT_NE(p, nullptr);
  global_root = p;
  p[0] = GC_malloc(8);
  const std::uintptr_t h = hide(p[0]);
  p = nullptr;
  collect();
  EXPECT_NE(GC_base(reveal(h)), nullptr);
  global_root = nullptr;
}

namespace {
// A thread's result waits in pthread's own memory, which no collector
// scans (libgc's neither): the list is published in a root before the
// thread ends.
void* thread_lists[3];
void* allocate_in_thread(void* slot) {
  void* list = nullptr;
  for (int i = 0; i < 20000; ++i) {
    auto** p = static_cast<void**>(GC_malloc(32));
    p[0] = list;
    list = p;
  }
  *static_cast<void**>(slot) = list;
  return nullptr;
}
}  // namespace

TEST_F(LibGc, ThreadsCreatedThroughGcPthreadCreateAllocate) {
  pthread_t threads[3];
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(GC_pthread_create(&threads[i], nullptr, &allocate_in_thread, &thread_lists[i]), 0);
  }
  for (auto& t : threads) ASSERT_EQ(GC_pthread_join(t, nullptr), 0);
  GC_gcollect();
  for (void*& list : thread_lists) {
    int n = 0;
    for (auto** p = static_cast<void**>(list); p != nullptr; p = static_cast<void**>(p[0])) ++n;
    EXPECT_EQ(n, 20000);
    list = nullptr;
  }
}

TEST_F(LibGc, RegisterMyThreadReportsDuplicates) {
  pthread_t t;
  static int results[3];
  pthread_create(
      &t, nullptr,
      [](void*) -> void* {
        struct GC_stack_base sb;
        results[0] = GC_get_stack_base(&sb);
        results[1] = GC_register_my_thread(&sb);
        results[2] = GC_register_my_thread(&sb);
        GC_malloc(10);
        GC_unregister_my_thread();
        return nullptr;
      },
      nullptr);
  pthread_join(t, nullptr);
  EXPECT_EQ(results[0], GC_SUCCESS);
  EXPECT_EQ(results[1], GC_SUCCESS);
  EXPECT_EQ(results[2], GC_DUPLICATE);
}

TEST_F(LibGc, ABlockingThreadDoesNotHoldUpCollections) {
  static std::atomic<bool> release{false};
  static std::atomic<bool> blocking{false};
  static void* kept;
  pthread_t t;
  ASSERT_EQ(GC_pthread_create(
                &t, nullptr,
                [](void*) -> void* {
                  kept = GC_malloc(64);
                  GC_do_blocking(
                      [](void*) -> void* {
                        blocking = true;
                        while (!release) sched_yield();
                        // Back in the collector's view for one allocation.
                        return GC_call_with_gc_active([](void*) -> void* { return GC_malloc(64); }, nullptr);
                      },
                      nullptr);
                  return nullptr;
                },
                nullptr),
            0);
  while (!blocking) sched_yield();
  const GC_word before = GC_get_gc_no();
  GC_gcollect();  // would wait forever if the blocked thread counted
  EXPECT_EQ(GC_get_gc_no(), before + 1);
  EXPECT_NE(GC_base(kept), nullptr);
  release = true;
  GC_pthread_join(t, nullptr);
}

TEST_F(LibGc, StackBaseIsAboveTheCurrentFrame) {
  struct GC_stack_base sb;
  ASSERT_EQ(GC_get_stack_base(&sb), GC_SUCCESS);
  int local = 0;
  EXPECT_GT(reinterpret_cast<std::uintptr_t>(sb.mem_base), reinterpret_cast<std::uintptr_t>(&local));
  void* r = GC_call_with_stack_base([](struct GC_stack_base* base, void* arg) -> void* {
    return base->mem_base != nullptr ? arg : nullptr;
  }, &local);
  EXPECT_EQ(r, &local);
}

TEST_F(LibGc, CallWithAllocLockRunsTheFunction) {
  int x = 0;
  void* r = GC_call_with_alloc_lock([](void* p) -> void* {
    ++*static_cast<int*>(p);
    return p;
  }, &x);
  EXPECT_EQ(r, &x);
  EXPECT_EQ(x, 1);
}

using LibGcDeathTest = LibGc;

TEST_F(LibGcDeathTest, UnsupportedFunctionsAbortWithTheirName) {
  EXPECT_DEATH(GC_is_marked(GC_malloc(8)), "not supported by handoff's libgc: GC_is_marked");
  EXPECT_DEATH(GC_set_push_other_roots([]() {}), "not supported by handoff's libgc: GC_set_push_other_roots");
}

TEST_F(LibGcDeathTest, ReallocOfAForeignPointerIsAClearError) {
  static char foreign[32];
  EXPECT_DEATH(GC_realloc(foreign, 64), "GC_realloc: the old object is not the start of a GC object");
}
