// The macro workloads: one body each, written against the backend interface
// of backend.h, so that every backend runs exactly the same code. Where a
// malloc-family backend frees (B::kFreesExplicitly), a collector's release
// calls compile to nothing and the object simply becomes unreachable.
//
//   gcbench       Boehm's GCBench with its standard parameters: a stretch
//                 tree of depth 18, a long-lived tree of depth 16 and an
//                 array of 500,000 doubles, then short-lived trees of depth
//                 4..16 step 2, built top-down (populate) and bottom-up.
//                 With --threads N every thread runs the whole benchmark.
//   binary-trees  the benchmarks-game shape: a stretch tree of depth max+1,
//                 a long-lived tree of depth max, then for d = 4..max step
//                 2, 2^(max-d+4) trees of depth d, each built bottom-up,
//                 checked (node count) and dropped; the trees of one depth
//                 are shared out among the threads.
//   larson        a server: a table of slots per thread; each operation
//                 replaces a random slot's object with a new one of random
//                 size (16..128 B); the threads are replaced every
//                 generation, so objects are released by a thread other
//                 than the one (now gone) that allocated them.
//   prodcons      producers build messages (1..4 linked nodes, each with a
//                 16..256 B payload) and pass them through a bounded queue
//                 to consumers, which read and release them.
//   steady        a steady working set per thread (mixed sizes 16..512 B,
//                 one in 1000 objects of 8..32 KiB) with churn: each
//                 operation replaces a random object.
//
// Every workload counts its allocations and bytes requested, and computes a
// checksum from the data it reads, so that nothing can be optimised away and
// a wrong result shows.
#pragma once

#include "backend.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {

struct WorkloadParams {
  int threads = 1;
  int depth = 0;             // binary-trees max depth (0: default)
  std::uint64_t ops = 0;     // larson, prodcons, steady: operations (0: default)
  std::uint64_t slots = 0;   // larson slots per thread, steady working-set bytes
  int generations = 0;       // larson
  bool tiny = false;         // a smoke-sized run (CTest)
};

// Each worker thread counts into its own Tally, and every allocation adds to
// it, so two threads' tallies must not share a cache line: they sat side by
// side in a std::vector (24 bytes each), and on binary-trees with two
// threads the increment in Trees::node was half of all samples of a
// cpu-clock profile whenever the two landed on one line (wall time 1.2 s
// against 0.6 s, run to run, for every backend alike). 128 bytes: a line
// and the neighbour the adjacent-line prefetcher pulls with it.
struct alignas(128) Tally {
  std::uint64_t objects = 0;
  std::uint64_t bytes = 0;
  std::uint64_t checksum = 0;
  Tally& operator+=(const Tally& o) noexcept {
    objects += o.objects;
    bytes += o.bytes;
    checksum += o.checksum;
    return *this;
  }
};

// The parameters a run actually used, for the result line.
struct RunReport {
  Tally tally;
  std::string params;  // JSON object
};

// A small fast generator (xorshift64*), seeded per thread.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() noexcept {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  std::uint64_t below(std::uint64_t n) noexcept { return next() % n; }

 private:
  std::uint64_t s_;
};

// Runs body(index) on `count` threads, each attached to the backend, while
// the calling thread waits parked; rethrows the first exception.
template <class B, class Body>
void run_threads(B& backend, int count, Body&& body) {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(count));
  threads.reserve(static_cast<std::size_t>(count));
  for (int k = 0; k < count; ++k) {
    threads.emplace_back([&, k] {
      try {
        typename B::Thread attached(backend);
        body(k);
      } catch (...) {
        errors[static_cast<std::size_t>(k)] = std::current_exception();
      }
    });
  }
  {
    typename B::Blocking parked(backend);
    for (auto& t : threads) t.join();
  }
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// ---- trees (gcbench, binary-trees) --------------------------------------

template <class B>
struct TreeNode {
  typename B::template Ref<TreeNode> left{};
  typename B::template Ref<TreeNode> right{};
  int i = 0;
  int j = 0;
  TreeNode() = default;
  TreeNode(TreeNode* l, TreeNode* r) noexcept : left(l), right(r) {}
  template <class V>
  void trace(V& v) const {
    v.trace(left);
    v.trace(right);
  }
};

template <class B>
class Trees {
 public:
  using Node = TreeNode<B>;
  Trees(B& backend, Tally& tally) : b_(backend), t_(tally) {}

  Node* node(Node* left, Node* right) {
    ++t_.objects;
    t_.bytes += sizeof(Node);
    return b_.template make<Node>(left, right);
  }
  // Top-down: the parent exists before its children.
  void populate(int depth, Node* parent) {
    if (depth <= 0) return;
    --depth;
    parent->left = node(nullptr, nullptr);
    parent->right = node(nullptr, nullptr);
    populate(depth, parent->left);
    populate(depth, parent->right);
  }
  // Bottom-up: children first.
  Node* bottom_up(int depth) {
    if (depth <= 0) return node(nullptr, nullptr);
    Node* left = bottom_up(depth - 1);
    Node* right = bottom_up(depth - 1);
    return node(left, right);
  }
  static std::uint64_t check(const Node* n) {
    if (n->left == nullptr) return 1;
    return 1 + check(n->left) + check(n->right);
  }
  void release(Node* n) {
    if constexpr (B::kFreesExplicitly) {
      if (n == nullptr) return;
      release(n->left);
      release(n->right);
      b_.release(n);
    }
  }

 private:
  B& b_;
  Tally& t_;
};

// The stretch tree is built, checked and dropped in a frame of its own, so
// that no dead slot of a frame that stays live (the caller's) can still hold
// its address when the collectors scan the stacks conservatively: the tree
// is garbage from here on, as the benchmark intends.
template <class B>
[[gnu::noinline]] void stretch_tree(B& b, Trees<B>& trees, int depth, Tally& tally) {
  TreeNode<B>* stretch = trees.bottom_up(depth);
  b.probe_live();
  tally.checksum += Trees<B>::check(stretch);
  trees.release(stretch);
}

// ---- gcbench ----------------------------------------------------------

namespace gcbench {
constexpr int kStretchDepth = 18;
constexpr int kLongLivedDepth = 16;
constexpr std::size_t kArraySize = 500000;
constexpr int kMinDepth = 4;
constexpr int kMaxDepth = 16;
constexpr int kTinyShift = 6;  // --tiny: every depth 6 smaller

inline std::uint64_t tree_size(int depth) { return (std::uint64_t{1} << (depth + 1)) - 1; }

template <class B>
Tally run_one(B& b, bool tiny) {
  Tally t;
  Trees<B> trees(b, t);
  using Node = TreeNode<B>;
  const int shift = tiny ? kTinyShift : 0;
  const int stretch = kStretchDepth - shift;
  stretch_tree(b, trees, stretch, t);
  Node* long_lived = trees.node(nullptr, nullptr);
  trees.populate(kLongLivedDepth - shift, long_lived);
  auto* array = b.template make_array<double>(tiny ? kArraySize >> shift : kArraySize);
  for (std::size_t i = 0; i < array->size() / 2; ++i) (*array)[i] = 1.0 / static_cast<double>(i + 1);
  t.objects += 1;
  t.bytes += array->size() * sizeof(double);
  for (int depth = kMinDepth; depth <= kMaxDepth - shift; depth += 2) {
    const std::uint64_t iterations = 2 * tree_size(stretch) / tree_size(depth);
    for (std::uint64_t k = 0; k < iterations; ++k) {
      Node* temp = trees.node(nullptr, nullptr);
      trees.populate(depth, temp);
      if (k == 0) b.probe_live();
      trees.release(temp);
    }
    for (std::uint64_t k = 0; k < iterations; ++k) {
      Node* temp = trees.bottom_up(depth);
      trees.release(temp);
    }
  }
  if (long_lived == nullptr || (*array)[1000] != 1.0 / 1001.0) throw std::runtime_error("gcbench: live data lost");
  t.checksum += Trees<B>::check(long_lived);
  trees.release(long_lived);
  b.release_array(array);
  return t;
}
}  // namespace gcbench

template <class B>
RunReport run_gcbench(B& b, const WorkloadParams& p) {
  RunReport r;
  if (p.threads == 1) {
    r.tally = gcbench::run_one(b, p.tiny);
  } else {
    std::vector<Tally> tallies(static_cast<std::size_t>(p.threads));
    run_threads(b, p.threads, [&](int k) { tallies[static_cast<std::size_t>(k)] = gcbench::run_one(b, p.tiny); });
    for (const Tally& t : tallies) r.tally += t;
  }
  r.params = std::string("{\"stretch_depth\":") + std::to_string(gcbench::kStretchDepth - (p.tiny ? 6 : 0)) +
             ",\"long_lived_depth\":" + std::to_string(gcbench::kLongLivedDepth - (p.tiny ? 6 : 0)) +
             ",\"array_doubles\":" + std::to_string(p.tiny ? gcbench::kArraySize >> 6 : gcbench::kArraySize) +
             ",\"min_depth\":4,\"max_depth\":" + std::to_string(gcbench::kMaxDepth - (p.tiny ? 6 : 0)) + "}";
  return r;
}

// ---- binary-trees -----------------------------------------------------

constexpr int kBinaryTreesDefaultDepth = 18;

template <class B>
RunReport run_binary_trees(B& b, const WorkloadParams& p) {
  const int max_depth = p.depth != 0 ? p.depth : (p.tiny ? 10 : kBinaryTreesDefaultDepth);
  constexpr int kMinDepth = 4;
  RunReport r;
  Trees<B> trees(b, r.tally);
  using Node = TreeNode<B>;
  stretch_tree(b, trees, max_depth + 1, r.tally);
  Node* long_lived = trees.bottom_up(max_depth);
  std::vector<Tally> tallies(static_cast<std::size_t>(p.threads));
  auto share = [&](int k) {
    Tally& t = tallies[static_cast<std::size_t>(k)];
    Trees<B> mine(b, t);
    for (int depth = kMinDepth; depth <= max_depth; depth += 2) {
      const std::uint64_t iterations = std::uint64_t{1} << (max_depth - depth + kMinDepth);
      for (std::uint64_t i = static_cast<std::uint64_t>(k); i < iterations; i += static_cast<std::uint64_t>(p.threads)) {
        Node* tree = mine.bottom_up(depth);
        if (i == 0) b.probe_live();
        t.checksum += Trees<B>::check(tree);
        mine.release(tree);
      }
    }
  };
  if (p.threads == 1) {
    share(0);
  } else {
    run_threads(b, p.threads, share);
  }
  for (const Tally& t : tallies) r.tally += t;
  r.tally.checksum += Trees<B>::check(long_lived);
  trees.release(long_lived);
  r.params = "{\"max_depth\":" + std::to_string(max_depth) + ",\"min_depth\":4}";
  return r;
}

// ---- larson -----------------------------------------------------------

template <class B>
RunReport run_larson(B& b, const WorkloadParams& p) {
  const std::uint64_t slots = p.slots != 0 ? p.slots : (p.tiny ? 1000 : 20000);
  const int generations = p.generations != 0 ? p.generations : (p.tiny ? 2 : 10);
  const std::uint64_t ops = p.ops != 0 ? p.ops : (p.tiny ? 20000 : 4000000);  // over all threads and generations
  const std::uint64_t per_thread = std::max<std::uint64_t>(1, ops / static_cast<std::uint64_t>(generations) /
                                                                  static_cast<std::uint64_t>(p.threads));
  using Table = typename B::template ArrayOf<typename B::template Ref<Blob>>;
  RunReport r;
  Table* table = b.template make_array<typename B::template Ref<Blob>>(slots * static_cast<std::uint64_t>(p.threads));
  typename B::template Global<Table> root(b, table);
  auto fresh = [&b](Rng& rng, Tally& t) {
    const auto bytes = static_cast<std::uint32_t>(8 + rng.below(113));  // 16..128 B with the header
    Blob* blob = b.make_blob(bytes, static_cast<std::uint32_t>(rng.next()));
    blob->payload()[0] = static_cast<unsigned char>(blob->tag);
    blob->payload()[bytes - 1] = 1;
    ++t.objects;
    t.bytes += sizeof(Blob) + bytes;
    return blob;
  };
  {
    Rng rng(12345);
    for (std::size_t i = 0; i < table->size(); ++i) (*table)[i] = fresh(rng, r.tally);
  }
  std::vector<Tally> tallies(static_cast<std::size_t>(p.threads));
  for (int g = 0; g < generations; ++g) {
    run_threads(b, p.threads, [&](int k) {
      Tally& t = tallies[static_cast<std::size_t>(k)];
      Rng rng(static_cast<std::uint64_t>(g) * 1000 + static_cast<std::uint64_t>(k) + 1);
      Table& slots_of_all = *root.get();
      const std::uint64_t base = static_cast<std::uint64_t>(k) * slots;
      for (std::uint64_t n = 0; n < per_thread; ++n) {
        const std::uint64_t slot = base + rng.below(slots);
        Blob* old = slots_of_all[slot];
        t.checksum += old->payload()[0] + old->payload()[old->bytes - 1];
        slots_of_all[slot] = fresh(rng, t);
        b.release_blob(old);
      }
    });
  }
  for (const Tally& t : tallies) r.tally += t;
  for (std::size_t i = 0; i < table->size(); ++i) {
    Blob* blob = (*table)[i];
    r.tally.checksum += blob->payload()[0];
    b.release_blob(blob);
  }
  b.release_array(table);
  r.params = "{\"slots_per_thread\":" + std::to_string(slots) + ",\"generations\":" + std::to_string(generations) +
             ",\"ops_per_thread_per_generation\":" + std::to_string(per_thread) + ",\"sizes\":\"16..128\"}";
  return r;
}

// ---- prodcons ---------------------------------------------------------

template <class B>
struct Message {
  typename B::template Ref<Message> next{};
  typename B::template Ref<Blob> body{};
  std::uint64_t seq = 0;
  template <class V>
  void trace(V& v) const {
    v.trace(next);
    v.trace(body);
  }
};

// A bounded queue whose slots live in the heap (a collector sees the
// messages in flight). Every lock acquisition and wait happens inside
// B::Blocking, so a thread blocked here never holds up a collection; the
// ring is touched only after leaving it, with the lock held.
template <class B>
class MessageQueue {
 public:
  using Msg = Message<B>;
  using Ring = typename B::template ArrayOf<typename B::template Ref<Msg>>;
  MessageQueue(B& b, std::size_t capacity)
      : b_(b), ring_(b, b.template make_array<typename B::template Ref<Msg>>(capacity)) {}

  void push(Msg* m) {
    std::unique_lock lock(mutex_, std::defer_lock);
    {
      typename B::Blocking parked(b_);
      lock.lock();
      not_full_.wait(lock, [&] { return count_ < ring_.get()->size(); });
    }
    Ring& ring = *ring_.get();
    ring[(head_ + count_) % ring.size()] = m;
    ++count_;
    lock.unlock();
    not_empty_.notify_one();
  }
  // nullptr once every producer finished and the queue is empty.
  Msg* pop() {
    std::unique_lock lock(mutex_, std::defer_lock);
    {
      typename B::Blocking parked(b_);
      lock.lock();
      not_empty_.wait(lock, [&] { return count_ > 0 || producers_left_ == 0; });
    }
    if (count_ == 0) return nullptr;
    Ring& ring = *ring_.get();
    Msg* m = ring[head_];
    ring[head_] = nullptr;
    head_ = (head_ + 1) % ring.size();
    --count_;
    lock.unlock();
    not_full_.notify_one();
    return m;
  }
  void set_producers(int n) { producers_left_ = n; }
  void producer_done() {
    {
      typename B::Blocking parked(b_);
      std::lock_guard lock(mutex_);
      --producers_left_;
    }
    not_empty_.notify_all();
  }
  void release() { b_.release_array(ring_.get()); }

 private:
  B& b_;
  typename B::template Global<Ring> ring_;
  std::mutex mutex_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  int producers_left_ = 0;
};

template <class B>
RunReport run_prodcons(B& b, const WorkloadParams& p) {
  using Msg = Message<B>;
  const std::uint64_t messages = p.ops != 0 ? p.ops : (p.tiny ? 5000 : 1000000);
  const int producers = std::max(1, p.threads / 2);
  const int consumers = std::max(1, p.threads - producers);
  constexpr std::size_t kCapacity = 1024;
  RunReport r;
  MessageQueue<B> queue(b, kCapacity);
  queue.set_producers(producers);
  std::vector<Tally> tallies(static_cast<std::size_t>(producers + consumers));
  run_threads(b, producers + consumers, [&](int k) {
    Tally& t = tallies[static_cast<std::size_t>(k)];
    if (k < producers) {
      Rng rng(static_cast<std::uint64_t>(k) + 7);
      const std::uint64_t mine = messages / static_cast<std::uint64_t>(producers) +
                                 (static_cast<std::uint64_t>(k) < messages % static_cast<std::uint64_t>(producers));
      for (std::uint64_t n = 0; n < mine; ++n) {
        Msg* head = nullptr;
        const int parts = 1 + static_cast<int>(rng.below(4));
        for (int i = 0; i < parts; ++i) {
          Msg* m = b.template make<Msg>();
          m->next = head;
          head = m;
          const auto bytes = static_cast<std::uint32_t>(8 + rng.below(241));  // 16..256 B with the header
          Blob* body = b.make_blob(bytes, static_cast<std::uint32_t>(n));
          body->payload()[0] = static_cast<unsigned char>(n);
          m->body = body;
          m->seq = n;
          t.objects += 2;
          t.bytes += sizeof(Msg) + sizeof(Blob) + bytes;
        }
        queue.push(head);
      }
      queue.producer_done();
    } else {
      while (Msg* m = queue.pop()) {
        while (m != nullptr) {
          Msg* next = m->next;
          t.checksum += m->seq + m->body->payload()[0];
          b.release_blob(m->body);
          b.release(m);
          m = next;
        }
      }
    }
  });
  for (const Tally& t : tallies) r.tally += t;
  queue.release();
  r.params = "{\"messages\":" + std::to_string(messages) + ",\"producers\":" + std::to_string(producers) +
             ",\"consumers\":" + std::to_string(consumers) + ",\"queue_capacity\":" + std::to_string(kCapacity) +
             ",\"nodes_per_message\":\"1..4\",\"payload\":\"16..256\"}";
  return r;
}

// ---- steady -----------------------------------------------------------

template <class B>
RunReport run_steady(B& b, const WorkloadParams& p) {
  const std::uint64_t working_set = p.slots != 0 ? p.slots : (p.tiny ? (1u << 20) : (64u << 20));  // bytes, all threads
  const std::uint64_t ops = p.ops != 0 ? p.ops : (p.tiny ? 20000 : 6000000);
  constexpr std::uint64_t kMeanBytes = 280;  // of the size mix below, large objects included
  const std::uint64_t per_thread_slots =
      std::max<std::uint64_t>(16, working_set / kMeanBytes / static_cast<std::uint64_t>(p.threads));
  const std::uint64_t per_thread_ops = ops / static_cast<std::uint64_t>(p.threads);
  using Table = typename B::template ArrayOf<typename B::template Ref<Blob>>;
  RunReport r;
  std::vector<Tally> tallies(static_cast<std::size_t>(p.threads));
  auto body = [&](int k) {
    Tally& t = tallies[static_cast<std::size_t>(k)];
    Rng rng(static_cast<std::uint64_t>(k) + 99);
    auto fresh = [&]() {
      const bool large = rng.below(1000) == 0;
      const auto bytes = static_cast<std::uint32_t>(large ? 8192 + rng.below(24577) : 8 + rng.below(505));
      Blob* blob = b.make_blob(bytes, static_cast<std::uint32_t>(rng.next()));
      blob->payload()[0] = static_cast<unsigned char>(blob->tag);
      ++t.objects;
      t.bytes += sizeof(Blob) + bytes;
      return blob;
    };
    Table* table = b.template make_array<typename B::template Ref<Blob>>(per_thread_slots);
    for (std::uint64_t i = 0; i < per_thread_slots; ++i) (*table)[i] = fresh();
    for (std::uint64_t n = 0; n < per_thread_ops; ++n) {
      const std::uint64_t slot = rng.below(per_thread_slots);
      Blob* old = (*table)[slot];
      t.checksum += old->payload()[0];
      (*table)[slot] = fresh();
      b.release_blob(old);
    }
    for (std::uint64_t i = 0; i < per_thread_slots; ++i) b.release_blob((*table)[i]);
    b.release_array(table);
  };
  if (p.threads == 1) {
    body(0);
  } else {
    run_threads(b, p.threads, body);
  }
  for (const Tally& t : tallies) r.tally += t;
  r.params = "{\"working_set_bytes\":" + std::to_string(working_set) + ",\"slots_per_thread\":" +
             std::to_string(per_thread_slots) + ",\"ops\":" + std::to_string(ops) +
             ",\"sizes\":\"16..512, 1 in 1000 of 8..32 KiB\"}";
  return r;
}

}  // namespace bench
