// The hooks a language runtime builds on (heap.h): root scanners that report
// conservative ranges and precise objects, and post-mark hooks that read and
// extend the marks. Weak<T> handles observe what survived.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace handoff::test {
namespace {

// Whether an object that lost its last reference can be expected gone after a
// collection: in the release preset. Not under AddressSanitizer (a dead
// fake-stack frame that a stale stack word still points into is scanned and
// may keep it), ThreadSanitizer or -O0 (both leave copies in stack slots
// the scrub does not reach).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
constexpr bool kExactReclaim = false;
#else
constexpr bool kExactReclaim = true;
#endif

// Untyped memory outside the heap, scanned word by word by a root scanner.
struct Area {
  std::uintptr_t words[8] = {};
  const void* precise = nullptr;
};

void scan_area(Visitor& visitor, void* context) {
  auto& area = *static_cast<Area*>(context);
  visitor.trace_conservative(area.words, area.words + 8);
  visitor.trace_raw(area.precise);
}

// On the C++ heap: a handle on the stack would be scanned, and would keep
// its object alive.
using Weaks = std::unique_ptr<Weak<Node>>;

// Out of line, so that no pointer to the new objects stays in the test's frame.
[[gnu::noinline]] void make_scanned(Heap& heap, Area& area, Weaks& interior, Weaks& precise, Weaks& dropped) {
  Node* c = heap.make<Node>(3);
  dropped = std::make_unique<Weak<Node>>(heap, c);
  Node* a = heap.make<Node>(1);
  Node* b = heap.make<Node>(2);
  for (int i = 0; i < 16; ++i) heap.make<Node>(100 + i);  // the last few allocations may linger in registers
  area.words[3] = reinterpret_cast<std::uintptr_t>(&a->id);  // an interior pointer
  area.precise = b;
  interior = std::make_unique<Weak<Node>>(heap, a);
  precise = std::make_unique<Weak<Node>>(heap, b);
}

TEST(RuntimeHooks, RootScannersReportConservativeRangesAndObjects) {
  const HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  static Area area;  // the scanner reads it during every collection
  heap.add_root_scanner(&scan_area, &area);
  Weaks interior, precise, dropped;
  make_scanned(heap, area, interior, precise, dropped);
  scrub_and_collect(heap, 2);
  EXPECT_NE(interior->get(), nullptr);
  EXPECT_NE(precise->get(), nullptr);
  if (kExactReclaim) {
    EXPECT_EQ(dropped->get(), nullptr);
  }
  area = Area{};
  scrub_and_collect(heap, 2);
  if (kExactReclaim) {
    EXPECT_EQ(interior->get(), nullptr);
  }
}

// A post-mark hook that resurrects every object it was told to watch.
struct Watch {
  std::vector<const void*> objects;
  int unmarked_seen = 0;
};

void resurrect(Heap::MarkPhase& phase, void* context) {
  auto& watch = *static_cast<Watch*>(context);
  for (const void* object : watch.objects) {
    if (phase.is_marked(object)) continue;
    ++watch.unmarked_seen;
    phase.mark(object);
  }
}

[[gnu::noinline]] void make_watched(Heap& heap, Watch& watch, Weaks& head, Weaks& tail) {
  Node* a = heap.make<Node>(1);
  a->next = heap.make<Node>(2);  // kept through a, traced by the marker
  watch.objects.push_back(a);
  head = std::make_unique<Weak<Node>>(heap, a);
  tail = std::make_unique<Weak<Node>>(heap, a->next.get());
}

TEST(RuntimeHooks, PostMarkHooksSeeAndExtendTheMarks) {
  const HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  static Watch watch;
  heap.add_post_mark_hook(&resurrect, &watch);
  Weaks head, tail;
  make_watched(heap, watch, head, tail);
  scrub_and_collect(heap, 2);
  if (kExactReclaim) {
    EXPECT_GE(watch.unmarked_seen, 1);
  }
  ASSERT_NE(head->get(), nullptr);
  ASSERT_NE(tail->get(), nullptr);
  EXPECT_TRUE(head->get()->intact(1));
  EXPECT_TRUE(tail->get()->intact(2));
  watch.objects.clear();
  scrub_and_collect(heap, 2);
  if (kExactReclaim) {
    EXPECT_EQ(head->get(), nullptr);
  }
}

}  // namespace
}  // namespace handoff::test
