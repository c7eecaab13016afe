// epoch_cost: what the epoch protocol adds to a refill.
//
//   epoch/pin_unpin        one EpochGuard: read E, seq_cst store of the pin,
//                          release store of the unpin. This is the whole
//                          epoch cost of a refill (A1 + A7 of the protocol).
//   refill/claim_release   Directory::try_claim of an EMPTY block (pin, scan
//                          one slot, one CAS, unpin) plus the owner's release
//                          store giving it back: a refill without the free-
//                          list build, so the pin's share of it is visible.
//   epoch/try_advance/N    the sweeper's S3 with N registered threads.
#include <benchmark/benchmark.h>
#include <handoff/allocator.h>
#include <handoff/directory.h>
#include <handoff/epoch.h>

#include <vector>

namespace {

void epoch_pin_unpin(benchmark::State& state) {
  handoff::EpochDomain domain;
  handoff::EpochParticipant* self = domain.register_thread();
  for (auto _ : state) {
    handoff::EpochGuard pinned(*self, domain.global());
    benchmark::ClobberMemory();
  }
  domain.unregister_thread(self);
}
BENCHMARK(epoch_pin_unpin)->Name("epoch/pin_unpin");

void refill_claim_release(benchmark::State& state) {
  handoff::Allocator heap{handoff::AllocatorConfig{}};
  handoff::Directory& directory = directory_of(heap, 3);
  handoff::EpochParticipant* self = heap.epochs().register_thread();
  handoff::MarkedBlock* block = directory.take_fresh_block(1);
  block->publish(block->state().with(handoff::BlockState::kEmpty));
  for (auto _ : state) {
    handoff::ClaimCursor cursor;
    const handoff::ClaimResult claim = directory.try_claim(cursor, 1, *self);
    if (claim.block != block) state.SkipWithError("claim failed");
    block->publish(block->state(std::memory_order_relaxed).with(handoff::BlockState::kEmpty));
  }
  heap.epochs().unregister_thread(self);
}
BENCHMARK(refill_claim_release)->Name("refill/claim_release");

void epoch_try_advance(benchmark::State& state) {
  handoff::EpochDomain domain;
  std::vector<handoff::EpochParticipant*> threads;
  for (int i = 0; i < state.range(0); ++i) threads.push_back(domain.register_thread());
  for (auto _ : state) benchmark::DoNotOptimize(domain.try_advance());
  for (auto* p : threads) domain.unregister_thread(p);
}
BENCHMARK(epoch_try_advance)->Name("epoch/try_advance")->Arg(1)->Arg(8)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
