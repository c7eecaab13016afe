// Finalizers and disappearing links against gc.h: ordered vs unordered
// finalization, ignore-self, unregistering, links cleared before
// finalizers run, long links cleared only once the object is gone, links
// inside collected objects dropped, GC_finalize_on_demand.
#define GC_THREADS 1
#define GC_NO_THREAD_REDIRECTS 1
#include <gc/gc.h>
#include <gc/javaxfc.h>

#include <gtest/gtest.h>

#include "libgc_test_support.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using handoff::libgc_test::clear_stack;
using handoff::libgc_test::collect;

std::vector<std::string> order;  // finalizers run, by name

void record(void*, void* data) { order.push_back(static_cast<const char*>(data)); }

class Finalize : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("HANDOFF_SYNC_SWEEP", "1", 1);
    GC_INIT();
  }
  void SetUp() override { order.clear(); }
};

// The conservative scan of registers and stack may keep the odd object
// alive (a value left in a callee-saved register), as with libgc; so each
// test makes many objects and expects all but a few of them to behave.
constexpr int kCount = 50;
constexpr int kSlack = 3;

int count(const char* name) {
  int n = 0;
  for (const auto& s : order) n += s == name ? 1 : 0;
  return n;
}

// Registers finalizers on fresh objects; the stack keeps none of them.
[[gnu::noinline]] void make_finalizable(const char* name, int n, void** keep = nullptr) {
  for (int i = 0; i < n; ++i) {
    void* p = GC_malloc(32);
    GC_register_finalizer(p, &record, const_cast<char*>(name), nullptr, nullptr);
    if (keep != nullptr) keep[i] = p;
  }
}

}  // namespace

TEST_F(Finalize, UnreachableObjectsAreFinalizedOnce) {
  make_finalizable("a", kCount);
  collect();
  EXPECT_GE(count("a"), kCount - kSlack);
  collect();
  collect();
  EXPECT_LE(count("a"), kCount) << "never twice";
}

TEST_F(Finalize, ReachableObjectsAreNotFinalized) {
  static void* keep[kCount];
  make_finalizable("kept", kCount, keep);
  collect();
  EXPECT_EQ(count("kept"), 0);
  for (auto& k : keep) k = nullptr;
  collect();
  EXPECT_GE(count("kept"), kCount - kSlack);
}

namespace {
// a -> b, both finalizable, both unreachable; the finalizers record the pair.
std::vector<int> a_done, b_done;
void record_a(void*, void* data) { a_done.push_back(static_cast<int>(reinterpret_cast<std::intptr_t>(data))); }
void record_b(void*, void* data) {
  const int i = static_cast<int>(reinterpret_cast<std::intptr_t>(data));
  b_done.push_back(i);
}
[[gnu::noinline]] void make_chains(bool no_order) {
  a_done.clear();
  b_done.clear();
  auto reg = no_order ? GC_register_finalizer_no_order : GC_register_finalizer;
  for (std::intptr_t i = 0; i < kCount; ++i) {
    auto** a = static_cast<void**>(GC_malloc(32));
    void* b = GC_malloc(32);
    a[0] = b;
    reg(a, &record_a, reinterpret_cast<void*>(i), nullptr, nullptr);
    reg(b, &record_b, reinterpret_cast<void*>(i), nullptr, nullptr);
  }
}
bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

TEST_F(Finalize, OrderedFinalizationRunsTheReferrerFirst) {
  make_chains(false);
  collect();
  EXPECT_GE(static_cast<int>(a_done.size()), kCount - kSlack);
  EXPECT_TRUE(b_done.empty()) << "each b is reachable from its a: it waits for a's finalizer";
  collect();
  EXPECT_GE(static_cast<int>(b_done.size()), kCount - kSlack);
  for (int i : b_done) EXPECT_TRUE(contains(a_done, i)) << "b" << i << " finalized before a" << i;
}

TEST_F(Finalize, UnorderedFinalizationRunsBothAtOnce) {
  make_chains(true);
  collect();
  EXPECT_GE(static_cast<int>(a_done.size()), kCount - kSlack);
  EXPECT_GE(static_cast<int>(b_done.size()), kCount - kSlack);
}

TEST_F(Finalize, FinalizersSeeIntactObjects) {
  static int intact = 0;
  static int broken = 0;
  [] [[gnu::noinline]] () {
    for (int i = 0; i < kCount; ++i) {
      auto** a = static_cast<void**>(GC_malloc(32));
      auto* s = static_cast<char*>(GC_malloc_atomic(16));
      std::strcpy(s, "intact");
      a[0] = s;
      GC_register_finalizer(a, [](void* obj, void*) {
        ++(std::strcmp(static_cast<char*>(static_cast<void**>(obj)[0]), "intact") == 0 ? intact : broken);
      }, nullptr, nullptr, nullptr);
    }
  }();
  collect();
  for (int i = 0; i < 2000; ++i) std::memset(GC_malloc_atomic(16), 'x', 16);  // reuse freed cells
  collect();
  EXPECT_GE(intact, kCount - kSlack);
  EXPECT_EQ(broken, 0);
}

TEST_F(Finalize, IgnoreSelfFinalizesSelfReferencingObjects) {
  [] [[gnu::noinline]] () {
    for (int i = 0; i < kCount; ++i) {
      auto** a = static_cast<void**>(GC_malloc(32));
      a[0] = a;  // points to itself
      GC_register_finalizer_ignore_self(a, &record, const_cast<char*>("self"), nullptr, nullptr);
      auto** b = static_cast<void**>(GC_malloc(32));
      b[0] = b;
      GC_register_finalizer(b, &record, const_cast<char*>("cycle"), nullptr, nullptr);
    }
  }();
  collect();
  collect();
  EXPECT_GE(count("self"), kCount - kSlack);
  EXPECT_EQ(count("cycle"), 0) << "an ordered finalizer on a cycle never runs";
}

TEST_F(Finalize, RegisteringNullUnregistersAndReturnsTheOldOne) {
  void* p = GC_malloc(16);
  GC_register_finalizer(p, &record, const_cast<char*>("x"), nullptr, nullptr);
  GC_finalization_proc old = nullptr;
  void* old_data = nullptr;
  GC_register_finalizer(p, nullptr, nullptr, &old, &old_data);
  EXPECT_EQ(old, &record);
  EXPECT_STREQ(static_cast<char*>(old_data), "x");
  p = nullptr;
  collect();
  EXPECT_TRUE(order.empty());
}

// Clients store a hidden value in a link (or a pointer the collector does
// not see, such as in GC_malloc_atomic memory): the link is no root.
std::uintptr_t short_links[kCount], long_links[kCount];
int finalizer_saw_cleared = 0, finalizer_saw_set = 0;

TEST_F(Finalize, DisappearingLinksAreClearedBeforeFinalizersRun) {
  [] [[gnu::noinline]] () {
    for (std::intptr_t i = 0; i < kCount; ++i) {
      void* p = GC_malloc(32);
      short_links[i] = ~reinterpret_cast<std::uintptr_t>(p);
      GC_general_register_disappearing_link(reinterpret_cast<void**>(&short_links[i]), p);
      GC_register_finalizer(p, [](void*, void* data) {
        ++(short_links[reinterpret_cast<std::intptr_t>(data)] == 0 ? finalizer_saw_cleared : finalizer_saw_set);
      }, reinterpret_cast<void*>(i), nullptr, nullptr);
    }
  }();
  collect();
  EXPECT_GE(finalizer_saw_cleared, kCount - kSlack);
  EXPECT_EQ(finalizer_saw_set, 0);
  int cleared = 0;
  for (auto l : short_links) cleared += l == 0 ? 1 : 0;
  EXPECT_GE(cleared, kCount - kSlack);
}

TEST_F(Finalize, LongLinksSurviveFinalizationAndClearOnceTheObjectIsGone) {
  [] [[gnu::noinline]] () {
    for (int i = 0; i < kCount; ++i) {
      void* p = GC_malloc(32);
      short_links[i] = long_links[i] = ~reinterpret_cast<std::uintptr_t>(p);
      GC_general_register_disappearing_link(reinterpret_cast<void**>(&short_links[i]), p);
      GC_register_long_link(reinterpret_cast<void**>(&long_links[i]), p);
      GC_register_finalizer(p, &record, const_cast<char*>("p"), nullptr, nullptr);
    }
  }();
  collect();
  int finalized = count("p");
  EXPECT_GE(finalized, kCount - kSlack);
  for (int i = 0; i < kCount; ++i) {
    if (short_links[i] == 0) EXPECT_NE(long_links[i], 0u) << "kept alive for its finalizer";
  }
  collect();
  int long_cleared = 0;
  for (auto l : long_links) long_cleared += l == 0 ? 1 : 0;
  EXPECT_GE(long_cleared, kCount - kSlack);
}

TEST_F(Finalize, LinkRegistrationReportsDuplicatesAndMoves) {
  static void* link;
  static void* other;
  void* p = GC_malloc(16);
  link = p;
  EXPECT_EQ(GC_register_disappearing_link(&link), GC_SUCCESS);
  EXPECT_EQ(GC_general_register_disappearing_link(&link, p), GC_DUPLICATE);
  EXPECT_EQ(GC_move_disappearing_link(&link, &other), GC_SUCCESS);
  EXPECT_EQ(GC_move_disappearing_link(&link, &other), GC_NOT_FOUND);
  EXPECT_EQ(GC_unregister_disappearing_link(&other), 1);
  EXPECT_EQ(GC_unregister_disappearing_link(&other), 0);
}

// libgc retargets a link registered twice: it disappears with the object
// of the second registration, and the first one no longer matters.
TEST_F(Finalize, ALinkRegisteredAgainFollowsTheNewObject) {
  static void** link;   // in pointer-free memory: the link itself is no root
  static void* first;   // stays reachable
  link = static_cast<void**>(GC_malloc_atomic(sizeof(void*)));
  first = GC_malloc(16);
  [] [[gnu::noinline]] () {
    *link = first;
    EXPECT_EQ(GC_general_register_disappearing_link(link, first), GC_SUCCESS);
    *link = GC_malloc(16);
    EXPECT_EQ(GC_general_register_disappearing_link(link, *link), GC_DUPLICATE);
  }();
  for (int i = 0; i < 2; ++i) collect();
  EXPECT_EQ(*link, nullptr) << "the link kept pointing at a collected object";
  EXPECT_EQ(GC_unregister_disappearing_link(link), 0) << "a cleared link stays registered";
}

// The client data of a registered finalizer is kept alive with the
// registration, as libgc's finalization table is a root.
TEST_F(Finalize, AFinalizersClientDataStaysAlive) {
  static void* object;  // reachable: its finalizer stays registered
  static std::uintptr_t hidden_data;
  object = GC_malloc(16);
  [] [[gnu::noinline]] () {
    void* data = GC_malloc(64);
    hidden_data = ~reinterpret_cast<std::uintptr_t>(data);
    GC_register_finalizer(object, [](void*, void*) {}, data, nullptr, nullptr);
  }();
  for (int i = 0; i < 2; ++i) collect();
  EXPECT_NE(GC_base(reinterpret_cast<void*>(~hidden_data)), nullptr) << "the finalizer's data was collected";
  GC_register_finalizer(object, nullptr, nullptr, nullptr, nullptr);
}

TEST_F(Finalize, LinksInsideCollectedObjectsAreDropped) {
  [] [[gnu::noinline]] () {
    auto** holder = static_cast<void**>(GC_malloc(64));
    static void* target;
    target = GC_malloc(16);
    holder[0] = target;
    GC_general_register_disappearing_link(&holder[0], target);
  }();
  collect();  // holder is gone; its link must not be written later
  for (int i = 0; i < 1000; ++i) GC_malloc(64);  // reuse its cell
  collect();
  SUCCEED();
}

TEST_F(Finalize, OnDemandModeNotifiesAndWaitsForInvoke) {
  static int notified = 0;
  GC_set_finalize_on_demand(1);
  GC_set_finalizer_notifier([] { ++notified; });
  make_finalizable("late", kCount);
  collect();
  EXPECT_EQ(count("late"), 0);
  EXPECT_GE(notified, 1);
  EXPECT_EQ(GC_should_invoke_finalizers(), 1);
  EXPECT_GE(GC_invoke_finalizers(), kCount - kSlack);
  EXPECT_GE(count("late"), kCount - kSlack);
  EXPECT_EQ(GC_should_invoke_finalizers(), 0);
  GC_set_finalize_on_demand(0);
}

TEST_F(Finalize, FinalizeAllRunsEveryRegisteredFinalizer) {
  static void* keep[2];
  make_finalizable("all", 2, keep);
  GC_finalize_all();
  EXPECT_EQ(count("all"), 2);
  keep[0] = keep[1] = nullptr;
}
