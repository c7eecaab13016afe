// One table of tunables (STYLE.md 7). Each entry has a name, a default, a
// help line and a HANDOFF_* environment variable that overrides it. The same
// table prints `--help` text and the tunables section of the stats dump.
//
// The mechanism is generic over the config struct so that the collector can
// keep its own table beside the allocator's without a second parser.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string_view>

namespace handoff {

// What a variable accepts. A number: decimal digits, optionally followed by
// one uppercase suffix K, M or G (binary: x1024, x1024^2, x1024^3), nothing
// else (no sign, no spaces, no lowercase suffix). A switch: exactly "0" or
// "1". Anything else throws Error(kBadTunable) naming the variable.
enum class TunableKind : unsigned char { kNumber, kSwitch };

template <class Config>
struct TunableSpec {
  const char* name;
  const char* env;
  std::uint64_t Config::*field;
  const char* help;
  TunableKind kind = TunableKind::kNumber;
};

// The syntax line that --help prints above the tables.
inline constexpr const char* kTunableSyntax =
    "values: a decimal integer, optionally with one suffix K, M or G (x1024, x1024^2, x1024^3; uppercase "
    "only); [0|1] marks a switch, which takes exactly 0 or 1";

namespace detail {
// Parses "123", "64K", "16M", "2G" (binary multiples). nullopt on junk or
// overflow.
std::optional<std::uint64_t> parse_tunable_value(std::string_view text) noexcept;
// Reads `env`; throws Error(kBadTunable) naming the variable on junk.
std::optional<std::uint64_t> read_tunable_env(const char* env, TunableKind kind = TunableKind::kNumber);
}  // namespace detail

template <class Config>
void apply_environment(Config& config, std::span<const TunableSpec<Config>> table) {
  for (const auto& spec : table) {
    if (auto value = detail::read_tunable_env(spec.env, spec.kind)) config.*spec.field = *value;
  }
}

template <class Config>
void print_tunables(std::ostream& out, const Config& config,
                    std::span<const TunableSpec<Config>> table) {
  for (const auto& spec : table) {
    out << "  " << spec.env << "=" << config.*spec.field << (spec.kind == TunableKind::kSwitch ? "  [0|1]" : "")
        << "\n      " << spec.help << "\n";
  }
}

template <class Config>
void tunables_json(std::ostream& out, const Config& config,
                   std::span<const TunableSpec<Config>> table) {
  out << "{";
  const char* sep = "";
  for (const auto& spec : table) {
    out << sep << "\"" << spec.name << "\":" << config.*spec.field;
    sep = ",";
  }
  out << "}";
}

// The allocator's tunables. Defaults are the values below; every field can
// be overridden by its environment variable through from_environment().
struct AllocatorConfig {
  // Idle time before a cached block's pages go back to the OS.
  std::uint64_t purge_delay_ms = 1000;
  // Cached blocks the pool keeps resident regardless of idle time.
  std::uint64_t pool_keep_blocks = 16;
  // Limit on bytes handed out: blocks in use plus large-object mappings.
  // Blocks cached in the pool are not counted. 0 = no limit.
  std::uint64_t max_heap_bytes = 0;

  static std::span<const TunableSpec<AllocatorConfig>> table();
  // Defaults overridden by the environment; throws Error(kBadTunable).
  static AllocatorConfig from_environment();
};

}  // namespace handoff
