#include <handoff/check.h>
#include <handoff/epoch.h>

namespace handoff {

EpochDomain::~EpochDomain() {
  EpochParticipant* p = head_.load(std::memory_order_acquire);
  while (p != nullptr) {
    EpochParticipant* next = p->next_;
    HANDOFF_CHECK(!p->in_use_.load(std::memory_order_relaxed),
                  "epoch domain destroyed while a thread is still registered");
    delete p;
    p = next;
  }
}

EpochParticipant* EpochDomain::register_thread() {
  std::lock_guard lock(register_mutex_);
  registered_.fetch_add(1, std::memory_order_relaxed);
  for (EpochParticipant* p = head_.load(std::memory_order_acquire); p != nullptr; p = p->next_) {
    if (!p->in_use_.load(std::memory_order_relaxed)) {
      p->in_use_.store(true, std::memory_order_relaxed);
      return p;
    }
  }
  auto* p = new EpochParticipant();
  p->in_use_.store(true, std::memory_order_relaxed);
  p->next_ = head_.load(std::memory_order_relaxed);
  // seq_cst, like the scan's load: a record linked before its first pin is
  // in the single order the store-buffering argument reasons about.
  head_.store(p, std::memory_order_seq_cst);
  return p;
}

void EpochDomain::unregister_thread(EpochParticipant* participant) noexcept {
  participant->unpin();
  std::lock_guard lock(register_mutex_);
  participant->in_use_.store(false, std::memory_order_relaxed);
  registered_.fetch_sub(1, std::memory_order_relaxed);
}

ScopedPin::ScopedPin(EpochDomain& domain) : domain_(domain), participant_(domain.register_thread()) {
  participant_->pin(domain.global());
}

ScopedPin::~ScopedPin() { domain_.unregister_thread(participant_); }

bool EpochDomain::try_advance() noexcept {
  const std::uint64_t e = global_.load(std::memory_order_seq_cst);
  EpochParticipant* first = head_.load(std::memory_order_seq_cst);
  if (HANDOFF_MUTANT(kAdvanceSkipsParticipant) && first != nullptr) first = first->next_;
  for (EpochParticipant* p = first; p != nullptr; p = p->next_) {
    const std::uint64_t l = p->state_.load(std::memory_order_seq_cst);
    if ((l & 1) != 0 && (l >> 1) != e) {
      failed_advances_.fetch_add(1, std::memory_order_relaxed);
      return false;  // someone is still in a critical section begun before e
    }
  }
  std::uint64_t expected = e;
  const bool advanced = global_.compare_exchange_strong(expected, e + 1, std::memory_order_seq_cst);
  if (advanced) advances_.fetch_add(1, std::memory_order_relaxed);
  return advanced;
}

bool EpochDomain::grace_period_over(std::uint64_t tag) const noexcept {
#if defined(HANDOFF_TEST_HOOKS)
  if (!grace_enabled_.load(std::memory_order_relaxed)) return true;
#endif
  const std::uint64_t grace = HANDOFF_MUTANT(kLimboOneAdvance) ? 1 : 2;
  return global_.load(std::memory_order_seq_cst) >= tag + grace;
}

EpochStats EpochDomain::stats() const {
  EpochStats s;
  s.epoch = epoch();
  s.advances = advances_.load(std::memory_order_relaxed);
  s.failed_advances = failed_advances_.load(std::memory_order_relaxed);
  s.participants = registered_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace handoff
