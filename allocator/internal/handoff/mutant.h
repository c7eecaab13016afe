// Protocol mutants: named, deliberately planted bugs in the handoff
// protocol, selected at run time in test builds so that the suite can prove
// it catches each one (STYLE.md 17: every check has been seen to fail).
//
// Compiled only with HANDOFF_TEST_HOOKS (the debug, asan and tsan presets).
// In other builds HANDOFF_MUTANT(name) is the constant false, so every
// mutant branch folds away and release code, the allocation fast path
// included, is what it would be without this header.
//
// Selection: the environment variable HANDOFF_MUTANT=<name> (read once, at
// the first query), or mutant::select() from a test. scripts/mutation.sh
// runs the suite once per mutant; papers/handoff.md lists what catches each.
//
//   limbo_one_advance          S4 frees after one epoch advance, not two
//   reclaim_without_generation R3 re-claims the last block without its generation check
//   claim_scan_unpinned        A1..A7 scan the registry without a pin
//   sweeper_walk_unpinned      the concurrent sweeper's S1 walk runs without a pin
//   retire_push_before_unlink  S2 pushes to limbo (and tags) before unlinking the slot
//   advance_skips_participant  S3 does not look at the first participant
//   claim_unpin_before_cas     A6 unpins after the state load, before the CAS
//   eager_sweep_accepts_owned  the eager sweep also claims OWNED blocks
//   pin_store_release          A1's store is release, not seq_cst
//   registry_load_relaxed      A2's registry loads are relaxed, not seq_cst
//   limbo_tag_before_unlink    S2 reads the limbo tag before the unlink
//   find_cell_unprotected      lookups read a block header without pin or state check
//   sweeper_ignores_pause      the sweeper neither stops its walk nor waits on pause()
//   detach_keeps_record        a detaching thread keeps its epoch record registered
//   unswept_count_sub_twice    a lazy claim takes two off the directory's UNSWEPT count
//   unswept_count_misses_add   a lazy sweep begin does not count the blocks it made UNSWEPT
#pragma once

#include <cstdint>

namespace handoff {

enum class Mutant : unsigned {
  kNone,
  kLimboOneAdvance,
  kReclaimWithoutGeneration,
  kClaimScanUnpinned,
  kSweeperWalkUnpinned,
  kRetirePushBeforeUnlink,
  kAdvanceSkipsParticipant,
  kClaimUnpinBeforeCas,
  kEagerSweepAcceptsOwned,
  kPinStoreRelease,
  kRegistryLoadRelaxed,
  kLimboTagBeforeUnlink,
  kFindCellUnprotected,
  kSweeperIgnoresPause,
  kDetachKeepsRecord,
  kUnsweptCountSubTwice,
  kUnsweptCountMissesAdd,
  kCount,
};

const char* mutant_name(Mutant m) noexcept;
// kCount when `name` names no mutant ("none" names kNone).
Mutant mutant_from_name(const char* name) noexcept;

#if defined(HANDOFF_TEST_HOOKS)
namespace mutant {

// The selected mutant (kNone unless HANDOFF_MUTANT or select() chose one).
Mutant selected() noexcept;
void select(Mutant m) noexcept;
inline bool active(Mutant m) noexcept { return selected() == m; }

}  // namespace mutant
#define HANDOFF_MUTANT(name) (::handoff::mutant::active(::handoff::Mutant::name))
#else
#define HANDOFF_MUTANT(name) false
#endif

}  // namespace handoff
