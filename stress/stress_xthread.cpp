// stress_xthread: objects allocated on one thread, handed to another and
// dropped there.
//
// Threads form a ring; each owns an inbox (a mutex, a condition variable and
// a deque of Root<Message>: a queued message is held by a precise root, since
// the deque lives on the C++ heap where no scan looks). A thread either takes
// a message from its inbox, checks it, and forwards it to the next thread
// (changing its payload: the new owner writes to it) or drops it; or makes a
// new message (small, or with a large trailing payload now and then) and
// sends it on. When its inbox is empty and the next one is full it blocks,
// inside a ParkedScope, so collections never wait for it. Collections are
// frequent (small trigger); the heap's sweeper frees blocks whose cells were
// allocated on one thread and died on another.
//
// Violations: a message whose checksum does not match its id and hop count
// (a live cell was reused, or a write was lost), a message delivered twice or
// lost (sent == received + dropped-in-queue at the end), the verifier failing.
#include "heap_stress.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using handoff::Member;
using handoff::Root;
using handoff::stress::mix;
using handoff::stress::Options;

const handoff::stress::ProgramInfo kInfo{
    "stress_xthread",
    "Objects allocated on one thread, handed through queues to others that mutate and\n"
    "drop them; blocking waits are parked. Checks checksums and that no message is lost\n"
    "or delivered twice.",
    {4, 10.0, 1, false},
    {2, 1.5, 1, true},
    handoff::stress::print_heap_tunables,
};

struct Payload : handoff::Leaf {
  std::uint64_t words;
  explicit Payload(std::uint64_t w) : words(w) {}
  std::uint64_t* data() { return reinterpret_cast<std::uint64_t*>(this + 1); }
  const std::uint64_t* data() const { return reinterpret_cast<const std::uint64_t*>(this + 1); }
};

struct Message {
  Member<Payload> payload;
  std::uint64_t id;
  std::uint64_t hops = 0;
  std::uint64_t check;
  explicit Message(std::uint64_t i) : id(i), check(mix(i)) {}
  void trace(handoff::Visitor& v) const { v.trace(payload); }
  std::uint64_t expected_word(std::uint64_t k) const { return mix(id + hops * 0x1000 + k); }
  void rewrite() {  // the current owner's write: checksums follow the hop count
    check = mix(id ^ (hops << 56));
    if (payload) {
      for (std::uint64_t k = 0; k < payload->words; ++k) payload->data()[k] = expected_word(k);
    }
  }
  bool intact() const {
    if (check != mix(id ^ (hops << 56))) return false;
    if (payload) {
      for (std::uint64_t k = 0; k < payload->words; ++k) {
        if (payload->data()[k] != expected_word(k)) return false;
      }
    }
    return true;
  }
};

struct Inbox {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Root<Message>> queue;
};

struct Shared {
  Shared(const Options& o, handoff::HeapConfig config) : options(o), heap(config), inboxes(o.threads) {
    for (auto& box : inboxes) box = std::make_unique<Inbox>();
  }
  Options options;
  handoff::Heap heap;
  std::vector<std::unique_ptr<Inbox>> inboxes;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> sent{0};       // new messages
  std::atomic<std::uint64_t> dropped{0};    // taken and not forwarded
  std::atomic<std::uint64_t> forwarded{0};

  [[noreturn]] void violation(const std::string& what) { handoff::stress::fail(kInfo, options, what); }
};

constexpr std::size_t kInboxCap = 256;

handoff::HeapConfig xthread_config() {
  handoff::HeapConfig config = handoff::stress::heap_config_from_environment(kInfo);
  config.initial_heap_bytes = 512 << 10;
  config.growth_percent = 50;
  config.allocation_slice_bytes = 16 << 10;
  return config;
}

Message* make_message(handoff::Heap& heap, std::mt19937_64& rng, std::uint64_t id) {
  Message* m = heap.make<Message>(id);
  const unsigned roll = static_cast<unsigned>(rng() % 100);
  std::uint64_t words = 0;
  if (roll < 2) {
    words = 1100 + rng() % 4000;  // a large object
  } else if (roll < 60) {
    words = rng() % 64;
  }
  if (words != 0) m->payload = heap.make_with_extra<Payload>(words * sizeof(std::uint64_t), words);
  m->rewrite();
  return m;
}

// Moves out the oldest message, or nullptr when the inbox is empty.
Message* take(Inbox& box) {
  std::lock_guard lock(box.mutex);
  if (box.queue.empty()) return nullptr;
  Message* m = box.queue.front().get();
  box.queue.pop_front();  // m is now held by this thread's stack only
  return m;
}

bool try_send(Inbox& box, handoff::Heap& heap, Message* m) {
  {
    std::lock_guard lock(box.mutex);
    if (box.queue.size() >= kInboxCap) return false;
    box.queue.emplace_back(heap, m);
  }
  box.ready.notify_one();
  return true;
}

// Blocks until the inbox has a message or a short timeout: parked, so a
// collection requested meanwhile proceeds without this thread.
void wait_for_mail(Shared& shared, Inbox& box) {
  handoff::ParkedScope parked(shared.heap);
  std::unique_lock lock(box.mutex);
  box.ready.wait_for(lock, std::chrono::milliseconds(2), [&] {
    return !box.queue.empty() || shared.stop.load(std::memory_order_relaxed);
  });
}

void mutator(Shared& shared, unsigned thread) {
  handoff::ThreadScope attached(shared.heap);
  auto rng = handoff::stress::thread_rng(shared.options.seed, thread);
  Inbox& mine = *shared.inboxes[thread];
  Inbox& next = *shared.inboxes[(thread + 1) % shared.options.threads];
  std::uint64_t serial = std::uint64_t{thread + 1} << 40;
  std::uint64_t ops = 0;
  while (!shared.stop.load(std::memory_order_relaxed)) {
    if (Message* m = take(mine)) {
      if (!m->intact()) {
        shared.violation("message " + std::to_string(m->id) + " corrupted after " + std::to_string(m->hops) +
                         " hops (received by thread " + std::to_string(thread) + ")");
      }
      ++m->hops;
      m->rewrite();
      if (rng() % 2 == 0 && try_send(next, shared.heap, m)) {
        shared.forwarded.fetch_add(1, std::memory_order_relaxed);
      } else {
        shared.dropped.fetch_add(1, std::memory_order_relaxed);  // dies on this thread
      }
    } else if (Message* fresh = make_message(shared.heap, rng, ++serial); try_send(next, shared.heap, fresh)) {
      shared.sent.fetch_add(1, std::memory_order_relaxed);
    } else {
      wait_for_mail(shared, mine);  // `fresh` is garbage now
    }
    if (++ops % 256 == 0) shared.ops.fetch_add(256, std::memory_order_relaxed);
  }
}

std::uint64_t drain_and_check(Shared& shared) {
  std::uint64_t left = 0;
  for (auto& box : shared.inboxes) {
    while (Message* m = take(*box)) {
      if (!m->intact()) shared.violation("message " + std::to_string(m->id) + " corrupted while queued at the end");
      ++left;
    }
  }
  return left;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = handoff::stress::parse_options(argc, argv, kInfo);
  Shared shared(options, xthread_config());
  std::printf("%s: %u threads, %.1f s, seed %" PRIu64 "\n", kInfo.name, options.threads, options.seconds, options.seed);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < options.threads; ++t) threads.emplace_back(mutator, std::ref(shared), t);
  const double elapsed = handoff::stress::run_with_progress(options.seconds, [&](double t) {
    handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), t);
  });
  shared.stop.store(true);
  for (auto& t : threads) t.join();
  std::uint64_t left = 0;
  {
    handoff::ThreadScope attached(shared.heap);
    shared.heap.collect();
    left = drain_and_check(shared);
    shared.heap.verify();
  }
  handoff::stress::print_heap_progress(kInfo, shared.heap, shared.ops.load(), elapsed);
  // Each new message ends exactly once: dropped by a receiver or left queued.
  const std::uint64_t sent = shared.sent.load();
  const std::uint64_t ended = shared.dropped.load() + left;
  if (sent != ended) {
    shared.violation(std::to_string(sent) + " messages sent but " + std::to_string(ended) +
                     " ended (dropped + left queued): a message was lost or delivered twice");
  }
  const handoff::HeapStats stats = shared.heap.stats();
  if (stats.collections == 0) shared.violation("no collection ran: nothing was exercised");
  if (sent == 0) shared.violation("no message was sent");
  std::printf("%s: no violation (%" PRIu64 " messages, %" PRIu64 " forwards, %" PRIu64 " collections)\n",
              kInfo.name, sent, shared.forwarded.load(), stats.collections);
  return 0;
}
