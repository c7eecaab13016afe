// bench_ephemeron: what ephemeron tables cost the mark phase.
//
// Builds one EphemeronMap of --entries entries (default 100,000), each value
// a fresh 48-byte object; --live-percent of the keys (default 50) are held
// by a rooted array, the others are garbage. With --chain L the entries form
// chains of length L (the value of each entry is the key of the next, and
// only the first key of a chain is rooted), inserted last link first: the
// shape that needs the most fixpoint rounds. Then one full collection, and
// the same live objects again held strongly by plain arrays (no table), one
// full collection: the difference of the two mark times is the ephemeron
// cost. Repeats --repeat times (default 5) and prints one JSON line with
// medians: mark time with and without the table, extra ns per entry,
// fixpoint rounds (per collection) and entries dropped.
#include <handoff/ephemeron.h>
#include <handoff/heap.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Node {
  handoff::Member<Node> next;
  std::uint64_t payload[4] = {};
  void trace(handoff::Visitor& v) const { v.trace(next); }
};
using Map = handoff::EphemeronMap<Node, Node>;
using Nodes = handoff::Array<handoff::Member<Node>>;

struct Options {
  std::size_t entries = 100000;
  std::size_t live_percent = 50;
  std::size_t chain = 1;
  int repeat = 5;
};

void usage(int code) {
  std::printf(
      "usage: bench_ephemeron [--entries N] [--live-percent P] [--chain L] [--repeat R] [--tiny] [--help]\n\n"
      "Times full collections of an EphemeronMap of N entries (default 100000) with P%% (default 50)\n"
      "of the keys live, against the same live objects held strongly; chains of length L (default 1)\n"
      "need up to L fixpoint rounds. Prints one JSON line (medians over R runs, default 5).\n"
      "--tiny: 2000 entries, 2 runs (a smoke run). HANDOFF_* variables apply.\n");
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::size_t {
      if (i + 1 >= argc) usage(2);
      char* end = nullptr;
      const unsigned long long v = std::strtoull(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0') usage(2);
      return static_cast<std::size_t>(v);
    };
    if (arg == "--entries") {
      o.entries = value();
    } else if (arg == "--live-percent") {
      o.live_percent = std::min<std::size_t>(value(), 100);
    } else if (arg == "--chain") {
      o.chain = std::max<std::size_t>(value(), 1);
    } else if (arg == "--repeat") {
      o.repeat = static_cast<int>(std::max<std::size_t>(value(), 1));
    } else if (arg == "--tiny") {
      o.entries = 2000;
      o.repeat = 2;
    } else if (arg == "--help") {
      usage(0);
    } else {
      usage(2);
    }
  }
  return o;
}

struct Sample {
  std::uint64_t mark_ns = 0;
  std::uint64_t rounds = 0;
  std::uint64_t dropped = 0;
  std::uint64_t entries = 0;
};

Sample collect_full(handoff::Heap& heap) {
  const handoff::HeapStats before = heap.stats();
  heap.collect();
  const handoff::HeapStats after = heap.stats();
  return {after.mark_ns_total - before.mark_ns_total, after.ephemeron_rounds - before.ephemeron_rounds,
          after.ephemerons_dropped - before.ephemerons_dropped, after.ephemeron_entries - before.ephemeron_entries};
}

// Entry i belongs to chain i / L at position i % L; chain c is live when
// c's index falls in the live percentage.
bool chain_live(const Options& o, std::size_t chain) { return chain % 100 < o.live_percent; }

[[gnu::noinline]] void build(handoff::Heap& heap, const Options& o, bool with_table, handoff::Root<Map>& map,
                             handoff::Root<Nodes>& roots, handoff::Root<Nodes>& strong) {
  const std::size_t chains = (o.entries + o.chain - 1) / o.chain;
  roots.set(heap.make_array<handoff::Member<Node>>(chains));
  strong.set(heap.make_array<handoff::Member<Node>>(with_table ? 1 : o.entries));
  if (with_table) map.set(heap.make<Map>(heap));
  // No collection while building: it would drop dead-key entries before
  // the measured one. The chain being built is held by a rooted heap array
  // all the same (a C++ container is not scanned).
  handoff::DeferGC no_collection(heap);
  handoff::Root<Nodes> scratch(heap, heap.make_array<handoff::Member<Node>>(o.chain + 1));
  Nodes& keys = *scratch;
  std::size_t made = 0;
  for (std::size_t c = 0; c < chains && made < o.entries; ++c) {
    const std::size_t length = std::min(o.chain, o.entries - made);
    for (std::size_t k = 0; k <= length; ++k) keys[k] = heap.make<Node>();
    const bool live = chain_live(o, c);
    if (live) (*roots)[c] = keys[0];
    for (std::size_t k = length; k-- > 0;) {  // last link first
      if (with_table) {
        map->set(keys[k], keys[k + 1]);
      } else if (live) {
        (*strong)[made + k] = keys[k + 1];
      }
    }
    made += length;
  }
}

std::uint64_t median(std::vector<std::uint64_t> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  handoff::HeapConfig config = handoff::HeapConfig::from_environment();
  config.sync_sweep = 1;
  handoff::Heap heap(config);
  handoff::ThreadScope attached(heap);
  handoff::Root<Map> map(heap, nullptr);
  handoff::Root<Nodes> roots(heap, nullptr);
  handoff::Root<Nodes> strong(heap, nullptr);
  std::vector<std::uint64_t> with, without, rounds, dropped, entries;
  for (int r = 0; r < o.repeat; ++r) {
    build(heap, o, true, map, roots, strong);
    const Sample t = collect_full(heap);
    map.set(nullptr);
    roots.set(nullptr);
    heap.collect();
    build(heap, o, false, map, roots, strong);
    const Sample s = collect_full(heap);
    roots.set(nullptr);
    strong.set(nullptr);
    heap.collect();
    with.push_back(t.mark_ns);
    without.push_back(s.mark_ns);
    rounds.push_back(t.rounds);
    dropped.push_back(t.dropped);
    entries.push_back(t.entries);
  }
  const std::uint64_t mark_with = median(with);
  const std::uint64_t mark_without = median(without);
  const double extra_per_entry =
      (static_cast<double>(mark_with) - static_cast<double>(mark_without)) / static_cast<double>(o.entries);
  std::printf(
      "{\"bench\":\"ephemeron\",\"entries\":%zu,\"live_percent\":%zu,\"chain\":%zu,\"repeat\":%d,"
      "\"mark_ns_table\":%llu,\"mark_ns_strong\":%llu,\"extra_ns_per_entry\":%.2f,\"mark_ns_per_entry\":%.2f,"
      "\"rounds\":%llu,\"entries_traced\":%llu,\"dropped\":%llu}\n",
      o.entries, o.live_percent, o.chain, o.repeat, static_cast<unsigned long long>(mark_with),
      static_cast<unsigned long long>(mark_without), extra_per_entry,
      static_cast<double>(mark_with) / static_cast<double>(o.entries),
      static_cast<unsigned long long>(median(rounds)), static_cast<unsigned long long>(median(entries)),
      static_cast<unsigned long long>(median(dropped)));
  return 0;
}
