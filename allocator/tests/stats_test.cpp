// Stats: the snapshot and its JSON and text renderings.
#include "test_support.h"

#include <handoff/allocator.h>

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

namespace handoff {
namespace {

// Braces and brackets balance outside strings, and nesting never goes
// negative.
::testing::AssertionResult balanced_json(const std::string& text) {
  int braces = 0;
  int brackets = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{') ++braces;
    if (c == '}') --braces;
    if (c == '[') ++brackets;
    if (c == ']') --brackets;
    if (braces < 0 || brackets < 0) return ::testing::AssertionFailure() << "closes too early at " << i;
  }
  if (braces != 0 || brackets != 0 || in_string) {
    return ::testing::AssertionFailure() << "unbalanced: braces " << braces << " brackets " << brackets;
  }
  return ::testing::AssertionSuccess();
}

TEST(Stats, JsonHasPoolClassesAndTunablesAndBalances) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  for (int i = 0; i < 100; ++i) thread.allocate(24);
  thread.allocate(kMaxSmallSize + 1);
  thread.flush();
  std::ostringstream out;
  heap.write_stats_json(out);
  const std::string json = out.str();
  for (const char* key : {"\"pool\"", "\"classes\"", "\"tunables\"", "\"large\"", "\"counters\"",
                          "\"committed_bytes\"", "\"purge_delay_ms\"", "\"max_heap_bytes\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " missing in " << json;
  }
  EXPECT_TRUE(balanced_json(json)) << json;
  EXPECT_EQ(json.front(), '{');
  EXPECT_NE(json.find("\"live_cells\":100"), std::string::npos) << "the class of 24-byte cells has 100 live";
  EXPECT_NE(json.find("\"objects\":1"), std::string::npos);
}

// "name": (built by appends: GCC 12 warns falsely on "\"" + std::string).
std::string json_key(const char* name) {
  std::string key(1, '"');
  key += name;
  key += "\":";
  return key;
}

// One table drives the counters' sums, JSON and text: every row's value
// shows up under its key and its label, and += / -= cover every row.
TEST(Stats, EveryCounterOfTheTableAppearsInJsonAndText) {
  const auto table = LocalAllocatorCounters::table();
  LocalAllocatorCounters c;
  std::uint64_t value = 1000;
  std::set<std::string> names;
  std::set<std::string> labels;
  for (const auto& spec : table) {
    c.*spec.field = value++;
    EXPECT_TRUE(names.insert(spec.name).second) << "JSON key used twice: " << spec.name;
    EXPECT_TRUE(labels.insert(spec.label).second) << "label used twice: " << spec.label;
    EXPECT_NE(std::string(spec.help), "") << spec.name;
  }
  std::ostringstream json;
  std::ostringstream text;
  counters_json_fields(json, c, table);
  counters_text(text, c, table);
  for (const auto& spec : table) {
    const std::string v = std::to_string(c.*spec.field);
    EXPECT_NE(json.str().find(json_key(spec.name) + v), std::string::npos) << json.str();
    EXPECT_NE(text.str().find(std::string(spec.label) + " " + v), std::string::npos) << text.str();
  }
  LocalAllocatorCounters twice = c;
  twice += c;
  for (const auto& spec : table) EXPECT_EQ(twice.*spec.field, 2 * (c.*spec.field)) << spec.name;
  twice -= c;
  for (const auto& spec : table) EXPECT_EQ(twice.*spec.field, c.*spec.field) << spec.name;

  // The allocator's own writers use the table: every key and label appears.
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  thread.allocate(24);
  thread.flush();
  std::ostringstream heap_json;
  std::ostringstream heap_text;
  heap.write_stats_json(heap_json);
  heap.write_stats_text(heap_text);
  const std::string counters = heap_json.str().substr(heap_json.str().find("\"counters\":"));
  for (const auto& spec : table) {
    EXPECT_NE(counters.find(json_key(spec.name)), std::string::npos) << spec.name;
    EXPECT_NE(heap_text.str().find(spec.label), std::string::npos) << spec.label << " missing in " << heap_text.str();
  }
}

TEST(Stats, TextMentionsTunablesAndTheirVariables) {
  Allocator heap(test::default_config());
  ThreadAllocator thread(heap);
  thread.allocate(24);
  thread.flush();
  std::ostringstream out;
  heap.write_stats_text(out);
  const std::string text = out.str();
  EXPECT_NE(text.find("tunables"), std::string::npos) << text;
  for (const auto& spec : AllocatorConfig::table()) {
    EXPECT_NE(text.find(spec.env), std::string::npos) << spec.env;
  }
  EXPECT_NE(text.find("pool:"), std::string::npos) << text;
}

TEST(Stats, SnapshotReflectsConfigAndBudget) {
  Allocator heap(test::config_with_limit(64 * kBlockSize));
  ThreadAllocator thread(heap);
  thread.allocate(100);
  thread.flush();
  const AllocatorStats s = heap.stats();
  EXPECT_EQ(s.heap_limit_bytes, 64 * kBlockSize);
  EXPECT_EQ(s.budget_charged_bytes, kBlockSize);
  EXPECT_EQ(s.attached_threads, 1u);
  EXPECT_EQ(s.classes[size_class_of(100)].blocks, 1u);
  EXPECT_EQ(s.classes[size_class_of(100)].live_cells, 1u);
  EXPECT_EQ(s.classes[size_class_of(100)].cell_size, class_size(size_class_of(100)));
  EXPECT_TRUE(test::pool_identities_hold(s.pool));
}

}  // namespace
}  // namespace handoff
