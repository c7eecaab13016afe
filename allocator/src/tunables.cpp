#include <handoff/error.h>
#include <handoff/tunables.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <string>

namespace handoff {
namespace detail {

std::optional<std::uint64_t> parse_tunable_value(std::string_view text) noexcept {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [rest, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || rest == text.data()) return std::nullopt;
  std::uint64_t scale = 1;
  if (rest != end) {
    switch (*rest) {
      case 'K': scale = std::uint64_t{1} << 10; break;
      case 'M': scale = std::uint64_t{1} << 20; break;
      case 'G': scale = std::uint64_t{1} << 30; break;
      default: return std::nullopt;
    }
    if (rest + 1 != end) return std::nullopt;
  }
  if (value > std::numeric_limits<std::uint64_t>::max() / scale) return std::nullopt;
  return value * scale;
}

std::optional<std::uint64_t> read_tunable_env(const char* env, TunableKind kind) {
  const char* text = std::getenv(env);
  if (text == nullptr) return std::nullopt;
  if (kind == TunableKind::kSwitch) {
    const std::string_view t(text);
    if (t == "0" || t == "1") return t == "1" ? 1 : 0;
    throw Error(ErrorCode::kBadTunable, std::string(env) + "='" + text + "': an on/off switch takes exactly 0 or 1");
  }
  auto value = parse_tunable_value(text);
  if (!value) {
    throw Error(ErrorCode::kBadTunable,
                std::string(env) + "='" + text +
                    "' is not a non-negative integer (optional uppercase K, M or G suffix)");
  }
  return value;
}

}  // namespace detail

namespace {
constexpr std::array<TunableSpec<AllocatorConfig>, 3> kAllocatorTunables{{
    {"purge_delay_ms", "HANDOFF_PURGE_DELAY_MS", &AllocatorConfig::purge_delay_ms,
     "milliseconds a cached block stays idle in the pool before its pages go back to the OS"},
    {"pool_keep_blocks", "HANDOFF_POOL_KEEP_BLOCKS", &AllocatorConfig::pool_keep_blocks,
     "cached blocks the pool keeps resident however long they are idle"},
    {"max_heap_bytes", "HANDOFF_MAX_HEAP_BYTES", &AllocatorConfig::max_heap_bytes,
     "limit on bytes handed out: blocks in use plus large-object mappings (cached blocks are not counted); 0 means no limit"},
}};
}  // namespace

std::span<const TunableSpec<AllocatorConfig>> AllocatorConfig::table() {
  return kAllocatorTunables;
}

AllocatorConfig AllocatorConfig::from_environment() {
  AllocatorConfig config;
  apply_environment(config, table());
  return config;
}

}  // namespace handoff
