// The epoch domain: epoch-based reclamation of blocks (DESIGN.md invariant 3).
//
// What it protects. A thread that reads a block pointer from a shared
// structure (a directory's registry) may dereference it only while pinned,
// and a block leaves RETIRED for the pool only after every registered thread
// has been unpinned at some moment since the block was retired (a grace
// period). So no block is freed while any thread may still read it.
//
// The states of a participant word L = (epoch << 1) | pinned:
//   unpinned (0)            quiescent: holds no block pointer read from a
//                           shared structure, except blocks it OWNS
//   pinned at e             inside a critical section begun when E was e
// The global epoch E only moves forward, by one, and only when every pinned
// participant was pinned at the current E (try_advance).
//
// Why two advances suffice. A block is unlinked (its registry slot set to
// null) and then tagged with t = E. A reader that can still hold its pointer
// loaded the slot before the unlink, so it pinned before the unlink and was
// pinned at some e <= t. E moves from t+1 to t+2 only when every pinned
// participant is pinned at t+1, which that reader cannot be without having
// unpinned and pinned again after E became t+1, that is after the unlink, in
// a new critical section that cannot see the unlinked pointer. Hence
// E >= t + 2 proves the reader is gone. (Crossbeam-epoch makes the same
// argument; Fraser's thesis, UCAM-CL-TR-579, section 5.2.3.)
//
// Memory ordering. The argument needs the store-buffering pattern to be
// impossible between a pin (store L, then load slots) and a retire (store
// slot = null, then load every L): each side must see the other's store. We
// use seq_cst for exactly those four operations (pin's store, the registry
// loads in a claim scan, the unlink store, the scan of L in try_advance) and
// for E's loads and CAS. Lookups by address (Allocator::find_cell) pin too,
// and order a seq_cst load of the block's state word against the seq_cst
// retire CAS instead of a registry load against the unlink (allocator.h,
// lookup_block). There is no standalone std::atomic_thread_fence:
// ThreadSanitizer does not model fences, while it models seq_cst atomics, so
// what TSan checks is the code that runs.
//
// Thread exit. unregister_thread() unpins and frees the record for reuse;
// an unregistered record reads as unpinned, so an exited thread never delays
// a grace period again (invariant 5).
//
// Layering. DESIGN.md places epochs in collector/; they live here because the
// allocator's refill path pins, and allocator/ never includes collector/.
// The rest of the reclaim protocol lives here too: the limbo (limbo.h) and
// the concurrent sweeper (concurrent_sweeper.h). This header, limbo.h,
// mutant.h and atomic.h are internal (allocator/internal/, never
// installed): Allocator holds the domain through a pointer, so no public
// header needs more than the class names; the counters an embedder reads
// are in reclaim_stats.h.
//
// Relaxed-memory check. Every shared word here is an Atomic<T>
// (handoff/atomic.h): std::atomic<T> in every build of the library, and
// Relacy's rl::atomic<T> in allocator/tests/relacy/, which compiles this
// header and epoch.cpp unchanged and explores their weak-memory behaviours
// (the pin, unpin, try_advance, the registry load and the unlink below).
#pragma once

#include <handoff/atomic.h>
#include <handoff/mutant.h>
#include <handoff/config.h>
#include <handoff/reclaim_stats.h>
#include <handoff/sanitizer.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

namespace handoff {

class EpochDomain;

// One registered thread's record. Records are linked into the domain once
// and never freed (reused after unregister), so try_advance can walk them
// without locks. Each record has a cache line of its own: two threads'
// records from consecutive allocations shared one, and every refill's pin
// and unpin (two stores) then took the line from the other thread.
class alignas(64) EpochParticipant {
 public:
  // A1: read E, publish "pinned at E". The seq_cst store orders it before the
  // seq_cst registry loads that follow (store-buffering with retire).
  void pin(const Atomic<std::uint64_t>& global) noexcept {
    const std::uint64_t e = global.load(std::memory_order_seq_cst);
    state_.store((e << 1) | 1,
                 HANDOFF_MUTANT(kPinStoreRelease) ? std::memory_order_release : std::memory_order_seq_cst);
  }
  // A7: quiescent again. Release: our reads of blocks happen before any
  // advance that observes the unpin.
  void unpin() noexcept { state_.store(0, std::memory_order_release); }

  bool pinned() const noexcept { return (state_.load(std::memory_order_relaxed) & 1) != 0; }

 private:
  friend class EpochDomain;
  Atomic<std::uint64_t> state_{0};
  Atomic<bool> in_use_{false};
  EpochParticipant* next_ = nullptr;  // immutable once linked
};

// RAII pin for one critical section.
class EpochGuard {
 public:
  EpochGuard(EpochParticipant& participant, const Atomic<std::uint64_t>& global) noexcept
      : participant_(participant) {
    participant_.pin(global);
  }
  ~EpochGuard() { participant_.unpin(); }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

 private:
  EpochParticipant& participant_;
};

// A pin for a thread that is not otherwise registered (an eager sweep or a
// stats walk called from any thread): registers, pins, and undoes both.
class ScopedPin {
 public:
  explicit ScopedPin(EpochDomain& domain);
  ~ScopedPin();
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;

 private:
  EpochDomain& domain_;
  EpochParticipant* participant_;
};

class EpochDomain {
 public:
  EpochDomain() = default;
  ~EpochDomain();
  EpochDomain(const EpochDomain&) = delete;
  EpochDomain& operator=(const EpochDomain&) = delete;

  EpochParticipant* register_thread();
  void unregister_thread(EpochParticipant* participant) noexcept;

  const Atomic<std::uint64_t>& global() const noexcept { return global_; }
  std::uint64_t epoch() const noexcept { return global_.load(std::memory_order_seq_cst); }

  // S3: advances E by one if every pinned participant is pinned at E.
  bool try_advance() noexcept;

  // True when a block retired with `tag` may be freed now.
  bool grace_period_over(std::uint64_t tag) const noexcept;

  EpochStats stats() const;

#if defined(HANDOFF_TEST_HOOKS)
  // Negative control (test builds only): when off, every retired block's
  // grace period counts as over at once, so blocks are freed while readers
  // may still hold them. stress_handoff shows the use-after-free this causes.
  void set_grace_period_enabled(bool on) noexcept { grace_enabled_.store(on, std::memory_order_relaxed); }
#endif

 private:
  Atomic<std::uint64_t> global_{0};
  Atomic<EpochParticipant*> head_{nullptr};
  Atomic<std::uint64_t> advances_{0};
  Atomic<std::uint64_t> failed_advances_{0};
  Atomic<std::size_t> registered_{0};
  std::mutex register_mutex_;
#if defined(HANDOFF_TEST_HOOKS)
  Atomic<bool> grace_enabled_{true};
#endif
};

// The registry side of the store-buffering pair (papers/handoff.md A2, S2).
// A registry slot is an Atomic<T*>; these are the only accesses to it that
// the grace-period argument relies on, kept here beside the pin so that the
// relaxed-memory check runs exactly this code.
//
// A2: a reader's load of a slot, inside a pin. seq_cst against the unlink.
template <class T>
T* load_registry_slot(const Atomic<T*>& slot) noexcept {
  return slot.load(HANDOFF_MUTANT(kRegistryLoadRelaxed) ? std::memory_order_relaxed : std::memory_order_seq_cst);
}

// S2: unlinks a slot, then reads the limbo tag. The tag must be read after
// the unlink: a reader that still loads the pointer then pinned at an epoch
// no later than the tag (epoch.h's argument above).
template <class T>
std::uint64_t unlink_registry_slot(Atomic<T*>& slot, const EpochDomain& epochs) noexcept {
  if (HANDOFF_MUTANT(kLimboTagBeforeUnlink)) {
    const std::uint64_t early = epochs.epoch();
    slot.store(nullptr, std::memory_order_seq_cst);
    return early;
  }
  slot.store(nullptr, std::memory_order_seq_cst);
  return epochs.epoch();
}

}  // namespace handoff
