// The relaxed-memory check of the handoff protocol's epoch code.
//
// Relacy (relacy-dev) runs each test body many times under a scheduler that
// explores interleavings and the weak behaviours the C++ memory model allows
// (a load may read any store it is not ordered after). This harness compiles
// the project's own epoch.h and epoch.cpp against Relacy's atomics
// (handoff/atomic.h with HANDOFF_RELACY: the Atomic<T> alias becomes
// rl::atomic<T>), so what is explored is the real pin, unpin, try_advance,
// grace_period_over, registry load (A2) and unlink-then-tag (S2); the block
// is a stand-in with a state word and a header (an rl::var, so that a read of
// it that is not ordered before the write that frees it is reported as a
// data race: Relacy's use-after-free).
//
// Three threads, one block in a one-slot registry:
//   claimer   A1 pin; A2 load the slot; A3 read the header and the state;
//             A5 CAS EMPTY -> OWNED; A7 unpin
//   retirer   S2 CAS EMPTY -> RETIRED, unlink, tag; S3 two try_advance;
//             S4 if the grace period is over, free (write the header)
//   advancer  two try_advance (the sweeper's or a second freer's reclaim)
//
// Modes. With HANDOFF_MUTANT=<name> in the environment, only that variant is
// simulated and the exit status is 1 when Relacy reports a failure (the
// mutant is caught), 0 otherwise. Without it, the self-check: the real
// orders must pass and each memory-order and grace-period mutant must be
// reported; exit 0 when all of that holds.
#define HANDOFF_RELACY 1
#define HANDOFF_TEST_HOOKS 1

#include <chrono>

#include "rl_atomic.h"  // before anything else: see there

#include "../../src/epoch.cpp"
#include "../../src/mutant.cpp"

[[noreturn]] void handoff::detail::check_failed(const char* condition, const char* message, std::source_location) {
  std::fprintf(stderr, "check failed: %s (%s)\n", condition, message);
  std::abort();
}

namespace {

using handoff::Atomic;
using handoff::EpochDomain;
using handoff::EpochParticipant;
using handoff::Mutant;

constexpr unsigned kEmpty = 1;
constexpr unsigned kOwned = 2;
constexpr unsigned kRetired = 3;

struct Block {
  Atomic<unsigned> state{kEmpty};
  rl::var<int> header;
};

struct HandoffTest : rl::test_suite<HandoffTest, 3> {
  EpochDomain* domain = nullptr;
  EpochParticipant* claimer = nullptr;
  Block* block = nullptr;
  Atomic<Block*>* slot = nullptr;

  void before() {
    domain = new EpochDomain();
    claimer = domain->register_thread();
    block = new Block();
    block->header($) = 1;
    slot = new Atomic<Block*>(block);
  }

  void thread(unsigned index) {
    if (index == 0) {
      claim();
    } else if (index == 1) {
      retire_and_free();
    } else {
      domain->try_advance();
      domain->try_advance();
    }
  }

  void claim() {
    claimer->pin(domain->global());                        // A1
    Block* b = handoff::load_registry_slot(*slot);          // A2
    if (b != nullptr) {
      const int header = b->header($);                      // A3: reads the block
      (void)header;
      unsigned seen = b->state.load(std::memory_order_acquire);
      if (seen == kEmpty) b->state.compare_exchange_strong(seen, kOwned, std::memory_order_acq_rel);  // A5
    }
    claimer->unpin();                                       // A7
  }

  void retire_and_free() {
    unsigned seen = kEmpty;
    if (!block->state.compare_exchange_strong(seen, kRetired, std::memory_order_seq_cst)) return;  // S2
    const std::uint64_t tag = handoff::unlink_registry_slot(*slot, *domain);
    domain->try_advance();                                  // S3
    domain->try_advance();
    if (domain->grace_period_over(tag)) block->header($) = 0;  // S4: the pool takes it back
  }

  void after() {
    domain->unregister_thread(claimer);
    delete slot;
    delete block;
    delete domain;
  }
};

bool simulate(Mutant m, unsigned iterations) {
  handoff::mutant::select(m);
  rl::test_params params;
  params.iteration_count = iterations;
  params.output_history = false;
  const auto start = std::chrono::steady_clock::now();
  const bool passed = rl::simulate<HandoffTest>(params);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("relacy: %-28s %s (%u iterations, %.0f ms)\n", handoff::mutant_name(m),
              passed ? "passes" : "REPORTED", iterations, ms);
  std::fflush(stdout);
  return passed;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned iterations = 200000;
  if (argc > 1) iterations = static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10));
  const char* chosen = std::getenv("HANDOFF_MUTANT");
  if (chosen != nullptr && *chosen != '\0') {
    const Mutant m = handoff::mutant_from_name(chosen);
    if (m == Mutant::kCount) {
      std::fprintf(stderr, "epoch_relacy: HANDOFF_MUTANT=%s names no mutant\n", chosen);
      return 2;
    }
    return simulate(m, iterations) ? 0 : 1;
  }
  bool ok = simulate(Mutant::kNone, iterations);
  for (Mutant m : {Mutant::kPinStoreRelease, Mutant::kRegistryLoadRelaxed, Mutant::kLimboOneAdvance,
                   Mutant::kAdvanceSkipsParticipant, Mutant::kLimboTagBeforeUnlink}) {
    if (simulate(m, iterations)) {
      std::printf("relacy: mutant %s was NOT reported\n", handoff::mutant_name(m));
      ok = false;
    }
  }
  std::printf("relacy: %s\n", ok ? "the real orders pass and every mutant is reported" : "FAILED");
  return ok ? 0 : 1;
}
