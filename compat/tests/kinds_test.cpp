// Client kinds and mark procedures (gc_mark.h): GC_new_kind, GC_new_proc,
// GC_MARK_AND_PUSH, GC_generic_malloc. An object of a kind with a mark
// procedure keeps alive exactly what the procedure pushes: here a pointer
// it stores hidden (complemented), which no conservative scan would find.
#define GC_THREADS 1
#define GC_NO_THREAD_REDIRECTS 1
#include <gc/gc.h>
#include <gc/gc_mark.h>
#include <gc/gc_typed.h>
#include <gtest/gtest.h>

#include "libgc_test_support.h"

#include <cstdint>
#include <cstdlib>
#include <initializer_list>

namespace {

using handoff::libgc_test::collect;

std::uintptr_t hide(const void* p) { return ~reinterpret_cast<std::uintptr_t>(p); }
void* reveal(std::uintptr_t h) { return reinterpret_cast<void*>(~h); }

// Allocated in a frame of its own, so that no copy stays in the test's.
[[gnu::noinline]] std::uintptr_t hidden_object() { return hide(GC_malloc(64)); }

int mark_calls = 0;

// Word 0 of the object: a hidden pointer; word 1: 1 when the procedure
// should push it.
GC_ms_entry* mark_hidden(GC_word* addr, GC_ms_entry* top, GC_ms_entry* limit, GC_word env) {
  ++mark_calls;
  EXPECT_EQ(env, 7u);
  if (addr[1] == 1) top = GC_MARK_AND_PUSH(reveal(addr[0]), top, limit, nullptr);
  return top;
}

class Kinds : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("HANDOFF_SYNC_SWEEP", "1", 1);
    GC_INIT();
  }
};

// In .bss: the holders are data-segment roots.
void* holder_pushing = nullptr;
void* holder_silent = nullptr;

TEST_F(Kinds, AMarkProcedureKeepsAliveWhatItPushesAndNothingElse) {
  const unsigned proc = GC_new_proc(&mark_hidden);
  const unsigned kind = GC_new_kind(GC_new_free_list(), GC_MAKE_PROC(proc, 7), 0, 1);
  EXPECT_GE(kind, 4u) << "0..3 are libgc's predefined kinds";
  holder_pushing = GC_generic_malloc(2 * sizeof(GC_word), static_cast<int>(kind));
  holder_silent = GC_generic_malloc(2 * sizeof(GC_word), static_cast<int>(kind));
  ASSERT_NE(holder_pushing, nullptr);
  EXPECT_EQ(GC_get_kind_and_size(holder_pushing, nullptr), static_cast<int>(kind));
  auto* pushing = static_cast<GC_word*>(holder_pushing);
  auto* silent = static_cast<GC_word*>(holder_silent);
  EXPECT_EQ(pushing[0], 0u) << "a kind made with clear_new_objects is zeroed";
  const std::uintptr_t kept = hidden_object();
  const std::uintptr_t dropped = hidden_object();
  pushing[0] = kept;
  pushing[1] = 1;
  silent[0] = dropped;
  silent[1] = 0;
  for (int i = 0; i < 2; ++i) collect();
  EXPECT_GE(mark_calls, 4) << "both holders, twice";
  EXPECT_NE(GC_base(reveal(kept)), nullptr) << "pushed by the mark procedure, yet collected";
  EXPECT_EQ(GC_base(reveal(dropped)), nullptr) << "not pushed, yet kept";
  EXPECT_EQ(GC_base(holder_pushing), holder_pushing);
  // GC_MARK_AND_PUSH's range check saw bounds that cover the heap.
  EXPECT_LE(reinterpret_cast<std::uintptr_t>(GC_least_plausible_heap_addr), reinterpret_cast<std::uintptr_t>(holder_pushing));
  EXPECT_GE(reinterpret_cast<std::uintptr_t>(GC_greatest_plausible_heap_addr), reinterpret_cast<std::uintptr_t>(holder_pushing));
}

TEST_F(Kinds, ALengthDescriptorKindIsScannedConservatively) {
  const unsigned kind = GC_new_kind(GC_new_free_list(), 0 | GC_DS_LENGTH, 1, 1);
  holder_pushing = GC_generic_malloc(4 * sizeof(GC_word), static_cast<int>(kind));
  const std::uintptr_t kept = hidden_object();
  static_cast<void**>(holder_pushing)[3] = reveal(kept);
  for (int i = 0; i < 2; ++i) collect();
  EXPECT_NE(GC_base(reveal(kept)), nullptr);
}

// Words 0 and 2 are pointers; word 1 is not (as guile's weak-table entries
// leave out their weak word).
void* typed_holder = nullptr;

// In a frame of its own: no register or slot of the test keeps the pointers.
[[gnu::noinline]] void store_revealed(void** words, std::initializer_list<std::uintptr_t> hidden) {
  for (std::uintptr_t h : hidden) *words++ = reveal(h);
}

TEST_F(Kinds, ATypedObjectIsScannedByItsBitmapOnly) {
  GC_word bitmap[GC_BITMAP_SIZE(GC_word[3])] = {0};
  GC_set_bit(bitmap, 0);
  GC_set_bit(bitmap, 2);
  const GC_descr descriptor = GC_make_descriptor(bitmap, 3);
  typed_holder = GC_malloc_explicitly_typed(3 * sizeof(GC_word), descriptor);
  ASSERT_NE(typed_holder, nullptr);
  EXPECT_GE(GC_size(typed_holder), 3 * sizeof(GC_word));
  const std::uintptr_t first = hidden_object();
  const std::uintptr_t skipped = hidden_object();
  const std::uintptr_t third = hidden_object();
  store_revealed(static_cast<void**>(typed_holder), {first, skipped, third});
  for (int i = 0; i < 2; ++i) collect();
  auto* words = static_cast<void**>(typed_holder);
  EXPECT_NE(GC_base(reveal(first)), nullptr);
  EXPECT_NE(GC_base(reveal(third)), nullptr);
  EXPECT_EQ(GC_base(reveal(skipped)), nullptr) << "word 1 is not in the bitmap, yet it kept its target";
  EXPECT_EQ(hide(words[1]), skipped) << "the client's words are its own: the descriptor lives past them";
}

TEST_F(Kinds, MarkAndPushOutsideAMarkProcedureAborts) {
  EXPECT_DEATH(GC_mark_and_push(GC_malloc(8), nullptr, nullptr, nullptr), "outside a mark procedure");
}

}  // namespace
