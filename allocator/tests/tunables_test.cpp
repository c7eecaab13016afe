// Tunables: value parsing, the table, environment overrides and errors.
#include "test_support.h"

#include <handoff/error.h>
#include <handoff/tunables.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <sstream>
#include <string>

namespace handoff {
namespace {

using detail::parse_tunable_value;

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

TEST(Tunables, ParsesNumbersWithBinarySuffixes) {
  EXPECT_EQ(parse_tunable_value("0"), 0u);
  EXPECT_EQ(parse_tunable_value("123"), 123u);
  EXPECT_EQ(parse_tunable_value("64K"), 64u * 1024);
  EXPECT_EQ(parse_tunable_value("16M"), 16u * 1024 * 1024);
  EXPECT_EQ(parse_tunable_value("2G"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_tunable_value("18446744073709551615"), UINT64_MAX);
}

TEST(Tunables, RejectsJunk) {
  for (const char* junk : {"", "abc", "12X", "1KB", "K", "-1", "+5", " 5", "5 ", "1.5M", "0x10", "64k", "1m", "2g",
                           "18446744073709551616", "17179869184G"}) {
    EXPECT_EQ(parse_tunable_value(junk), std::nullopt) << "'" << junk << "'";
  }
}

TEST(Tunables, TableHasOneEntryPerFieldWithHandoffVariables) {
  std::set<std::string> names;
  std::set<std::string> envs;
  for (const auto& spec : AllocatorConfig::table()) {
    names.insert(spec.name);
    envs.insert(spec.env);
    EXPECT_EQ(std::string(spec.env).rfind("HANDOFF_", 0), 0u) << spec.env;
    EXPECT_NE(std::string(spec.help), "");
  }
  EXPECT_EQ(names.size(), AllocatorConfig::table().size());
  EXPECT_EQ(envs.size(), AllocatorConfig::table().size());
  EXPECT_EQ(envs.count("HANDOFF_PURGE_DELAY_MS"), 1u);
  EXPECT_EQ(envs.count("HANDOFF_MAX_HEAP_BYTES"), 1u);
}

TEST(Tunables, DefaultsWithoutEnvironment) {
  for (const auto& spec : AllocatorConfig::table()) ::unsetenv(spec.env);
  const AllocatorConfig config = AllocatorConfig::from_environment();
  const AllocatorConfig defaults;
  EXPECT_EQ(config.purge_delay_ms, defaults.purge_delay_ms);
  EXPECT_EQ(config.pool_keep_blocks, defaults.pool_keep_blocks);
  EXPECT_EQ(config.max_heap_bytes, defaults.max_heap_bytes);
}

TEST(Tunables, EnvironmentOverridesDefaults) {
  ScopedEnv delay("HANDOFF_PURGE_DELAY_MS", "250");
  ScopedEnv limit("HANDOFF_MAX_HEAP_BYTES", "16M");
  const AllocatorConfig config = AllocatorConfig::from_environment();
  EXPECT_EQ(config.purge_delay_ms, 250u);
  EXPECT_EQ(config.max_heap_bytes, 16u << 20);
  EXPECT_EQ(config.pool_keep_blocks, AllocatorConfig{}.pool_keep_blocks);
  Allocator heap;  // reads the environment too
  EXPECT_EQ(heap.config().purge_delay_ms, 250u);
  EXPECT_EQ(heap.stats().heap_limit_bytes, 16u << 20);
}

TEST(Tunables, JunkInTheEnvironmentThrowsNamingTheVariable) {
  ScopedEnv bad("HANDOFF_PURGE_DELAY_MS", "soon");
  try {
    AllocatorConfig::from_environment();
    FAIL() << "expected kBadTunable";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBadTunable);
    const std::string what = e.what();
    EXPECT_NE(what.find("HANDOFF_PURGE_DELAY_MS"), std::string::npos) << what;
    EXPECT_NE(what.find("soon"), std::string::npos) << what;
  }
  EXPECT_THROW(detail::read_tunable_env("HANDOFF_PURGE_DELAY_MS"), Error);
  EXPECT_EQ(detail::read_tunable_env("HANDOFF_SURELY_NOT_SET_ANYWHERE"), std::nullopt);
}

TEST(Tunables, PrintedAndJsonRenderingsListEveryTunable) {
  AllocatorConfig config;
  config.purge_delay_ms = 4242;
  std::ostringstream text;
  print_tunables(text, config, AllocatorConfig::table());
  std::ostringstream json;
  tunables_json(json, config, AllocatorConfig::table());
  EXPECT_NE(text.str().find("HANDOFF_PURGE_DELAY_MS=4242"), std::string::npos) << text.str();
  EXPECT_NE(json.str().find("\"purge_delay_ms\":4242"), std::string::npos) << json.str();
  for (const auto& spec : AllocatorConfig::table()) {
    EXPECT_NE(text.str().find(spec.env), std::string::npos);
    EXPECT_NE(json.str().find(std::string("\"") + spec.name + "\""), std::string::npos);
  }
}

}  // namespace
}  // namespace handoff
