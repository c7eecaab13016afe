// bench_mark_pause: mark throughput and pause time of handoff's collect()
// on a large live heap.
//
// Builds a live heap of about --mb MiB (default 100): binary trees of depth
// --tree-depth (default 16) built bottom-up (4 MiB each: 131,071 cells of 32 bytes), held by a
// heap array behind a Root, plus one singly linked list that takes the
// rest (a long chain: the worst case for a mark stack's depth). Then runs
// --collections full collections (default 10) with nothing else running,
// and reads HeapStats after each: the mark time, the pause and the live
// bytes. Mark throughput = live bytes / mark time (MB/s, 1 MB = 10^6 B, of
// live data). Prints one JSON line.
#include <handoff/heap.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Node {
  handoff::Member<Node> left;
  handoff::Member<Node> right;
  std::int32_t i = 0;
  std::int32_t j = 0;
  void trace(handoff::Visitor& v) const {
    v.trace(left);
    v.trace(right);
  }
};

struct Options {
  double mb = 100;
  int collections = 10;
  int tree_depth = 16;
};

Node* bottom_up(handoff::Heap& heap, int depth) {
  Node* n = heap.make<Node>();
  if (depth > 0) {
    Node* left = bottom_up(heap, depth - 1);
    Node* right = bottom_up(heap, depth - 1);
    n->left = left;
    n->right = right;
  }
  return n;
}

void usage(int code) {
  std::printf(
      "usage: bench_mark_pause [--mb M] [--collections N] [--tree-depth D] [--tiny] [--help]\n\n"
      "Builds a live heap of about M MiB (default 100) of 32-byte cells (binary trees of\n"
      "depth D, default 16, and one long linked list), runs N full collections (default 10)\n"
      "and prints one JSON line: live bytes, mark time, mark throughput (live MB / mark s)\n"
      "and pauses. A small D with a small M: live sets below one default tree (4 MiB).\n"
      "--tiny: about 1 MiB and 3 collections (a smoke run). HANDOFF_* variables apply.\n");
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") usage(0);
    if (arg == "--tiny") {
      o.mb = 1;
      o.collections = 3;
      o.tree_depth = 10;
    } else if (arg == "--mb" && i + 1 < argc) {
      o.mb = std::strtod(argv[++i], nullptr);
    } else if (arg == "--tree-depth" && i + 1 < argc) {
      o.tree_depth = std::atoi(argv[++i]);
    } else if (arg == "--collections" && i + 1 < argc) {
      o.collections = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "bench_mark_pause: unknown option '%s'\n", argv[i]);
      usage(2);
    }
  }
  if (!(o.mb > 0) || o.collections < 1 || o.tree_depth < 0 || o.tree_depth > 24) usage(2);
  return o;
}

std::string list_json(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", v[i]);
    s += buf;
  }
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  handoff::Heap heap;
  handoff::ThreadScope attached(heap);
  constexpr std::size_t kCell = 32;  // sizeof(Node) + the header word
  const auto target = static_cast<std::size_t>(o.mb * 1048576.0);
  const std::size_t tree_bytes = ((std::size_t{1} << (o.tree_depth + 1)) - 1) * kCell;
  const std::size_t trees = std::max<std::size_t>(1, target * 4 / 5 / tree_bytes);
  const std::size_t list_cells = (target - std::min(target, trees * tree_bytes)) / kCell;

  const auto build_start = std::chrono::steady_clock::now();
  auto* roots = heap.make_array<handoff::Member<Node>>(trees + 1);
  handoff::Root<handoff::Array<handoff::Member<Node>>> root(heap, roots);
  for (std::size_t t = 0; t < trees; ++t) (*roots)[t] = bottom_up(heap, o.tree_depth);
  Node* head = nullptr;
  for (std::size_t n = 0; n < list_cells; ++n) {
    Node* cell = heap.make<Node>();
    cell->left = head;
    head = cell;
  }
  (*roots)[trees] = head;
  head = nullptr;
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count();

  heap.collect();  // settle: the first measured collection starts from a swept heap
  std::vector<double> mark_ms, pause_ms, mb_per_s;
  std::uint64_t live = 0;
  for (int c = 0; c < o.collections; ++c) {
    const handoff::HeapStats before = heap.stats();
    heap.collect();
    const handoff::HeapStats after = heap.stats();
    const double mark_ns = static_cast<double>(after.mark_ns_total - before.mark_ns_total);
    const double pause_ns = static_cast<double>(after.pause_ns_total - before.pause_ns_total);
    live = after.live_bytes;
    mark_ms.push_back(mark_ns / 1e6);
    pause_ms.push_back(pause_ns / 1e6);
    mb_per_s.push_back(mark_ns > 0 ? static_cast<double>(live) / 1e6 / (mark_ns / 1e9) : 0.0);
  }
  std::vector<double> sorted = mb_per_s;
  std::sort(sorted.begin(), sorted.end());
  const double median_rate = sorted[sorted.size() / 2];
  const double max_pause = *std::max_element(pause_ms.begin(), pause_ms.end());
  double mean_pause = 0;
  for (double p : pause_ms) mean_pause += p / static_cast<double>(pause_ms.size());
  const double max_mark = *std::max_element(mark_ms.begin(), mark_ms.end());
  const handoff::HeapStats s = heap.stats();
  std::printf(
      "{\"program\":\"bench_mark_pause\",\"target_mib\":%.1f,\"trees\":%zu,\"tree_depth\":%d,\"list_cells\":%zu,"
      "\"build_s\":%.3f,\"collections\":%d,\"live_bytes\":%llu,\"live_objects\":%llu,"
      "\"mark_mb_per_s_median\":%.1f,\"mark_ms_max\":%.3f,\"pause_ms_max\":%.3f,\"pause_ms_mean\":%.3f,"
      "\"mark_ms\":%s,\"pause_ms\":%s,\"mark_mb_per_s\":%s,\"sweeper_enabled\":%s}\n",
      o.mb, trees, o.tree_depth, list_cells, build_s, o.collections, static_cast<unsigned long long>(live),
      static_cast<unsigned long long>(s.live_objects), median_rate, max_mark, max_pause, mean_pause,
      list_json(mark_ms).c_str(), list_json(pause_ms).c_str(), list_json(mb_per_s).c_str(),
      heap.config().sweeper.enabled ? "true" : "false");
  if (root.get() == nullptr) return 1;
  return 0;
}
