#include <handoff/mutant.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace handoff {

namespace {

constexpr const char* kNames[] = {
    "none",
    "limbo_one_advance",
    "reclaim_without_generation",
    "claim_scan_unpinned",
    "sweeper_walk_unpinned",
    "retire_push_before_unlink",
    "advance_skips_participant",
    "claim_unpin_before_cas",
    "eager_sweep_accepts_owned",
    "pin_store_release",
    "registry_load_relaxed",
    "limbo_tag_before_unlink",
    "find_cell_unprotected",
    "sweeper_ignores_pause",
    "detach_keeps_record",
    "unswept_count_sub_twice",
    "unswept_count_misses_add",
};
static_assert(sizeof kNames / sizeof kNames[0] == static_cast<unsigned>(Mutant::kCount));

}  // namespace

const char* mutant_name(Mutant m) noexcept {
  const auto i = static_cast<unsigned>(m);
  return i < static_cast<unsigned>(Mutant::kCount) ? kNames[i] : "invalid";
}

Mutant mutant_from_name(const char* name) noexcept {
  for (unsigned i = 0; i < static_cast<unsigned>(Mutant::kCount); ++i) {
    if (std::strcmp(name, kNames[i]) == 0) return static_cast<Mutant>(i);
  }
  return Mutant::kCount;
}

#if defined(HANDOFF_TEST_HOOKS)
namespace mutant {
namespace {

constexpr unsigned kUnread = ~0u;
std::atomic<unsigned> g_selected{kUnread};

unsigned from_environment() noexcept {
  const char* name = std::getenv("HANDOFF_MUTANT");
  if (name == nullptr || *name == '\0') return static_cast<unsigned>(Mutant::kNone);
  const Mutant m = mutant_from_name(name);
  if (m == Mutant::kCount) {
    std::fprintf(stderr, "handoff: HANDOFF_MUTANT=%s names no mutant\n", name);
    std::abort();
  }
  if (m != Mutant::kNone) std::fprintf(stderr, "handoff: protocol mutant '%s' planted (HANDOFF_MUTANT)\n", name);
  return static_cast<unsigned>(m);
}

}  // namespace

Mutant selected() noexcept {
  unsigned m = g_selected.load(std::memory_order_relaxed);
  if (m == kUnread) {
    unsigned expected = kUnread;
    const unsigned read = from_environment();
    if (!g_selected.compare_exchange_strong(expected, read, std::memory_order_relaxed)) return static_cast<Mutant>(expected);
    m = read;
  }
  return static_cast<Mutant>(m);
}

void select(Mutant m) noexcept { g_selected.store(static_cast<unsigned>(m), std::memory_order_relaxed); }

}  // namespace mutant
#endif

}  // namespace handoff
