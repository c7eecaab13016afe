// The heap on one thread: reachable cells survive many collections intact,
// garbage is reused so churn runs in bounded memory, the heap limit reports
// out-of-memory and leaves the heap usable, the trigger and the torture
// knobs collect when they say they do, the verifier runs, and the lookups
// find objects from interior pointers.
#include "heap_test_support.h"

#include <handoff/heap.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace handoff::test {
namespace {

// A list of `n` nodes with ids first_id .. first_id + n - 1, the last one at
// the head. While it grows, the head is a local: the stack scan keeps it.
[[gnu::noinline]] Node* build_list(Heap& heap, std::uint64_t first_id, std::size_t n) {
  Node* head = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    Node* node = heap.make<Node>(first_id + i);
    node->next = head;
    head = node;
  }
  return head;
}

::testing::AssertionResult list_intact(const Node* head, std::uint64_t first_id, std::size_t n) {
  const Node* node = head;
  for (std::size_t i = n; i-- > 0;) {
    if (node == nullptr) return ::testing::AssertionFailure() << "list of " << n << " ends early at index " << i;
    if (!node->intact(first_id + i)) {
      return ::testing::AssertionFailure() << "node " << first_id + i << " at " << node << " is corrupt (id "
                                           << node->id << ")";
    }
    node = node->next;
  }
  if (node != nullptr) return ::testing::AssertionFailure() << "list longer than " << n;
  return ::testing::AssertionSuccess();
}

[[gnu::noinline]] void make_node_garbage(Heap& heap, std::uint64_t first_id, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) heap.make<Node>(first_id + i);
}

// Entries of a rooted array whose expected ids the test keeps on the C++ heap.
::testing::AssertionResult table_intact(const NodeArray& table, const std::vector<std::uint64_t>& expected,
                                        std::size_t from, std::size_t count) {
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t slot = (from + k) % expected.size();
    const Node* node = table[slot].get();
    if (node == nullptr || !node->intact(expected[slot])) {
      return ::testing::AssertionFailure() << "table slot " << slot << " (expected node " << expected[slot]
                                           << ") is " << (node == nullptr ? "empty" : "corrupt");
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

// Three kinds of roots (a Root<T>, a local, a rooted array whose entries are
// replaced over time) and garbage between collections, so that freed cells
// are reused: a live cell wrongly freed is overwritten and fails its check.
void run_survival_scenario(const HeapConfig& config, Size size) {
  const bool full = size == Size::kFull;
  const std::size_t n = full ? sized(4000, 2000, 300) : sized(1000, 500, 200);
  const std::size_t collections = full ? sized(1000, 200, 20) : sized(100, 40, 10);
  const std::size_t churn = n / 50 + 1;

  Heap heap(config);
  ThreadScope attached(heap);
  Root<Node> rooted(heap, build_list(heap, 0, n));
  Node* local = build_list(heap, 1'000'000, n);
  Root<NodeArray> table(heap, heap.make_array<Member<Node>>(n));
  std::vector<std::uint64_t> expected(n);
  std::uint64_t next_id = 2'000'000;
  for (std::size_t i = 0; i < n; ++i) {
    (*table)[i] = heap.make<Node>(next_id);
    expected[i] = next_id++;
  }
  Weak<Node> watched(heap, (*table)[n / 2].get());
  const std::uint64_t watched_id = expected[n / 2];

  std::uint64_t garbage_id = 10'000'000;
  for (std::size_t c = 0; c < collections; ++c) {
    for (std::size_t k = 0; k < churn; ++k) {
      const std::size_t slot = mix64(next_id) % n;
      if (slot == n / 2) continue;  // the watched node stays referenced
      (*table)[slot] = heap.make<Node>(next_id);
      expected[slot] = next_id++;
    }
    make_node_garbage(heap, garbage_id, churn * 4);
    garbage_id += churn * 4;
    ASSERT_TRUE(heap.collect()) << "collect() was deferred";

    ASSERT_TRUE(rooted->intact(n - 1)) << "after collection " << c;
    ASSERT_TRUE(local->intact(1'000'000 + n - 1)) << "after collection " << c;
    ASSERT_TRUE(table_intact(*table, expected, (c * 61) % n, std::min<std::size_t>(64, n))) << "after collection " << c;
    ASSERT_NE(watched.get(), nullptr) << "weak to a reachable node cleared after collection " << c;
    if (c % 100 == 99) {
      ASSERT_TRUE(list_intact(rooted.get(), 0, n)) << "after collection " << c;
      ASSERT_TRUE(list_intact(local, 1'000'000, n)) << "after collection " << c;
    }
  }
  EXPECT_TRUE(list_intact(rooted.get(), 0, n));
  EXPECT_TRUE(list_intact(local, 1'000'000, n));
  EXPECT_TRUE(table_intact(*table, expected, 0, n));
  EXPECT_TRUE(watched.get() != nullptr && watched.get()->intact(watched_id));
  EXPECT_GE(heap.stats().collections, collections);
}

TEST(HeapSurvival, ReachableCellsSurviveManyCollections) {
  run_survival_scenario(env_config(), Size::kFull);
}

// A ring of arrays of varying length (some large objects among them), each
// live for one lap, while the total allocated is several times the bound:
// without reclamation the pool and the large-object space would exceed it.
TEST(HeapChurn, GarbageIsReusedAndMemoryStaysBounded) {
  HeapConfig config = env_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  config.initial_heap_bytes = 2 << 20;
  Heap heap(config);
  ThreadScope attached(heap);

  constexpr std::size_t kRing = 1024;
  constexpr std::size_t kLargeLength = 2500;  // 20 KB: a large object
  // The steady state needs about 4 MiB (the ring, a 2 MiB trigger and
  // partly used blocks of some 30 size classes); the bound leaves room for
  // lazy sweeping and the sweeper's pace, not for a leak of the allocated.
  const std::size_t total = sized(512, 160, 12) << 20;
  const std::size_t bound = sized(16, 16, 8) << 20;
  ASSERT_GT(total, 4 * bound / 3);

  Root<Array<Member<Words>>> ring(heap, heap.make_array<Member<Words>>(kRing));
  std::vector<std::uint64_t> lengths(kRing, 0);
  std::vector<std::uint64_t> tags(kRing, 0);
  std::size_t allocated = 0;
  std::size_t peak = 0;
  std::uint64_t i = 0;
  for (; allocated < total; ++i) {
    const std::size_t length = i % 128 == 127 ? kLargeLength : 1 + mix64(i) % 190;
    Words* words = heap.make_array<std::uint64_t>(length);
    fill_words(*words, i);
    (*ring)[i % kRing] = words;
    lengths[i % kRing] = length;
    tags[i % kRing] = i;
    allocated += detail::kCellHeaderSize + sizeof(Words) + length * sizeof(std::uint64_t);
    if (i % 512 == 0) {
      const AllocatorStats s = heap.stats().allocator;
      peak = std::max(peak, s.pool.committed_bytes + s.large.mapped_bytes);
      ASSERT_LE(s.budget_charged_bytes, bound) << "after " << allocated << " bytes allocated";
    }
  }
  RecordProperty("peak_committed_bytes", std::to_string(peak));
  RecordProperty("allocated_bytes", std::to_string(allocated));
  EXPECT_LE(peak, bound) << "pool committed + large mapped; allocated " << allocated;
  for (std::size_t k = 0; k < kRing; ++k) {
    ASSERT_TRUE(words_intact(*(*ring)[k], tags[k], lengths[k])) << "ring slot " << k << " tag " << tags[k];
  }
  const HeapStats stats = heap.stats();
  EXPECT_GE(stats.collections, 2u);
  EXPECT_GT(stats.bytes_swept + stats.allocator.large.freed_bytes, total / 4);
  EXPECT_LT(stats.allocator.pool.blocks_acquired * kBlockSize, total / 2) << "blocks are not being reused";
}

TEST(HeapTrigger, AllocationAloneTriggersCollections) {
  HeapConfig config = env_config();
  config.initial_heap_bytes = small_mode() ? 256 << 10 : 1 << 20;
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = sized(200'000, 60'000, 8'000);  // 48-byte cells: > 1.5 times the trigger
  make_node_garbage(heap, 0, n);
  EXPECT_GE(heap.stats().collections, 1u) << "allocated " << n * 48 << " bytes past a "
                                          << config.initial_heap_bytes << "-byte trigger";
  EXPECT_GT(heap.stats().bytes_allocated, 0u);
}

TEST(HeapTortureKnobs, CollectEveryNAllocations) {
  HeapConfig config = env_config();
  config.collect_every = 50;
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = sized(5000, 2000, 1000);
  Root<Node> kept(heap, build_list(heap, 0, n));
  EXPECT_GE(heap.stats().collections, n / 50 / 2);
  EXPECT_TRUE(list_intact(kept.get(), 0, n));
}

TEST(HeapTortureKnobs, ImmortalModeFreesNothing) {
  HeapConfig config = env_config();
  config.immortal = 1;
  Heap heap(config);
  ThreadScope attached(heap);
  std::vector<std::unique_ptr<Weak<Node>>> weaks;
  for (std::uint64_t i = 0; i < 200; ++i) weaks.push_back(std::make_unique<Weak<Node>>(heap, heap.make<Node>(i)));
  scrub_and_collect(heap, 3);
  for (std::uint64_t i = 0; i < 200; ++i) {
    ASSERT_NE(weaks[i]->get(), nullptr) << "immortal mode cleared weak " << i;
    ASSERT_TRUE(weaks[i]->get()->intact(i));
  }
  EXPECT_EQ(heap.stats().weak_cleared, 0u);
}

// ---- the heap limit -------------------------------------------------------

namespace {

struct Chunk {
  std::uint64_t id;
  std::uint64_t words[124];
  std::uint64_t checksum;
  explicit Chunk(std::uint64_t chunk_id) : id(chunk_id) {
    for (std::size_t i = 0; i < 124; ++i) words[i] = pattern_word(chunk_id, i);
    checksum = mix64(chunk_id);
  }
  bool intact(std::uint64_t expected) const noexcept {
    if (detail::type_of(this) != type_info_of<Chunk>() || id != expected || checksum != mix64(expected)) return false;
    for (std::size_t i = 0; i < 124; ++i) {
      if (words[i] != pattern_word(expected, i)) return false;
    }
    return true;
  }
  void trace(Visitor&) const {}
};
using ChunkTable = Array<Member<Chunk>>;

constexpr std::size_t kLimit = 8 << 20;

HeapConfig limited_config() {
  HeapConfig config = env_config();
  config.max_heap_bytes = small_mode() ? 4 << 20 : kLimit;
  return config;
}

// Fills `table` with live chunks until make() reports out-of-memory;
// returns how many it kept. Each chunk is held by one table slot only, so a
// stray stack word keeps at most one chunk alive when the table is cleared.
[[gnu::noinline]] std::size_t fill_until_oom(Heap& heap, ChunkTable& table, ErrorCode& code) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    try {
      table[i] = heap.make<Chunk>(i);
    } catch (const Error& e) {
      code = e.code();
      return i;
    }
  }
  return table.size();
}

[[gnu::noinline]] void make_chunk_garbage(Heap& heap, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) heap.make<Chunk>(i);
}

}  // namespace

TEST(HeapLimit, LiveDataPastTheLimitThrowsOutOfMemoryAndHeapRecovers) {
  const HeapConfig config = limited_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t capacity = 4 * config.max_heap_bytes / sizeof(Chunk);
  Root<ChunkTable> table(heap, heap.make_array<Member<Chunk>>(capacity));

  ErrorCode code = ErrorCode::kNone;
  const std::size_t kept = fill_until_oom(heap, *table, code);
  ASSERT_LT(kept, capacity) << "no out-of-memory after " << kept * sizeof(Chunk) << " live bytes";
  EXPECT_EQ(code, ErrorCode::kOutOfMemory);
  EXPECT_GE(kept * sizeof(Chunk), config.max_heap_bytes / 2) << "out of memory far below the limit";
  EXPECT_EQ(heap.try_make<Chunk>(0), nullptr);
  EXPECT_TRUE(throws_error([&] { heap.make_array<double>(config.max_heap_bytes / sizeof(double) + 1024); },
                           ErrorCode::kOutOfMemory));
  HeapStats stats = heap.stats();
  EXPECT_GE(stats.out_of_memory_errors, 1u);
  EXPECT_GE(stats.last_resort_collections, 1u);
  for (std::size_t i = 0; i < kept; ++i) ASSERT_TRUE((*table)[i]->intact(i)) << "chunk " << i << " after OOM";

  // Dropping the chunks makes room again: most of them can be made anew.
  for (std::size_t i = 0; i < kept; ++i) (*table)[i] = nullptr;
  scrub_and_collect(heap, 2);
  for (std::size_t i = 0; i < kept * 8 / 10; ++i) {
    Chunk* chunk = heap.try_make<Chunk>(i + kept);
    ASSERT_NE(chunk, nullptr) << "allocation " << i << " of " << kept * 8 / 10 << " failed after the heap was freed";
    (*table)[i] = chunk;
  }
  for (std::size_t i = 0; i < kept * 8 / 10; ++i) ASSERT_TRUE((*table)[i]->intact(i + kept));
}

TEST(HeapLimit, GarbageOnlyAllocationNeverRunsOutOfMemory) {
  const HeapConfig config = limited_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  Root<Node> kept(heap, build_list(heap, 0, 100));
  const std::size_t n = sized(4, 4, 3) * config.max_heap_bytes / sizeof(Chunk);
  EXPECT_NO_THROW(make_chunk_garbage(heap, n));
  EXPECT_NO_THROW(heap.make_array<double>(config.max_heap_bytes / 4 / sizeof(double)));
  const HeapStats stats = heap.stats();
  EXPECT_EQ(stats.out_of_memory_errors, 0u);
  EXPECT_GE(stats.collections, 2u);
  EXPECT_TRUE(list_intact(kept.get(), 0, 100));
}

TEST(HeapLimit, InsideDeferGCTheLimitReportsOutOfMemoryInsteadOfCollecting) {
  const HeapConfig config = limited_config();
  HANDOFF_SKIP_IF_IMMORTAL(config);
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = 3 * config.max_heap_bytes / sizeof(Chunk);
  bool threw = false;
  {
    DeferGC defer(heap);
    const std::uint64_t before = heap.stats().collections;
    threw = throws_error([&] { make_chunk_garbage(heap, n); }, ErrorCode::kOutOfMemory);
    EXPECT_EQ(heap.stats().collections, before) << "a collection ran inside DeferGC";
  }
  EXPECT_TRUE(threw) << "allocated " << n * sizeof(Chunk) << " bytes inside DeferGC under a "
                     << config.max_heap_bytes << "-byte limit";
  scrub_and_collect(heap, 1);
  EXPECT_NO_THROW(make_chunk_garbage(heap, n / 6));
}

// ---- the verifier, stats and lookups ------------------------------------

TEST(HeapVerifier, VerifyEveryCollectionPasses) {
  HeapConfig config = env_config();
  config.verify = 1;
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = sized(2000, 1000, 200);
  Root<Node> kept(heap, build_list(heap, 0, n));
  const std::size_t collections = sized(20, 10, 5);
  for (std::size_t c = 0; c < collections; ++c) {
    make_node_garbage(heap, 1'000'000, n);
    heap.collect();
  }
  const HeapStats stats = heap.stats();
  EXPECT_GE(stats.verifications, collections);
  EXPECT_TRUE(list_intact(kept.get(), 0, n));
}

TEST(HeapVerifier, ExplicitVerifyRunsAndKeepsLiveData) {
  Heap heap(env_config());
  ThreadScope attached(heap);
  Root<Node> kept(heap, build_list(heap, 0, 500));
  Words* big = heap.make_array<std::uint64_t>(3000);
  fill_words(*big, 77);
  const std::uint64_t before = heap.stats().verifications;
  heap.verify();
  heap.verify();
  EXPECT_GE(heap.stats().verifications, before + 2);
  EXPECT_TRUE(list_intact(kept.get(), 0, 500));
  EXPECT_TRUE(words_intact(*big, 77, 3000));
}

TEST(HeapStatsTest, LiveCountsAndHandleCountsReflectTheHeap) {
  HeapConfig config = env_config();
  config.sync_sweep = 1;
  Heap heap(config);
  ThreadScope attached(heap);
  const std::size_t n = 1000;
  Root<Node> kept(heap, build_list(heap, 0, n));
  Weak<Node> weak(heap, kept.get());
  heap.collect();
  const HeapStats stats = heap.stats();
  EXPECT_GE(stats.live_objects, n);
  EXPECT_GE(stats.live_bytes, n * sizeof(Node));
  EXPECT_GE(stats.roots, 1u);
  EXPECT_GE(stats.weak_handles, 1u);
  EXPECT_EQ(stats.attached_threads, 1u);
  EXPECT_GE(stats.collections, 1u);
  EXPECT_GT(stats.pause_ns_total, 0u);
  std::ostringstream json;
  heap.write_stats_json(json);
  EXPECT_NE(json.str().find("collections"), std::string::npos);
  std::ostringstream text;
  heap.write_stats_text(text);
  EXPECT_FALSE(text.str().empty());
}

// "name": (built by appends: GCC 12 warns falsely on "\"" + std::string).
std::string json_key(const char* name) {
  std::string key(1, '"');
  key += name;
  key += "\":";
  return key;
}

// The heap's counters come from one table: each row's key and value are in
// the JSON, its label and value in the text.
TEST(HeapStatsTest, EveryCounterOfTheTableAppearsInJsonAndText) {
  Heap heap(env_config());
  ThreadScope attached(heap);
  heap.make<Node>(1);
  heap.collect();
  const HeapStats stats = heap.stats();
  std::ostringstream json;
  std::ostringstream text;
  heap.write_stats_json(json);
  heap.write_stats_text(text);
  std::set<std::string> names;
  for (const auto& spec : HeapStats::table()) {
    EXPECT_TRUE(names.insert(spec.name).second) << "JSON key used twice: " << spec.name;
    // Values only for counters nothing changes in the background (the
    // sweeper thread adds to the swept ones, timings differ per snapshot).
    const bool steady = spec.field == &HeapStats::collections || spec.field == &HeapStats::attached_threads;
    const std::string v = steady ? std::to_string(stats.*spec.field) : "";
    EXPECT_NE(json.str().find(json_key(spec.name) + v), std::string::npos) << spec.name;
    EXPECT_NE(text.str().find(std::string(spec.label) + " " + v), std::string::npos) << spec.label;
  }
  EXPECT_NE(json.str().find("\"pause_ms_mean\":"), std::string::npos);
}

TEST(HeapLookup, FindObjectMapsInteriorPointersToObjectStarts) {
  Heap heap(env_config());
  ThreadScope attached(heap);
  Node* node = heap.make<Node>(1);
  Words* big = heap.make_array<std::uint64_t>(5000);
  EXPECT_TRUE(heap.is_heap_object(node));
  EXPECT_FALSE(heap.is_heap_object(&node->value));
  EXPECT_EQ(heap.find_object(&node->value), node);
  EXPECT_EQ(heap.find_object(&node->checksum), node);
  EXPECT_TRUE(heap.is_heap_object(big));
  EXPECT_EQ(heap.find_object(&(*big)[2500]), big);
  EXPECT_EQ(heap.find_object(&(*big)[4999]), big);
  const std::uint64_t on_stack = 0;
  EXPECT_FALSE(heap.is_heap_object(&on_stack));
  EXPECT_EQ(heap.find_object(&on_stack), nullptr);
  EXPECT_EQ(heap.find_object(nullptr), nullptr);
  heap.collect();
  EXPECT_TRUE(heap.is_heap_object(node));
  EXPECT_EQ(heap.find_object(&(*big)[10]), big);
  EXPECT_TRUE(node->intact(1));
}

}  // namespace handoff::test
