// sweep_share: where the sweeping happens, in a GCBench-shaped run.
//
// GCBench's shape (Boehm's, with the standard parameters: stretch tree depth
// 18, long-lived tree depth 16, an array of 500,000 doubles, short-lived trees
// of depth 4..16 step 2 built top-down and bottom-up) on the handoff
// allocator, with a minimal stop-the-world collector written here, since the
// heap's own collector is not built yet: every `--gc-mb` MiB of allocation,
// at a tree boundary (so the only roots are the long-lived tree and the
// array), the mutator pauses the sweeper, finishes the previous lazy sweep,
// flushes, marks the live trees and the array with a new mark version, and
// begins a new lazy sweep by the marks of that version (the collector's
// sweep policy, SweepPolicy::by_marks). From then on blocks are swept
// by whoever gets there first: the concurrent sweeper in the background, a
// refill that claims an UNSWEPT block, or the next collection's finish.
//
// Reports the share of swept blocks done off the mutator thread (the
// sweeper's) and the run time, with the sweeper on and, for comparison, off.
#include <handoff/allocator.h>
#include <handoff/concurrent_sweeper.h>
#include <handoff/large_object_space.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Node {
  Node* left;
  Node* right;
  int i;
  int j;
};

constexpr int kStretchTreeDepth = 18;
constexpr int kLongLivedTreeDepth = 16;
constexpr std::size_t kArraySize = 500000;
constexpr int kMinTreeDepth = 4;
constexpr int kMaxTreeDepth = 16;

struct Options {
  bool sweeper = true;
  int reps = 3;
  std::size_t gc_bytes = std::size_t{16} << 20;
};

struct Result {
  double seconds = 0;
  std::size_t collections = 0;
  std::size_t by_sweeper = 0;  // blocks
  std::size_t by_refills = 0;
  std::size_t by_finish = 0;
  double share_off_mutator() const {
    const double total = static_cast<double>(by_sweeper + by_refills + by_finish);
    return total == 0 ? 0 : static_cast<double>(by_sweeper) / total;
  }
};

class Run {
 public:
  Run(const Options& options, handoff::SweeperConfig config)
      : options_(options), sweeper_(heap_, config), thread_(heap_) {}

  Result go() {
    const auto start = std::chrono::steady_clock::now();
    // Stretch the heap with a temporary tree, then build the long-lived data.
    make_tree(kStretchTreeDepth);
    long_lived_ = new_node(nullptr, nullptr);
    populate(kLongLivedTreeDepth, long_lived_);
    array_ = static_cast<double*>(thread_.allocate(kArraySize * sizeof(double)));
    for (std::size_t i = 0; i < kArraySize / 2; ++i) array_[i] = 1.0 / static_cast<double>(i + 1);
    for (int depth = kMinTreeDepth; depth <= kMaxTreeDepth; depth += 2) time_construction(depth);
    if (long_lived_ == nullptr || array_[1000] != 1.0 / 1001.0) std::abort();  // keep them live
    collect();  // settle the last cycle so every block is accounted for
    const handoff::SweepTotals last = heap_.finish_lazy_sweep();
    result_.by_finish += last.blocks_swept;
    thread_.flush();
    result_.by_refills = thread_.counters().lazy_sweeps;
    result_.by_sweeper = sweeper_.stats().blocks_swept;
    result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result_;
  }

 private:
  static int tree_size(int depth) { return (1 << (depth + 1)) - 1; }
  static int iterations(int depth) { return 2 * tree_size(kStretchTreeDepth) / tree_size(depth); }

  Node* new_node(Node* left, Node* right) {
    allocated_ += sizeof(Node);
    return new (thread_.allocate(sizeof(Node))) Node{left, right, 0, 0};
  }

  void populate(int depth, Node* node) {  // top-down
    if (depth <= 0) return;
    --depth;
    node->left = new_node(nullptr, nullptr);
    node->right = new_node(nullptr, nullptr);
    populate(depth, node->left);
    populate(depth, node->right);
  }

  Node* make_tree(int depth) {  // bottom-up
    if (depth <= 0) return new_node(nullptr, nullptr);
    Node* left = make_tree(depth - 1);
    Node* right = make_tree(depth - 1);
    return new_node(left, right);
  }

  void time_construction(int depth) {
    const int n = iterations(depth);
    for (int k = 0; k < n; ++k) {
      safepoint();
      Node* root = new_node(nullptr, nullptr);
      populate(depth, root);
    }
    for (int k = 0; k < n; ++k) {
      safepoint();
      make_tree(depth);
    }
  }

  // Between trees the only roots are long_lived_ and array_.
  void safepoint() {
    if (allocated_ - allocated_at_gc_ >= options_.gc_bytes) collect();
  }

  void collect() {
    allocated_at_gc_ = allocated_;
    ++result_.collections;
    sweeper_.pause();
    result_.by_finish += heap_.finish_lazy_sweep().blocks_swept;
    thread_.flush();
    ++version_;  // marks of older versions read as unmarked: no bitmap is cleared
    mark(long_lived_);
    if (array_ != nullptr) handoff::LargeObjectSpace::mark(array_, version_);
    heap_.begin_lazy_sweep(handoff::SweepPolicy::by_marks(version_, nullptr));
    sweeper_.resume();
  }

  void mark(Node* root) {
    std::vector<Node*> stack{root};
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      if (n == nullptr || !handoff::MarkedBlock::of(n)->mark(n, version_)) continue;
      stack.push_back(n->left);
      stack.push_back(n->right);
    }
  }

  Options options_;
  handoff::Allocator heap_{handoff::AllocatorConfig{}};
  std::uint32_t version_ = 0;  // of the last collection's marks
  handoff::ConcurrentSweeper sweeper_;
  handoff::ThreadAllocator thread_;
  Node* long_lived_ = nullptr;
  double* array_ = nullptr;
  std::size_t allocated_ = 0;
  std::size_t allocated_at_gc_ = 0;
  Result result_;
};

void usage(int code) {
  std::printf(
      "usage: bench_sweep_share [--reps N] [--gc-mb M] [--sweeper on|off|both] [--help]\n\n"
      "GCBench-shaped run (stretch 18, long-lived 16, 500,000 doubles, trees 4..16) on the\n"
      "handoff allocator with a minimal stop-the-world mark and lazy sweeping; reports the\n"
      "share of swept blocks done by the concurrent sweeper (off the mutator) and the time.\n\n"
      "  --reps N        repetitions per mode (default 3)\n"
      "  --gc-mb M       MiB allocated between collections (default 16)\n"
      "  --sweeper X     on, off or both (default both)\n");
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string modes = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage(0);
    if (i + 1 >= argc) usage(2);
    if (arg == "--reps") {
      options.reps = std::atoi(argv[++i]);
    } else if (arg == "--gc-mb") {
      options.gc_bytes = std::strtoull(argv[++i], nullptr, 10) << 20;
    } else if (arg == "--sweeper") {
      modes = argv[++i];
    } else {
      usage(2);
    }
  }
  if (options.reps < 1 || options.gc_bytes == 0 || (modes != "on" && modes != "off" && modes != "both")) usage(2);
  std::printf("mode  rep  seconds  collections  swept_by_sweeper  by_refills  by_finish  off_mutator_share\n");
  for (const char* mode : {"on", "off"}) {
    if (modes != "both" && modes != mode) continue;
    handoff::SweeperConfig config = handoff::SweeperConfig::from_environment();
    config.enabled = std::strcmp(mode, "on") == 0 ? 1 : 0;
    for (int rep = 1; rep <= options.reps; ++rep) {
      Run run(options, config);
      const Result r = run.go();
      std::printf("%-4s  %3d  %7.3f  %11zu  %16zu  %10zu  %9zu  %17.3f\n", mode, rep, r.seconds, r.collections,
                  r.by_sweeper, r.by_refills, r.by_finish, r.share_off_mutator());
      std::fflush(stdout);
    }
  }
  return 0;
}
