// The epoch domain: advancing one step at a time, pinned participants
// holding the epoch back, grace periods (two advances after the tag),
// record reuse after unregistering, the RAII pins, and the textbook
// epoch-based-reclamation test with readers and a reclaimer.
#include "test_support.h"

#include <handoff/epoch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

namespace handoff {
namespace {

TEST(EpochDomain, StartsAtZeroAndAdvancesByOneWhenNobodyIsPinned) {
  EpochDomain domain;
  EXPECT_EQ(domain.epoch(), 0u);
  EXPECT_EQ(domain.global().load(), 0u);
  for (std::uint64_t i = 1; i <= 10; ++i) {
    EXPECT_TRUE(domain.try_advance());
    EXPECT_EQ(domain.epoch(), i) << "each advance moves the epoch by exactly one";
  }
  const EpochStats s = domain.stats();
  EXPECT_EQ(s.epoch, 10u);
  EXPECT_EQ(s.advances, 10u);
  EXPECT_EQ(s.failed_advances, 0u);
  EXPECT_EQ(s.participants, 0u);
}

TEST(EpochDomain, RegisteredButUnpinnedParticipantsDoNotBlock) {
  EpochDomain domain;
  EpochParticipant* a = domain.register_thread();
  EpochParticipant* b = domain.register_thread();
  EXPECT_NE(a, b);
  EXPECT_FALSE(a->pinned());
  EXPECT_EQ(domain.stats().participants, 2u);
  for (std::uint64_t i = 1; i <= 5; ++i) {
    EXPECT_TRUE(domain.try_advance());
    EXPECT_EQ(domain.epoch(), i);
  }
  domain.unregister_thread(a);
  domain.unregister_thread(b);
  EXPECT_EQ(domain.stats().participants, 0u);
}

TEST(EpochDomain, APinnedParticipantAllowsOneAdvanceThenBlocksUntilItUnpins) {
  EpochDomain domain;
  ASSERT_TRUE(domain.try_advance());
  ASSERT_TRUE(domain.try_advance());
  EpochParticipant* p = domain.register_thread();
  p->pin(domain.global());  // pinned at 2
  EXPECT_TRUE(p->pinned());
  EXPECT_TRUE(domain.try_advance()) << "pinned at the current epoch: one advance is allowed";
  EXPECT_EQ(domain.epoch(), 3u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(domain.try_advance()) << "pinned at 2 while the epoch is 3";
    EXPECT_EQ(domain.epoch(), 3u);
  }
  EXPECT_EQ(domain.stats().failed_advances, 5u);
  p->unpin();
  EXPECT_FALSE(p->pinned());
  EXPECT_TRUE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 4u);
  domain.unregister_thread(p);
}

TEST(EpochDomain, RepinningAtTheNewEpochAllowsOneMoreAdvance) {
  EpochDomain domain;
  EpochParticipant* p = domain.register_thread();
  p->pin(domain.global());  // at 0
  ASSERT_TRUE(domain.try_advance());
  ASSERT_FALSE(domain.try_advance());
  p->pin(domain.global());  // re-pin without unpinning: now at 1
  EXPECT_TRUE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 2u);
  EXPECT_FALSE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 2u);
  p->unpin();
  domain.unregister_thread(p);
}

TEST(EpochDomain, OneLaggingParticipantBlocksEvenWhenOthersAreCurrent) {
  EpochDomain domain;
  EpochParticipant* old_reader = domain.register_thread();
  EpochParticipant* new_reader = domain.register_thread();
  old_reader->pin(domain.global());  // at 0
  ASSERT_TRUE(domain.try_advance());
  new_reader->pin(domain.global());  // at 1
  EXPECT_FALSE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 1u);
  old_reader->unpin();
  EXPECT_TRUE(domain.try_advance()) << "the remaining reader is pinned at the current epoch";
  EXPECT_FALSE(domain.try_advance()) << "and now it lags";
  new_reader->unpin();
  EXPECT_TRUE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 3u);
  domain.unregister_thread(old_reader);
  domain.unregister_thread(new_reader);
}

TEST(EpochDomain, GracePeriodEndsExactlyTwoEpochsAfterTheTag) {
  EpochDomain domain;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(domain.try_advance());
  const std::uint64_t tag = domain.epoch();  // 3
  EXPECT_FALSE(domain.grace_period_over(tag));
  EXPECT_FALSE(domain.grace_period_over(tag + 5)) << "a tag from the future is never over";
  ASSERT_TRUE(domain.try_advance());
  EXPECT_FALSE(domain.grace_period_over(tag)) << "one advance is not enough";
  ASSERT_TRUE(domain.try_advance());
  EXPECT_TRUE(domain.grace_period_over(tag));
  ASSERT_TRUE(domain.try_advance());
  EXPECT_TRUE(domain.grace_period_over(tag)) << "and it stays over";
  EXPECT_TRUE(domain.grace_period_over(0));
  EXPECT_FALSE(domain.grace_period_over(domain.epoch() - 1));
}

TEST(EpochDomain, GracePeriodOfABlockRetiredWhileSomeoneIsPinnedWaitsForTheUnpin) {
  EpochDomain domain;
  EpochParticipant* reader = domain.register_thread();
  reader->pin(domain.global());
  const std::uint64_t tag = domain.epoch();
  for (int i = 0; i < 20; ++i) domain.try_advance();
  EXPECT_EQ(domain.epoch(), tag + 1);
  EXPECT_FALSE(domain.grace_period_over(tag));
  reader->unpin();
  EXPECT_TRUE(domain.try_advance());
  EXPECT_TRUE(domain.grace_period_over(tag));
  domain.unregister_thread(reader);
}

TEST(EpochDomain, AnUnregisteredParticipantNeverBlocks) {
  EpochDomain domain;
  EpochParticipant* p = domain.register_thread();
  p->pin(domain.global());
  ASSERT_TRUE(domain.try_advance());
  ASSERT_FALSE(domain.try_advance());
  domain.unregister_thread(p);  // leaves while pinned: unregistering unpins
  EXPECT_FALSE(p->pinned());
  for (std::uint64_t i = 2; i <= 6; ++i) {
    EXPECT_TRUE(domain.try_advance());
    EXPECT_EQ(domain.epoch(), i);
  }
}

TEST(EpochDomain, RecordsAreReusedAfterUnregister) {
  EpochDomain domain;
  EpochParticipant* keep = domain.register_thread();  // one stays registered throughout
  std::set<EpochParticipant*> records;
  for (int i = 0; i < 1000; ++i) {
    EpochParticipant* p = domain.register_thread();
    records.insert(p);
    EXPECT_NE(p, keep);
    EXPECT_FALSE(p->pinned()) << "a reused record starts unpinned";
    EXPECT_EQ(domain.stats().participants, 2u);
    p->pin(domain.global());
    domain.unregister_thread(p);
  }
  EXPECT_EQ(records.size(), 1u) << "1000 register/unregister pairs used " << records.size() << " records";
  EXPECT_EQ(domain.stats().participants, 1u);
  domain.unregister_thread(keep);
  EXPECT_EQ(domain.stats().participants, 0u);
  EXPECT_TRUE(domain.try_advance());
}

TEST(EpochDomain, RecordsAreReusedWhenSeveralAreFree) {
  EpochDomain domain;
  std::vector<EpochParticipant*> first;
  for (int i = 0; i < 8; ++i) first.push_back(domain.register_thread());
  const std::set<EpochParticipant*> pool(first.begin(), first.end());
  EXPECT_EQ(pool.size(), 8u);
  for (EpochParticipant* p : first) domain.unregister_thread(p);
  EXPECT_EQ(domain.stats().participants, 0u);
  for (int round = 0; round < 100; ++round) {
    std::vector<EpochParticipant*> again;
    for (int i = 0; i < 8; ++i) {
      EpochParticipant* p = domain.register_thread();
      EXPECT_EQ(pool.count(p), 1u) << "a new record was allocated although 8 were free";
      again.push_back(p);
    }
    EXPECT_EQ(std::set<EpochParticipant*>(again.begin(), again.end()).size(), 8u) << "a record handed out twice";
    for (EpochParticipant* p : again) domain.unregister_thread(p);
  }
  EXPECT_EQ(domain.stats().participants, 0u);
}

TEST(EpochDomain, ConcurrentRegistrationKeepsTheCountRight) {
  EpochDomain domain;
  const int rounds = static_cast<int>(test::scaled(2000, 300));
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < test::thread_count(); ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        EpochParticipant* p = domain.register_thread();
        p->pin(domain.global());
        p->unpin();
        domain.unregister_thread(p);
      }
    });
  }
  std::atomic<bool> stop{false};
  std::thread advancer([&] {
    while (!stop.load()) domain.try_advance();
  });
  for (auto& t : threads) t.join();
  stop.store(true);
  advancer.join();
  EXPECT_EQ(domain.stats().participants, 0u);
  const std::uint64_t e = domain.epoch();
  EXPECT_TRUE(domain.try_advance()) << "nobody is registered any more";
  EXPECT_EQ(domain.epoch(), e + 1);
}

TEST(ScopedPin, BlocksAdvancesBeyondOneWhileAlive) {
  EpochDomain domain;
  {
    ScopedPin pin(domain);
    EXPECT_EQ(domain.stats().participants, 1u);
    EXPECT_TRUE(domain.try_advance());
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(domain.try_advance());
    EXPECT_EQ(domain.epoch(), 1u);
  }
  EXPECT_EQ(domain.stats().participants, 0u) << "ScopedPin unregisters";
  EXPECT_TRUE(domain.try_advance());
  EXPECT_TRUE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 3u);
}

TEST(ScopedPin, NestedPinsOnOneThreadUseSeparateRecords) {
  EpochDomain domain;
  {
    ScopedPin outer(domain);
    ASSERT_TRUE(domain.try_advance());
    {
      ScopedPin inner(domain);  // pinned at 1; the outer one at 0
      EXPECT_EQ(domain.stats().participants, 2u);
      EXPECT_FALSE(domain.try_advance());
    }
    EXPECT_FALSE(domain.try_advance()) << "the outer pin still holds the epoch";
  }
  EXPECT_TRUE(domain.try_advance());
}

TEST(EpochGuard, PinsForItsScopeAndUnpinsOnExit) {
  EpochDomain domain;
  EpochParticipant* p = domain.register_thread();
  {
    EpochGuard guard(*p, domain.global());
    EXPECT_TRUE(p->pinned());
    EXPECT_TRUE(domain.try_advance());
    EXPECT_FALSE(domain.try_advance());
  }
  EXPECT_FALSE(p->pinned());
  EXPECT_TRUE(domain.try_advance());
  EXPECT_EQ(domain.epoch(), 2u);
  domain.unregister_thread(p);
}

TEST(EpochGuard, UnpinsWhenLeftByAnException) {
  EpochDomain domain;
  EpochParticipant* p = domain.register_thread();
  try {
    EpochGuard guard(*p, domain.global());
    throw 42;
  } catch (int) {
  }
  EXPECT_FALSE(p->pinned());
  EXPECT_TRUE(domain.try_advance());
  EXPECT_TRUE(domain.try_advance());
  domain.unregister_thread(p);
}

#if defined(HANDOFF_TEST_HOOKS)
TEST(EpochDomain, DisablingTheGracePeriodMakesEveryTagOverAtOnce) {
  EpochDomain domain;
  EpochParticipant* p = domain.register_thread();
  p->pin(domain.global());
  const std::uint64_t tag = domain.epoch();
  EXPECT_FALSE(domain.grace_period_over(tag));
  domain.set_grace_period_enabled(false);
  EXPECT_TRUE(domain.grace_period_over(tag)) << "the negative control ignores pinned readers";
  EXPECT_TRUE(domain.grace_period_over(tag + 100));
  EXPECT_EQ(domain.epoch(), tag) << "the switch does not move the epoch";
  domain.set_grace_period_enabled(true);
  EXPECT_FALSE(domain.grace_period_over(tag));
  EXPECT_FALSE(domain.grace_period_over(tag + 100));
  p->unpin();
  domain.unregister_thread(p);
}
#endif

// The textbook epoch-based reclamation test. Readers pin, load a published
// node, check its magic and payload, unpin. A reclaimer swaps in a new node,
// retires the old one with tag = epoch(), tries to advance, and frees only
// nodes whose grace period is over, overwriting the magic first. A reader
// that ever sees a zeroed magic (or ASan seeing the freed node) means the
// domain let a node go while a reader could still hold it. The fields are
// plain (not atomic) on purpose: TSan then checks that the epoch operations
// order every reader's access before the reclaimer's writes.
struct Node {
  static constexpr std::uint64_t kMagic = 0x600DF00DCAFEBEEFull;
  std::uint64_t magic = kMagic;
  std::uint64_t serial = 0;
  std::uint64_t check = 0;  // serial * kMagic
};

TEST(EpochConcurrency, ReadersNeverSeeAReclaimedNode) {
  EpochDomain domain;
  std::atomic<Node*> published{new Node{Node::kMagic, 0, 0}};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0};
  std::atomic<std::uint64_t> reads{0};
  const unsigned readers = test::thread_count();

  std::vector<std::thread> threads;
  for (unsigned t = 0; t < readers; ++t) {
    threads.emplace_back([&] {
      EpochParticipant* self = domain.register_thread();
      std::uint64_t local_reads = 0;
      std::uint64_t local_bad = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        EpochGuard guard(*self, domain.global());
        const Node* node = published.load(std::memory_order_seq_cst);
        for (int k = 0; k < 4; ++k) {  // stay inside a while: widen the window
          if (node->magic != Node::kMagic || node->check != node->serial * Node::kMagic) ++local_bad;
        }
        ++local_reads;
      }
      domain.unregister_thread(self);
      reads.fetch_add(local_reads);
      bad.fetch_add(local_bad);
    });
  }

  struct Retired {
    Node* node;
    std::uint64_t tag;
  };
  std::vector<Retired> limbo;
  std::uint64_t freed = 0;
  std::uint64_t serial = 0;
  std::size_t max_limbo = 0;
  // 200 ms, and on until a grace period ended (at most 10 s): on a loaded
  // machine a reader preempted while pinned holds every retirement up for
  // as long as it waits for a core, so a fixed time may free nothing.
  const auto start = std::chrono::steady_clock::now();
  const auto more = [&] {
    const auto spent = std::chrono::steady_clock::now() - start;
    return spent < std::chrono::milliseconds(200) || (freed == 0 && spent < std::chrono::seconds(10));
  };
  while (more()) {
    ++serial;
    Node* fresh = new Node{Node::kMagic, serial, serial * Node::kMagic};
    Node* old = published.exchange(fresh, std::memory_order_seq_cst);  // unlink
    limbo.push_back({old, domain.epoch()});                            // tag read after the unlink
    domain.try_advance();
    std::size_t kept = 0;
    for (const Retired& r : limbo) {
      if (domain.grace_period_over(r.tag)) {
        r.node->magic = 0;
        r.node->check = ~std::uint64_t{0};
        delete r.node;
        ++freed;
      } else {
        limbo[kept++] = r;
      }
    }
    limbo.resize(kept);
    max_limbo = std::max(max_limbo, limbo.size());
    if (serial % 64 == 0) std::this_thread::yield();
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  for (const Retired& r : limbo) delete r.node;
  delete published.load();

  EXPECT_EQ(bad.load(), 0u) << "a reader saw a node after it was reclaimed";
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(freed, 0u) << "the reclaimer never got past a grace period in " << serial << " retirements";
  EXPECT_EQ(domain.stats().participants, 0u);
  RecordProperty("retired", static_cast<int>(serial));
  RecordProperty("freed", static_cast<int>(freed));
  RecordProperty("max_limbo", static_cast<int>(max_limbo));
}

}  // namespace
}  // namespace handoff
