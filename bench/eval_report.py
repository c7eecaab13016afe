#!/usr/bin/env python3
"""Write papers/evaluation.md and its plots from bench/run_eval.py's JSON.

Every figure in the output is computed from the results file (and from
papers/results/alloc_reclaim.json for the folded-in allocation benchmark);
the prose around the tables holds no measured numbers of its own. Plots
need matplotlib (Debian: python3-matplotlib); without it the report is
written with a note instead of the figures.

usage: eval_report.py RESULTS_JSON [--alloc ALLOC_JSON] [--out papers/evaluation.md]
                      [--figures papers/figures]
"""

import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import alloc_report  # noqa: E402
import churn_report  # noqa: E402

MALLOC = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc"]
GC = ["boehm", "boehm-incremental", "handoff", "handoff-nosweeper", "handoff-nogen"]
HEADLINE_WORKLOADS = ["gcbench", "binary-trees"]
MIB = 1048576.0


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float) and (x != x):
        return "-"
    return f"{x:.{digits}f}"


def median(values):
    return statistics.median(values) if values else None


# ---- grouping -----------------------------------------------------------

def good_runs(runs, section):
    return [r for r in runs if r["section"] == section and not r["warmup"]]


def config_key(r):
    return (r["workload"], r["threads"])


class Cell:
    """The repetitions of one (workload, threads, backend[, k]) configuration."""

    def __init__(self, records):
        self.records = records
        self.ok = [r["result"] for r in records if r.get("result", {}).get("completed")]
        self.failed = [r for r in records if not r.get("result", {}).get("completed")]

    def _vals(self, f):
        return [f(x) for x in self.ok]

    @property
    def n(self):
        return len(self.records)

    @property
    def complete(self):
        return self.ok and not self.failed

    def wall(self):
        return self._vals(lambda x: x["wall_s"])

    def wall_med(self):
        return median(self.wall()) if self.complete else None

    def cpu_med(self):
        return median(self._vals(lambda x: x["cpu_user_s"] + x["cpu_sys_s"])) if self.complete else None

    def rss_med(self):
        return median(self._vals(lambda x: x["peak_rss_kib"] / 1024.0)) if self.complete else None

    def counter_med(self, name):
        vals = [x["counters"].get(name) for x in self.ok if x["counters"].get(name) is not None]
        return median(vals) if vals else None

    def value_med(self, f):
        vals = [f(x) for x in self.ok]
        vals = [v for v in vals if v is not None]
        return median(vals) if vals else None

    def errors(self):
        return sorted({(r.get("result") or {}).get("error") or f"exit status {r['returncode']}"
                       for r in self.failed})


def paired_ratios(a, b):
    """Wall time of `a` over `b`, one ratio per repetition both completed.
    The backends run round robin within a repetition, so a pair shares its
    time window: a slow stretch of the machine moves both runs, not one."""
    def walls(cell):
        return {r["rep"]: r["result"]["wall_s"] for r in cell.records
                if r.get("result", {}).get("completed") and r["result"].get("wall_s")}
    wa, wb = walls(a), walls(b)
    return [wa[rep] / wb[rep] for rep in sorted(wa) if rep in wb]


def sweeper_comparison(data, cells):
    """Per macro workload: (label, handoff median wall, handoff-nosweeper
    median wall, on/off ratios of every pair): the macro section's
    repetitions and the sweeper section's extra pairs (bench/run_eval.py)."""
    extra = group(data["runs"], "sweeper")
    out = []
    for (w, t) in configs_in_order(data["runs"], "macro"):
        on, off = cells.get((w, t, "handoff")), cells.get((w, t, "handoff-nosweeper"))
        if not on or not off:
            continue
        ratios = paired_ratios(on, off)
        if (w, t, "handoff") in extra and (w, t, "handoff-nosweeper") in extra:
            ratios += paired_ratios(extra[(w, t, "handoff")], extra[(w, t, "handoff-nosweeper")])
        out.append((label(w, t), on.wall_med(), off.wall_med(), ratios))
    return out


def group(runs, section, extra_key=None):
    cells = {}
    for r in good_runs(runs, section):
        key = (r["workload"], r["threads"], r["backend"]) + ((r.get(extra_key),) if extra_key else ())
        cells.setdefault(key, []).append(r)
    return {k: Cell(v) for k, v in cells.items()}


def configs_in_order(runs, section):
    seen = []
    for r in good_runs(runs, section):
        if config_key(r) not in seen:
            seen.append(config_key(r))
    return seen


def label(workload, threads):
    return f"{workload} ({threads} thread{'s' if threads > 1 else ''})"


def best_malloc(cells, workload, threads, metric):
    best = None
    for b in MALLOC:
        c = cells.get((workload, threads, b))
        v = metric(c) if c else None
        if v is not None and (best is None or v < best[1]):
            best = (b, v)
    return best


# ---- sections -----------------------------------------------------------

def section_setup(data, alloc):
    m = data["machine"]
    b = data["build"]
    pk = data["packages"]
    lines = [
        "## Setup",
        "",
        f"**Machine.** {m.get('cpu_model')}; `nproc` = {data.get('nproc')} "
        f"({m.get('physical_cores') or '?'} physical core(s) per /proc/cpuinfo); "
        f"{fmt(m.get('memory_kib', 0) / 1048576.0, 1)} GiB memory; Linux {m.get('kernel')} ({m.get('machine')}). "
        "A 2-core virtual machine; nothing of this project but the evaluation ran on it during the run "
        "(a load average at the start above 1 is what earlier builds left in the 5- and 15-minute "
        f"averages); the load average was {data.get('load_at_start')} when the run started and "
        f"{data.get('load_at_end')} when it ended (1, 5, 15 minutes). Interleaving the backends "
        "(round robin within every repetition) spreads such drift over all of them, but single runs "
        "can still be disturbed; min and max are given beside the medians. No machine with more "
        "cores was available for this work: thread counts above 2 oversubscribe the 2 cores and "
        "say nothing about scalability beyond 2.",
        "",
        f"**Code.** handoff at commit `{(data.get('git') or {}).get('commit')}`"
        + (" with uncommitted changes under allocator/ or collector/"
           if (data.get('git') or {}).get('library_sources_modified') else "") + ".",
        "",
        f"**Build.** CMake {b.get('cmake_build_type')} in `{b.get('build_dir')}`; "
        f"{b.get('cxx_version')} (`{b.get('cxx')}`); flags `{b.get('cxx_flags')}`.",
        "",
        "**Versions** (`dpkg-query -W`):",
        "",
        "| package | version | used as |",
        "|---|---|---|",
    ]
    uses = {"libc6": "glibc malloc", "libjemalloc2": "jemalloc (linked, replaces malloc)",
            "libmimalloc2.0": "mimalloc (mi_malloc/mi_free)", "libtbbmalloc2": "tbbmalloc (scalable_malloc/free)",
            "libgoogle-perftools4": "gperftools", "libtcmalloc-minimal4": "tcmalloc (linked, replaces malloc)",
            "libgc1": "Boehm GC (GC_MALLOC, threads registered)", "libbenchmark1debian": "Google Benchmark"}
    for pkg, version in pk.items():
        lines.append(f"| {pkg} | {version or 'not installed'} | {uses.get(pkg, '')} |")
    lines += ["", "**Command.**", "", "```", data["command"], "```", "",
              f"Run on {data['date']}, {data['duration_s']} s in all. Raw results, every run including "
              "the discarded warm-ups, with the exact argv of each process: "
              f"`{data.get('results_path')}`.", ""]
    return lines


def section_method(data):
    p = data["plan"]
    return [
        "## Method",
        "",
        "Each macro run is one process (`bench_workload_<family> --workload W --backend B --threads N`) "
        "that prints one JSON line: wall time of the workload (steady clock), CPU time of the whole process "
        "over the same interval (`getrusage`, all threads: the concurrent sweeper's and Boehm's marker "
        "threads included), peak RSS (`VmHWM` of /proc/self/status at the end of the workload: the peak of "
        "the process image; `ru_maxrss` is recorded too but not used, because Linux carries it across "
        "`execve`, so every child of the Python driver reported at least the driver's own peak), "
        "its allocation count and the backend's counters. One executable per backend family, all from one "
        "workload source (`bench/workloads/workloads.h`): jemalloc, mimalloc and tcmalloc each replace "
        "`malloc`, so they cannot share a process. Malloc-family backends free each object explicitly "
        "(trees are freed by a traversal, as a C++ program would); the collectors drop the reference.",
        "",
        f"Repetitions: {p['macro_reps']} per macro configuration, {p['other_reps']} for scaling, heap size, "
        f"microbenchmarks and mark/pause; {'one untimed warm-up pass first, discarded' if p['warmup'] else 'no warm-up pass'}. "
        "Within a repetition the backends run round robin. Tables give the median; `[min, max]` where shown. "
        "Ratios divide medians from the same run."
        + (f" The sweeper section adds {p['sweeper_pairs']} pairs per macro workload of `handoff` and "
           "`handoff-nosweeper` alone, back to back, the order alternating from pair to pair; they count only "
           "toward the sweeper on/off comparison." if p.get('sweeper_pairs') and 'sweeper' in p.get('sections', []) else ""),
        "",
        "Backends: `glibc`, `jemalloc`, `mimalloc`, `tcmalloc`, `tbbmalloc` (the malloc baselines), `boehm` "
        "(Boehm GC as a collector: `GC_MALLOC`, `GC_MALLOC_ATOMIC` for pointer-free payloads, stop-the-world "
        "with its parallel marker), `boehm-incremental` (`GC_enable_incremental`), `handoff` (default "
        "configuration: generational, concurrent sweeper on, lazy sweeping), `handoff-nosweeper` "
        "(`HeapConfig.sweeper.enabled = 0`) and `handoff-nogen` (`HeapConfig.generational = 0`: every "
        "collection full).",
        "",
        "The stretch trees of GCBench and binary-trees are built, checked and dropped inside a function of "
        "their own (`stretch_tree`, not inlined) on every backend: with the stretch tree built in the frame "
        "of the function that goes on to run the whole benchmark, a dead stack slot of that live frame kept "
        "its address, and handoff's conservative stack scan kept the whole tree alive for the rest of the "
        "run (in an earlier run of binary-trees every collection marked that dead tree again). A C++ program can hit this too; the benchmark avoids it so that it measures what it "
        "is meant to.",
        "",
        f"Workloads (`--help` of any `bench_workload_*` lists them): GCBench with the standard parameters; "
        f"binary-trees with maximum depth {p['binary_trees_depth']} (each step of depth doubles the work; "
        "this depth keeps the whole matrix, nine backends and six passes, within the 30-minute budget of "
        "the full run); larson (20,000 slots per thread, 10 thread "
        "generations, 4 M operations in all, 16..128 B); prodcons (1 M messages of 1..4 nodes with "
        "16..256 B payloads through a 1024-slot queue; N/2 producers, N/2 consumers); steady (a 64 MiB "
        "working set, sizes 16..512 B and one in 1000 of 8..32 KiB, replaced at random).",
        "",
    ]


def headline(data, cells):
    """Workload x (handoff, boehm, best malloc): time and RSS, with the ratios."""
    lines = ["## Headline", "",
             "Median wall time and peak RSS; ratio = handoff / the other, below 1.0 is better for handoff.", "",
             "| workload | handoff s | boehm s | best malloc s | handoff / boehm | handoff / best malloc "
             "| handoff RSS MiB | best malloc RSS MiB | RSS ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (w, t) in configs_in_order(data["runs"], "macro"):
        h = cells.get((w, t, "handoff"))
        bo = cells.get((w, t, "boehm"))
        bm = best_malloc(cells, w, t, lambda c: c.wall_med())
        br = best_malloc(cells, w, t, lambda c: c.rss_med())
        ht = h.wall_med() if h else None
        bt = bo.wall_med() if bo else None
        hr = h.rss_med() if h else None
        lines.append(f"| {label(w, t)} | {fmt(ht, 3)} | {fmt(bt, 3)} | {fmt(bm and bm[1], 3)} ({bm and bm[0]}) "
                     f"| {fmt(ht / bt if ht and bt else None)} | {fmt(ht / bm[1] if ht and bm else None)} "
                     f"| {fmt(hr, 1)} | {fmt(br and br[1], 1)} ({br and br[0]}) "
                     f"| {fmt(hr / br[1] if hr and br else None)} |")
    return lines + [""]


def macro_tables(data, cells):
    backends = data["plan"]["backends"]
    lines = ["## Macro workloads", "",
             "### Wall time, s: median [min, max]", "",
             "| workload | " + " | ".join(backends) + " |", "|---|" + "---:|" * len(backends)]
    configs = configs_in_order(data["runs"], "macro")
    for (w, t) in configs:
        row = []
        for b in backends:
            c = cells.get((w, t, b))
            if c is None:
                row.append("-")
            elif not c.complete:
                row.append(f"DNF ({len(c.failed)}/{c.n})")
            else:
                row.append(f"{fmt(c.wall_med(), 3)} [{fmt(min(c.wall()), 3)}, {fmt(max(c.wall()), 3)}]")
        lines.append(f"| {label(w, t)} | " + " | ".join(row) + " |")
    lines += ["", "### Time and peak RSS side by side: wall s / CPU s / peak RSS MiB (medians)", "",
              "| workload | " + " | ".join(backends) + " |", "|---|" + "---:|" * len(backends)]
    for (w, t) in configs:
        row = []
        for b in backends:
            c = cells.get((w, t, b))
            row.append("-" if c is None or not c.complete else
                       f"{fmt(c.wall_med(), 2)} / {fmt(c.cpu_med(), 2)} / {fmt(c.rss_med(), 0)}")
        lines.append(f"| {label(w, t)} | " + " | ".join(row) + " |")
    lines += ["", "### Ratios to every baseline: time ratio (RSS ratio), handoff and its variants", "",
              "Each cell divides the collector's median by the baseline's median in the same run; "
              "below 1.0 the collector is faster (smaller).", ""]
    baselines = MALLOC + ["boehm", "boehm-incremental"]
    for variant in ("handoff", "handoff-nosweeper", "handoff-nogen"):
        if not any(cells.get((w, t, variant)) for (w, t) in configs):
            continue
        lines += [f"**{variant}**", "", "| workload | " + " | ".join(baselines) + " |",
                  "|---|" + "---:|" * len(baselines)]
        for (w, t) in configs:
            h = cells.get((w, t, variant))
            row = []
            for b in baselines:
                c = cells.get((w, t, b))
                if not h or not c or not h.complete or not c.complete:
                    row.append("-")
                else:
                    row.append(f"{fmt(h.wall_med() / c.wall_med())} ({fmt(h.rss_med() / c.rss_med())})")
            lines.append(f"| {label(w, t)} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def rmw_estimate(c):
    """Atomic RMWs and shared-line stores of handoff's allocation slow path,
    counted from its counters (operations in our code, not a hardware count)."""
    refills = c.get("refills", 0)
    pins = refills - c.get("last_block_reclaims", 0)
    cas = c.get("claims", 0) + c.get("cas_failures", 0)
    fresh = 5 * c.get("fresh_blocks", 0)
    slices = 2 * c.get("bytes_allocated", 0) / (64 * 1024)
    rmw = pins + cas + fresh + slices
    stores = 2 * refills
    return rmw, stores


def counters_section(data, cells):
    lines = ["## Collector counters per workload", "",
             "Medians over the repetitions of the macro runs. *alloc/refill*: the workload's allocations "
             "divided by the local allocators' refills (slow-path entries that needed a block). *mark rate*: "
             "`marked_bytes_total / mark_ns_total` (MB/s, 10^6 B, of live data marked). *pause*: "
             "stop-the-world time per collection (handoff: `pause_ns_max`, `pause_ns_total / collections`; "
             "Boehm: from `GC_EVENT_PRE_STOP_WORLD` to `GC_EVENT_POST_START_WORLD`). *sweep off mutators*: "
             "blocks swept by the concurrent sweeper / (those + blocks swept lazily by refills): "
             "`sweeper.blocks_swept / (sweeper.blocks_swept + counters.lazy_sweeps)` (blocks a collection "
             "sweeps itself when it finishes the previous lazy cycle are in neither count). "
             "*GC share of wall*: total pause / wall time.", "",
             "*RMW / M alloc* estimates the atomic read-modify-write operations of handoff's allocation "
             "slow path per million allocations, from the counters: one epoch pin per refill that scans the "
             "directory (`refills - last_block_reclaims`; the pin is a seq_cst store, an `xchg` on x86), one "
             "CAS per claim and per lost claim (`claims + cas_failures`), five per fresh block (the heap "
             "budget CAS, lock and unlock of the pool's and of the directory's mutex) and two per 64 KiB "
             "allocation slice (the trigger's two `fetch_add`s, `bytes_allocated / 65536`). *shared stores "
             "/ M alloc*: two plain stores to shared lines per refill (the unpin, and the release store that "
             "gives the block back). These are counts of operations in our code derived from counters, "
             "not a hardware measurement; the fast path itself has none.", "",
             "| workload | backend | collections | alloc/refill | mark rate MB/s | max pause ms | mean pause ms "
             "| GC share of wall | sweep off mutators | RMW / M alloc | shared stores / M alloc |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (w, t) in configs_in_order(data["runs"], "macro"):
        for b in ("handoff", "handoff-nosweeper", "handoff-nogen", "boehm", "boehm-incremental"):
            c = cells.get((w, t, b))
            if not c or not c.complete:
                continue
            res = c.ok
            coll = c.counter_med("collections")
            if b.startswith("handoff"):
                per_refill = c.value_med(lambda x: x["objects"] / x["counters"]["refills"]
                                         if x["counters"].get("refills") else None)
                rate = c.value_med(lambda x: x["counters"]["marked_bytes_total"] / x["counters"]["mark_ns_total"] * 1e3
                                   if x["counters"].get("mark_ns_total") else None)
                mean_pause = c.value_med(lambda x: x["counters"]["pause_ns_total"] / x["counters"]["collections"] / 1e6
                                         if x["counters"].get("collections") else None)
                off = c.value_med(lambda x: x["counters"]["sweeper_blocks_swept"] /
                                  (x["counters"]["sweeper_blocks_swept"] + x["counters"]["lazy_sweeps"])
                                  if (x["counters"]["sweeper_blocks_swept"] + x["counters"]["lazy_sweeps"]) else None)
                rmw = c.value_med(lambda x: rmw_estimate(x["counters"])[0] / x["objects"] * 1e6)
                stores = c.value_med(lambda x: rmw_estimate(x["counters"])[1] / x["objects"] * 1e6)
            else:
                per_refill = rate = off = rmw = stores = None
                mean_pause = c.value_med(lambda x: x["counters"]["pause_ns_total"] / x["counters"]["pauses"] / 1e6
                                         if x["counters"].get("pauses") else None)
            max_pause = c.value_med(lambda x: x["counters"].get("pause_ns_max", 0) / 1e6)
            share = c.value_med(lambda x: x["counters"].get("pause_ns_total", 0) / 1e9 / x["wall_s"])
            lines.append(f"| {label(w, t)} | {b} | {fmt(coll, 0)} | {fmt(per_refill, 0)} | {fmt(rate, 0)} "
                         f"| {fmt(max_pause, 1)} | {fmt(mean_pause, 2)} | {fmt(share)} | {fmt(off)} "
                         f"| {fmt(rmw, 0)} | {fmt(stores, 0)} |")
            del res
    return lines + [""]


def scaling_section(data, figures, plots):
    runs = data["runs"]
    cells = group(runs, "scaling")
    if not cells:
        return []
    threads = data["plan"]["scaling_threads"]
    backends = data["plan"]["scaling_backends"]
    workloads = []
    for r in good_runs(runs, "scaling"):
        if r["workload"] not in workloads:
            workloads.append(r["workload"])
    lines = ["## Scaling with threads", "",
             f"Throughput in millions of allocations per second of wall time (median) at {', '.join(map(str, threads))} "
             "threads; the total work is fixed (binary-trees shares each depth's trees among the threads, larson "
             "divides its operations), so perfect scaling doubles the figure with each doubling of threads. "
             f"The machine has {data.get('nproc')} logical CPUs: 4 and 8 threads oversubscribe them, and those "
             "columns measure behaviour under oversubscription (a thread descheduled inside a critical "
             "section, a collection waiting for descheduled threads to reach a safepoint), not scalability. "
             "No 16-core machine was available for this work.", ""]
    for w in workloads:
        lines += [f"**{w}**", "", "| backend | " + " | ".join(f"{t} thr" for t in threads) + " | peak RSS MiB at each |",
                  "|---|" + "---:|" * len(threads) + "---|"]
        for b in backends:
            row, rss = [], []
            for t in threads:
                c = cells.get((w, t, b))
                tp = c.value_med(lambda x: x["objects"] / x["wall_s"] / 1e6) if c and c.complete else None
                row.append(fmt(tp, 1) if c and c.complete else ("DNF" if c else "-"))
                rss.append(fmt(c.rss_med(), 0) if c and c.complete else "-")
            lines.append(f"| {b} | " + " | ".join(row) + " | " + " / ".join(rss) + " |")
        lines.append("")
    if plots:
        path = plot_scaling(cells, workloads, threads, backends, figures)
        lines += [f"![throughput vs threads]({path})", ""]
    return lines


def heapsize_section(data, figures, plots):
    runs = data["runs"]
    cells = group(runs, "heapsize", extra_key="heap_factor")
    if not cells:
        return []
    macro = group(runs, "macro")
    live = data.get("live_bytes", {})
    probes = group(runs, "live")
    factors = data["plan"]["heap_factors"]
    lines = ["## Time versus heap size", "",
             "After Hertz and Berger (OOPSLA 2005): each collector runs with its heap limited to k times the "
             "workload's live size, and its time is divided by each malloc baseline's time for the same "
             "workload (from the macro runs of the same evaluation run, default settings: a malloc has no heap limit).",
             "",
             "**Live size.** Measured first, by both collectors, with `--live-probe`: the workload calls a "
             "probe wherever its live data peaks (GCBench and binary-trees: with the stretch tree built, and "
             "with the first tree of each depth built beside the long-lived data); in a probe run the collector "
             "runs a full collection there, and the largest live size any probe found is its estimate "
             "(handoff: `HeapStats.live_bytes`, which counts whole 32-byte cells, header word included; "
             "Boehm: `GC_get_heap_size() - GC_get_free_bytes()` after `GC_gcollect`, its 24-byte nodes also "
             "in 32-byte granules). A conservative collector can only over-count (a dead object kept alive by "
             "a stale stack word), so the limits use the smaller of the two estimates, for both collectors.",
             "",
             "| workload | handoff probe MiB | Boehm probe MiB | live size used MiB |", "|---|---:|---:|---:|"]
    for w, v in live.items():
        hc = probes.get((w, 1, "handoff"))
        he = hc.counter_med("live_bytes_probe_max") if hc else None
        bc = probes.get((w, 1, "boehm"))
        be = bc.counter_med("live_bytes_probe_max") if bc else None
        lines.append(f"| {w} | {fmt(he / MIB if he else None, 1)} | {fmt(be / MIB if be else None, 1)} "
                     f"| {fmt(v / MIB, 1)} |")
    lines += ["",
              "**Limits.** handoff: `HeapConfig.max_heap_bytes` = k x live, and `growth_percent` = 100 (k - 1) "
              "(at least 10) so that the trigger uses the headroom (collect when the heap has grown by "
              "(k - 1) x live since the last collection); an allocation the limit refuses after a last-resort "
              "collection throws, and the run counts as did not complete (DNF). Boehm: "
              "`GC_set_max_heap_size(k x live)`; `GC_MALLOC` returning NULL is a DNF. DNF runs are listed, "
              "not hidden. Boehm GC's heap growth follows its own policy (its free-space divisor); the limit "
              "only caps it, so above some k its runs no longer change.", ""]
    for w in live:
        lines += [f"**{w}**: median time s, then time / each malloc baseline", "",
                  "| k | limit MiB | backend | time s [min, max] | peak RSS MiB | collections | "
                  + " | ".join(f"/ {b}" for b in MALLOC) + " |",
                  "|---:|---:|---|---:|---:|---:|" + "---:|" * len(MALLOC)]
        for k in factors:
            for b in ("handoff", "boehm"):
                c = cells.get((w, 1, b, k))
                if c is None:
                    continue
                limit = c.records[0].get("heap_limit_bytes", 0) / MIB
                if not c.complete:
                    errs = "; ".join(e[:80] for e in c.errors())
                    lines.append(f"| {k} | {fmt(limit, 1)} | {b} | DNF {len(c.failed)}/{c.n} ({errs}) | - | - | "
                                 + " | ".join("-" for _ in MALLOC) + " |")
                    continue
                tm = c.wall_med()
                ratios = []
                for mb in MALLOC:
                    mc = macro.get((w, 1, mb))
                    ratios.append(fmt(tm / mc.wall_med()) if mc and mc.complete else "-")
                lines.append(f"| {k} | {fmt(limit, 1)} | {b} | {fmt(tm, 3)} [{fmt(min(c.wall()), 3)}, "
                             f"{fmt(max(c.wall()), 3)}] | {fmt(c.rss_med(), 0)} | {fmt(c.counter_med('collections'), 0)} | "
                             + " | ".join(ratios) + " |")
        lines.append("")
    if plots:
        path = plot_heapsize(cells, macro, live, factors, figures)
        lines += [f"![time relative to malloc vs heap size]({path})", ""]
    return lines


MICRO_NAME = re.compile(r"^(?P<family>[a-z_]+)/(?P<backend>[^/]+)/(?P<size>\d+)(?P<rest>.*)$")


def micro_samples(data):
    samples = {}  # (family, backend, size, threads) -> [ns per object per thread]
    for run in data.get("micro", []):
        variant = "-" + run["variant"] if run.get("variant") else ""  # handoff-nosweeper
        for bench in run["benchmarks"]:
            if bench.get("run_type", "iteration") != "iteration" or bench.get("error_occurred"):
                continue
            m = MICRO_NAME.match(bench["name"])
            if not m or not bench.get("items_per_second"):
                continue
            tm = re.search(r"threads:(\d+)", m.group("rest"))
            threads = int(tm.group(1)) if tm else 1
            key = (m.group("family"), m.group("backend") + variant, int(m.group("size")), threads)
            samples.setdefault(key, []).append(1e9 / bench["items_per_second"])
    return samples


def micro_section(data, figures, plots):
    samples = micro_samples(data)
    if not samples:
        return [], {}
    families = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc", "boehm", "handoff"]
    lines = ["## Microbenchmarks (Google Benchmark)", "",
             "`bench_micro_<family>` (source `bench/micro_alloc.cpp`), real time, median over the "
             "repetitions. *fast_path*: allocate one object of S bytes, write it, release it (malloc family: "
             "`free` right away; collectors: drop it, so their collections are inside the time). S is what the "
             "allocator is asked for; for handoff the cell, its 8-byte header included. *retain*: allocate "
             "65,536 objects into a heap array and then release them all: every round needs fresh blocks "
             "(the refill path). *large*: 16 KiB to 1 MiB objects.", ""]
    fast = {}
    sizes = sorted({k[2] for k in samples if k[0] == "fast_path"})
    lines += ["### fast_path, 1 thread: ns per object (ratio to mimalloc)", "",
              "| size B | " + " | ".join(families) + " |", "|---:|" + "---:|" * len(families)]
    for s in sizes:
        base = median(samples.get(("fast_path", "mimalloc", s, 1), []))
        row = []
        for f in families:
            v = median(samples.get(("fast_path", f, s, 1), []))
            fast[(f, s)] = v
            row.append("-" if v is None else f"{fmt(v)} ({fmt(v / base if base else None)}x)")
        lines.append(f"| {s} | " + " | ".join(row) + " |")
    threads = sorted({k[3] for k in samples if k[0] == "fast_path"})
    if len(threads) > 1:
        lines += ["", "### fast_path with threads: million objects per second, all threads together (64 B)", "",
                  "| threads | " + " | ".join(families) + " |", "|---:|" + "---:|" * len(families)]
        for t in threads:
            row = []
            for f in families:
                v = median(samples.get(("fast_path", f, 64, t), []))
                row.append("-" if v is None else fmt(1e3 / v, 1))
            lines.append(f"| {t} | " + " | ".join(row) + " |")
    for fam, title in (("retain", "retain (refill path), 1 thread: ns per object"),
                       ("large", "large objects, 1 thread: ns per object")):
        fsizes = sorted({k[2] for k in samples if k[0] == fam})
        if not fsizes:
            continue
        lines += ["", f"### {title}", "", "| size B | " + " | ".join(families) + " |",
                  "|---:|" + "---:|" * len(families)]
        for s in fsizes:
            row = [fmt(median(samples.get((fam, f, s, 1), [])), 1) for f in families]
            lines.append(f"| {s} | " + " | ".join(row) + " |")
    lines.append("")
    if plots and sizes:
        path = plot_micro(samples, sizes, families, figures)
        lines += [f"![fast path ns per object]({path})", ""]
    return lines, fast


def mark_section(data):
    runs = [r["result"] for r in data.get("mark_pause", []) if r.get("result")]
    if not runs:
        return []
    lines = ["## Mark throughput and pauses on a large live heap", "",
             "`bench_mark_pause` " + " ".join(data["mark_pause"][0]["argv"][1:]) +
             ": a live heap of binary trees (depth 16) and one long linked list, 32-byte cells, then "
             "repeated full collections with nothing else running. Mark throughput = live bytes / mark time "
             "(MB/s, 10^6 B), with `HANDOFF_MARKER_THREADS` at its default (one marking thread per online CPU). "
             "One row per repetition.", "",
             "| rep | live MiB | live objects | collections | mark MB/s (median) | max mark ms | max pause ms "
             "| mean pause ms |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(runs, 1):
        lines.append(f"| {i} | {fmt(r['live_bytes'] / MIB, 1)} | {r['live_objects']} | {r['collections']} "
                     f"| {fmt(r['mark_mb_per_s_median'], 0)} | {fmt(r['mark_ms_max'], 1)} | {fmt(r['pause_ms_max'], 1)} "
                     f"| {fmt(r['pause_ms_mean'], 1)} |")
    return lines + [""]


def embedder_section(data):
    """The embedder API's benchmarks (bench_ephemeron, bench_external_rss): medians over repetitions."""
    runs = [r for r in data.get("embedder") or [] if r.get("result")]
    if not runs:
        return []
    by_argv = {}
    for r in runs:
        by_argv.setdefault(" ".join(r["argv"]), []).append(r["result"])
    lines = ["## Embedder API: ephemerons and external memory", "",
             "`bench_ephemeron`: one full collection of a map whose values are reached only through their keys, "
             "against the same live objects held by plain arrays; extra ns per entry = the difference of the "
             "mark times / entries. Medians over repetitions.", "",
             "| command | rounds | mark ms, table | mark ms, arrays | extra ns / entry |", "|---|---:|---:|---:|---:|"]
    for argv, results in by_argv.items():
        if not argv.startswith("bench_ephemeron"):
            continue
        lines.append(f"| `{argv}` | {fmt(median([r['rounds'] for r in results]), 0)} "
                     f"| {fmt(median([r['mark_ns_table'] for r in results]) / 1e6, 1)} "
                     f"| {fmt(median([r['mark_ns_strong'] for r in results]) / 1e6, 1)} "
                     f"| {fmt(median([r['extra_ns_per_entry'] for r in results]), 0)} |")
    lines += ["", "`bench_external_rss`: small wrappers owning 1 MiB buffers (every page written), one replaced "
              "per iteration; peak RSS (VmHWM) over the live external bytes (target: at most 2). "
              "`--uncounted` attaches with size 0, so the trigger does not see the buffers.", "",
              "| command | live MiB | peak RSS MiB | peak / live | collections |", "|---|---:|---:|---:|---:|"]
    for argv, results in by_argv.items():
        if not argv.startswith("bench_external_rss"):
            continue
        lines.append(f"| `{argv}` | {fmt(results[0]['live_external_bytes'] / MIB, 0)} "
                     f"| {fmt(median([r['peak_rss'] for r in results]) / MIB, 0)} "
                     f"| {fmt(median([r['peak_over_live'] for r in results]), 2)} "
                     f"| {fmt(median([r['collections'] for r in results]), 0)} |")
    return lines + [""]


def libgc_section(data):
    """Debian's libgc against handoff's (compat/): same binaries, same inputs."""
    runs = (data.get("libgc") or {}).get("runs") or []
    if not runs:
        return []
    table = {}
    for r in runs:
        table.setdefault(r["workload"], {}).setdefault(r["library"], []).append(r)
    lines = ["## Real libgc programs: Debian's libgc against handoff's", "",
             "The same Debian binaries on Debian's `libgc.so.1` and on handoff's (`compat/`, selected with "
             "`LD_LIBRARY_PATH`): `w3m -dump` of pages from `compat/tests/make_page.py`, and a GCBench written "
             "in C against `gc.h` (`bench/libgc/gcbench.c`, built once). Runs interleaved (Boehm, handoff, "
             "Boehm, ...); wall, CPU (user + system) and peak RSS from `wait4`. The 20 MB page runs once per "
             "library (Boehm's run alone takes tens of seconds and up to 2 GB); the others at the section's "
             "repetitions. Medians; ratios are handoff / Boehm.", "",
             "| workload | runs | Boehm wall s | handoff wall s | wall ratio | Boehm CPU s | handoff CPU s | CPU ratio "
             "| Boehm peak RSS MiB | handoff peak RSS MiB | RSS ratio | outputs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    ratios = {}
    for name, libs in table.items():
        if "boehm" not in libs or "handoff" not in libs:
            continue
        b = {k: median([x[k] for x in libs["boehm"]]) for k in ("wall_s", "cpu_s", "rss_mb")}
        h = {k: median([x[k] for x in libs["handoff"]]) for k in ("wall_s", "cpu_s", "rss_mb")}
        ratio = {k: h[k] / b[k] if b[k] else float("nan") for k in b}
        ratios[name] = (libs["handoff"][0], ratio)
        same = all(x.get("output_matches") for x in libs["handoff"])
        lines.append(f"| {name} | {len(libs['handoff'])} | {fmt(b['wall_s'])} | {fmt(h['wall_s'])} "
                     f"| {fmt(ratio['wall_s'])}x | {fmt(b['cpu_s'])} | {fmt(h['cpu_s'])} | {fmt(ratio['cpu_s'])}x "
                     f"| {fmt(b['rss_mb'], 0)} | {fmt(h['rss_mb'], 0)} | {fmt(ratio['rss_mb'])}x "
                     f"| {'identical' if same else '**differ**'} |")
    lines += ["", "Targets:", ""]
    w3m = [(r, q) for r, q in ratios.values() if r["kind"] == "w3m"]
    if w3m:
        run, q = max(w3m, key=lambda x: x[0]["size"])
        for metric, what in (("wall_s", "wall time"), ("rss_mb", "peak RSS")):
            verdict = "met" if q[metric] <= 1.0 else "missed"
            lines.append(f"- w3m, largest page ({run['size']:g} MB): {what} ≤ 1.0x Boehm's: "
                         f"{fmt(q[metric])}x, **{verdict}**.")
    for run, q in ratios.values():
        if run["kind"] == "gcbench":
            verdict = "met" if q["wall_s"] <= 0.5 else "missed"
            lines.append(f"- GCBench (C, depth {run['size']}): wall time ≤ 0.5x Boehm's: {fmt(q['wall_s'])}x "
                         f"(CPU {fmt(q['cpu_s'])}x), **{verdict}**.")
    return lines + ["", "Why and what was changed to get here: `papers/libgc.md`.", ""]
def mark_scaling_runs(data):
    """{marker threads: [bench_mark_pause results]} of the markscaling section."""
    by = {}
    for r in data.get("mark_scaling", []):
        if r.get("result") and r.get("marker_threads"):
            by.setdefault(r["marker_threads"], []).append(r["result"])
    return by


def mark_scaling_section(data, figures, plots):
    by = mark_scaling_runs(data)
    if not by:
        return []
    workers = sorted(by)
    base = median([x["mark_mb_per_s_median"] for x in by.get(1, [])]) if 1 in by else None
    first = data["mark_scaling"][0]
    lines = ["## Scaling of parallel marking", "",
             "`bench_mark_pause` " + " ".join(first["argv"][1:]) + " with `HANDOFF_MARKER_THREADS` at "
             + ", ".join(map(str, workers)) + " (the collecting thread included), the worker counts interleaved "
             "within each repetition. Mark rate = live bytes / mark time (MB/s, 10^6 B); per run the median "
             "over its collections, here the median and the range over the repetitions; the speedup is the "
             f"ratio of medians to 1 thread. The machine has {data.get('nproc')} logical CPUs: more marker "
             "threads than that measure oversubscription, not scalability.", "",
             "| marker threads | runs | mark MB/s (median) | range | speedup vs 1 | max pause ms (median) |",
             "|---:|---:|---:|---|---:|---:|"]
    for w in workers:
        rates = [x["mark_mb_per_s_median"] for x in by[w]]
        med = median(rates)
        speedup = fmt(med / base, 2) + "x" if base else "-"
        lines.append(f"| {w} | {len(rates)} | {fmt(med, 0)} | {fmt(min(rates), 0)} - {fmt(max(rates), 0)} "
                     f"| {speedup} | {fmt(median([x['pause_ms_max'] for x in by[w]]), 1)} |")
    lines.append("")
    if plots:
        path = plot_mark_scaling(by, workers, data.get("nproc"), figures)
        lines += [f"![mark rate vs marker threads]({path})", ""]
    return lines


def marked_per_allocated(cell):
    return cell.value_med(lambda x: x["counters"]["marked_bytes_total"] / x["counters"]["bytes_allocated"]
                          if x["counters"].get("bytes_allocated") else None)


def generational_section(data, cells):
    """handoff (generational) against handoff-nogen (every collection full), same run."""
    configs = [(w, t) for (w, t) in configs_in_order(data["runs"], "macro")
               if cells.get((w, t, "handoff")) and cells.get((w, t, "handoff-nogen"))]
    if not configs:
        return []
    lines = ["## Generational collection on and off", "",
             "`handoff` runs eden collections (sticky marks, write barrier) as the policy decides; "
             "`handoff-nogen` is the same build with `HeapConfig.generational = 0`, so every collection is "
             "full. Medians over the macro repetitions. *marked / allocated*: `marked_bytes_total / "
             "bytes_allocated` (bytes newly marked by all collections over bytes allocated). *old retraced*: "
             "old objects traced again for dirty cards, old large objects and objects under construction "
             "(`remembered_objects`). *eden / full*: collections of each kind.", "",
             "| workload | variant | wall s | vs mimalloc | peak RSS MiB | RSS vs best malloc | marked / allocated "
             "| eden / full | old retraced | mark s | max pause ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (w, t) in configs:
        m = cells.get((w, t, "mimalloc"))
        br = best_malloc(cells, w, t, lambda c: c.rss_med())
        for b in ("handoff", "handoff-nogen"):
            c = cells[(w, t, b)]
            if not c.complete:
                lines.append(f"| {label(w, t)} | {b} | DNF | | | | | | | | |")
                continue
            eden = c.counter_med("eden_collections")
            full = c.counter_med("full_collections")
            lines.append(
                f"| {label(w, t)} | {b} | {fmt(c.wall_med(), 3)} "
                f"| {fmt(c.wall_med() / m.wall_med() if m and m.complete else None)} | {fmt(c.rss_med(), 1)} "
                f"| {fmt(c.rss_med() / br[1] if br else None)} | {fmt(marked_per_allocated(c), 3)} "
                f"| {fmt(eden, 0)} / {fmt(full, 0)} | {fmt(c.counter_med('remembered_objects'), 0)} "
                f"| {fmt(c.value_med(lambda x: x['counters']['mark_ns_total'] / 1e9), 3)} "
                f"| {fmt(c.value_med(lambda x: x['counters']['pause_ns_max'] / 1e6), 1)} |")
    return lines + [""]


def barrier_costs(data):
    """Per-store CPU ns of each bench_barrier benchmark: median over repetitions."""
    per = {}
    for rep in data.get("barrier") or []:
        for b in rep.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or not b.get("items_per_second"):
                continue
            per.setdefault(b["name"], []).append(1e9 / b["items_per_second"])
    return {name: (median(v), min(v), max(v), len(v)) for name, v in per.items()}


def barrier_section(data):
    costs = barrier_costs(data)
    if not costs:
        return []
    raw = costs.get("RawStore")
    lines = ["## Write barrier cost (`bench_barrier`)", "",
             "One store into a field of each of 4096 heap objects in turn; CPU ns per store from Google "
             "Benchmark's items/s, median [min, max] over the repetitions, and the difference to a plain "
             "pointer store into the same objects (`RawStore`). See `bench/barrier_cost.cpp` for what each "
             "case exercises.", "",
             "| benchmark | ns / store | minus RawStore, ns |", "|---|---:|---:|"]
    for name in ("RawStore", "MemberStoreOld", "MemberStoreOldClean", "MemberStoreNew", "MemberStoreOffHeap",
                 "MemberStoreNull"):
        if name not in costs:
            continue
        med, lo, hi, _ = costs[name]
        extra = med - raw[0] if raw else None
        lines.append(f"| {name} | {fmt(med, 2)} [{fmt(lo, 2)}, {fmt(hi, 2)}] | {fmt(extra, 2)} |")
    return lines + [""]


def targets_section(data, cells, fast):
    lines = ["## Targets", "",
             "Each target is checked against medians from this run; ratio = handoff (default configuration) "
             "/ the reference.", "",
             "| target | workload | ratio | limit | verdict |", "|---|---|---:|---:|---|"]
    verdicts = []

    def row(target, workload, ratio, limit):
        if ratio is None:
            lines.append(f"| {target} | {workload} | - | {limit} | not measured in this run |")
            return
        ok = ratio <= limit
        verdicts.append((target, workload, ratio, ok))
        lines.append(f"| {target} | {workload} | {fmt(ratio)} | {limit} | {'met' if ok else 'MISSED'} |")

    configs = [c for c in configs_in_order(data["runs"], "macro") if c[0] in HEADLINE_WORKLOADS]
    for (w, t) in configs:
        h = cells.get((w, t, "handoff"))
        b = cells.get((w, t, "boehm"))
        ht = h.wall_med() if h else None
        bt = b.wall_med() if b else None
        row("time <= 0.5x Boehm GC", label(w, t), ht / bt if ht and bt else None, 0.5)
    for (w, t) in configs:
        h = cells.get((w, t, "handoff"))
        m = cells.get((w, t, "mimalloc"))
        ok = h and m and h.complete and m.complete
        row("time <= 1.0x mimalloc", label(w, t), h.wall_med() / m.wall_med() if ok else None, 1.0)
    for (w, t) in configs:
        h = cells.get((w, t, "handoff"))
        row("marked / allocated bytes <= 0.15", label(w, t),
            marked_per_allocated(h) if h and h.complete else None, 0.15)
    costs = barrier_costs(data)
    if "RawStore" in costs and "MemberStoreOld" in costs:
        row("barrier, common case: ns over a plain store <= 1.0", "MemberStoreOld",
            costs["MemberStoreOld"][0] - costs["RawStore"][0], 1.0)
    for (w, t) in configs:
        h = cells.get((w, t, "handoff"))
        bm = best_malloc(cells, w, t, lambda c: c.wall_med())
        ht = h.wall_med() if h else None
        row(f"time <= 1.0x best malloc ({bm[0] if bm else '-'})", label(w, t), ht / bm[1] if ht and bm else None, 1.0)
    for (w, t) in configs_in_order(data["runs"], "macro"):
        h = cells.get((w, t, "handoff"))
        br = best_malloc(cells, w, t, lambda c: c.rss_med())
        hr = h.rss_med() if h else None
        row(f"peak RSS <= 2x best malloc ({br[0] if br else '-'})", label(w, t), hr / br[1] if hr and br else None, 2.0)
    heap = group(data["runs"], "heapsize", extra_key="heap_factor")
    macro = cells
    for w in data.get("live_bytes", {}):
        c = heap.get((w, 1, "handoff", 2))
        bm = best_malloc(macro, w, 1, lambda x: x.wall_med())
        ratio = c.wall_med() / bm[1] if c and c.complete and bm else None
        row(f"time at 2x heap <= 1.1x best malloc ({bm[0] if bm else '-'})", label(w, 1), ratio, 1.1)
    for s in (16, 32, 64, 128, 256):
        h = fast.get(("handoff", s))
        m = fast.get(("mimalloc", s))
        row("fast path <= 1.0x mimalloc malloc+free", f"{s} B", h / m if h and m else None, 1.0)
    met = sum(1 for v in verdicts if v[3])
    lines += ["", f"{met} of {len(verdicts)} checks met in this run.", ""]
    return lines, verdicts


def misses_section(data, cells, verdicts):
    """Facts from the counters behind each missed target, then the
    profiles of papers/results/profile/ (bench/profile.sh) with a note on
    each."""
    missed = [v for v in verdicts if not v[3]]
    if not missed:
        return []
    lines = ["## Where the misses come from (measured)", "",
             "For each macro configuration behind a missed target: handoff's wall time, the part of it spent "
             "with the world stopped (sum of pauses), of that the marking, the CPU time, and the same run's "
             "best malloc time. Time outside pauses is the mutator (allocation fast and slow paths, lazy "
             "sweeping, the workload's own work).", "",
             "| workload | handoff wall s | pauses s | of which marking s | mutator s (wall - pauses) "
             "| CPU s | best malloc s | collections |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (w, t) in configs_in_order(data["runs"], "macro"):
        if not any(v[1] == label(w, t) for v in missed):
            continue
        h = cells.get((w, t, "handoff"))
        if not h or not h.complete:
            continue
        pauses = h.value_med(lambda x: x["counters"]["pause_ns_total"] / 1e9)
        mark = h.value_med(lambda x: x["counters"]["mark_ns_total"] / 1e9)
        bm = best_malloc(cells, w, t, lambda c: c.wall_med())
        lines.append(f"| {label(w, t)} | {fmt(h.wall_med(), 3)} | {fmt(pauses, 3)} | {fmt(mark, 3)} "
                     f"| {fmt(h.wall_med() - pauses, 3)} | {fmt(h.cpu_med(), 3)} | {fmt(bm and bm[1], 3)} "
                     f"| {fmt(h.counter_med('collections'), 0)} |")
    lines.append("")
    lines += allocation_accounting(data, cells)
    lines += profiles_text(data)
    return lines


def allocation_accounting(data, cells):
    """The heap's own count of allocated bytes (HeapStats.bytes_allocated,
    what the collection trigger sees) beside the bytes the workload asked
    for: a large gap means the trigger is not seeing the allocation."""
    rows = []
    for (w, t) in configs_in_order(data["runs"], "macro"):
        h = cells.get((w, t, "handoff"))
        if not h or not h.complete:
            continue
        seen = h.value_med(lambda x: x["counters"]["bytes_allocated"] / x["bytes"] if x["bytes"] else None)
        rows.append(f"| {label(w, t)} | {fmt(h.value_med(lambda x: x['bytes'] / MIB), 0)} "
                    f"| {fmt(h.counter_med('bytes_allocated') / MIB, 0)} | {fmt(seen)} "
                    f"| {fmt(h.counter_med('collections'), 0)} | {fmt(h.rss_med(), 0)} |")
    return ["**What the collection trigger sees.** The bytes each workload requested (headers excluded) "
            "beside `HeapStats.bytes_allocated`, the bytes handoff's threads published to the trigger "
            "(medians, handoff default configuration). A ratio well below 1.0 means collections are "
            "triggered far less often than the allocation volume calls for, and the heap grows instead.", "",
            "| workload | requested MiB | bytes_allocated MiB | ratio | collections | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|"] + rows + [""]


PROFILE_NOTES = {
    "gcbench-handoff": "GCBench on handoff (1 mutator thread; marking on `HANDOFF_MARKER_THREADS` workers, one "
                       "per CPU by default). The workload's own allocation and initialization (`make`, "
                       "`populate`, `bottom_up`, `check`) hold more samples than the collector does; marking "
                       "(`try_mark`, `trace_one`, `visit`, `drain_local` and the traced type's `trace`) comes "
                       "next. In `try_mark`'s annotation the two hottest instructions are the ones right after "
                       "the load of the chunk's byte that says whether the target is a block cell (the target "
                       "check) and after the `lock bts` that sets the mark bit (so that each object is traced "
                       "once among the workers); cpu-clock samples land on the instruction after a stall.",
    "binary-trees-handoff": "binary-trees (depth 17, 1 thread) on handoff: the same shape as GCBench, the "
                            "workload's allocation first, then marking, then the lazy sweep.",
    "gcbench-boehm": "GCBench on Boehm GC for comparison (libgc is stripped, so most of its symbols show as "
                     "addresses). Its collections run on its parallel marker threads (`parallel_markers` in the "
                     "raw results), and its marker (mark.c) prefetches objects as it pushes them.",
    "larson-handoff": "larson on handoff (2 threads). The hottest symbol is the worker loop itself (the "
                      "allocation fast path is inlined into it); its annotation puts most samples on the "
                      "instructions that consume the loads of the replaced (old) object's size and first payload "
                      "byte, a cache miss per operation. The malloc baselines read the same object, but their "
                      "free lists hand the slot just freed to the next allocation of its size, so their live "
                      "objects stay packed in fewer lines; handoff places new objects in lazily swept blocks "
                      "spread over a heap that grows to twice the live size between collections. (This reading "
                      "of the cause is an inference: the VM has no cache-miss counters.)",
    "large-handoff": "16 KiB large objects on handoff (`bench_micro_handoff`, large/handoff/16384): nearly all "
                     "samples are in the kernel. Each large object is its own mapping: `mmap` (plus the `munmap` "
                     "calls counted by `strace -c` below, which trim the mapping to its alignment) "
                     "at allocation, page faults and page clearing on first touch, `munmap` when the sweep "
                     "frees it. Nothing caches a freed large mapping for the next allocation.",
    "prodcons-handoff": "prodcons on handoff (2 threads). Most samples are the queue's own hand-off between the "
                        "two threads: its mutex and condition variable (`pthread_mutex_lock`, `__lll_lock_wait`, "
                        "`pthread_cond_signal`, and the futex calls in the kernel), which every backend's run "
                        "pays alike. The `ParkedScope` around each blocking wait (`Blocking::Blocking`, "
                        "`capture_stack`) takes no lock: entering and leaving it is one CAS each on the thread's "
                        "own state word and a copy of the registers.",
}


def profiled_commit(folder):
    """The commit bench/profile.sh recorded, with " (with uncommitted
    changes)" when it saw any; None when the profiles predate that record."""
    path = folder / "commit.txt"
    if not path.exists():
        return None
    words = path.read_text().split()
    if not words:
        return None
    return words[0] + (" (with uncommitted changes)" if "dirty" in words[1:] else "")


def profiles_text(data):
    folder = REPO_ROOT / "papers" / "results" / "profile"
    if not folder.is_dir():
        return []
    profiled = profiled_commit(folder)
    run = (data.get("git") or {}).get("commit")
    if profiled is None:
        where = "at a commit they do not record (they predate `commit.txt`), so they may not match the runs above"
    elif run and profiled == run:
        where = "in the same tree as the runs above"
    else:
        where = f"at commit `{profiled}`, not the runs' `{run}`: read them as that tree's profile"
    out = ["### Profiles", "",
           "Recorded with `bench/profile.sh` (perf, `cpu-clock` software event: this virtual machine exposes "
           f"no hardware counters), {where}; the listings are perf's output, cut to the hottest entries.", ""]
    for name in ("gcbench-handoff", "binary-trees-handoff", "gcbench-boehm", "larson-handoff", "prodcons-handoff",
                 "large-handoff"):
        top = folder / f"{name}.top.txt"
        if not top.exists():
            continue
        out += [f"**{name}.** " + PROFILE_NOTES.get(name, ""), "", "```", top.read_text().rstrip()]
        for extra in (folder / f"{name}.annotate.txt", folder / f"{name}.strace.txt"):
            if extra.exists():
                out += ["", extra.read_text().rstrip()]
        out += ["```", ""]
    return out


# ---- plots --------------------------------------------------------------

def plt_module():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def rel(path, out):
    return os.path.relpath(path, Path(out).parent)


STYLE = {"glibc": ("tab:gray", "o"), "jemalloc": ("tab:olive", "s"), "mimalloc": ("tab:green", "^"),
         "tcmalloc": ("tab:cyan", "v"), "tbbmalloc": ("tab:purple", "D"), "boehm": ("tab:orange", "x"),
         "boehm-incremental": ("tab:brown", "+"), "handoff": ("tab:red", "*"), "handoff-nosweeper": ("tab:pink", "P"),
         "handoff-nogen": ("tab:blue", "X")}


def plot_scaling(cells, workloads, threads, backends, figures):
    plt = plt_module()
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4), squeeze=False)
    for ax, w in zip(axes[0], workloads):
        for b in backends:
            xs, ys = [], []
            for t in threads:
                c = cells.get((w, t, b))
                if c and c.complete:
                    xs.append(t)
                    ys.append(c.value_med(lambda x: x["objects"] / x["wall_s"] / 1e6))
            if xs:
                color, marker = STYLE.get(b, ("black", "."))
                ax.plot(xs, ys, marker=marker, color=color, label=b)
        ax.axvline(2, color="black", linewidth=0.5, linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads)
        ax.set_xticklabels([str(t) for t in threads])
        ax.set_xlabel("threads (2 cores; right of the dotted line: oversubscribed)")
        ax.set_ylabel("M allocations / s")
        ax.set_title(w)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(figures) / "scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_mark_scaling(by, workers, nproc, figures):
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    meds = [median([x["mark_mb_per_s_median"] for x in by[w]]) for w in workers]
    for w in workers:
        rates = [x["mark_mb_per_s_median"] for x in by[w]]
        ax.scatter([w] * len(rates), rates, color="tab:red", alpha=0.35, s=12)
    color, marker = STYLE["handoff"]
    ax.plot(workers, meds, marker=marker, color=color, label="handoff (median)")
    if 1 in by:
        ax.plot(workers, [meds[0] * w for w in workers], color="black", linewidth=0.7, linestyle="--",
                label="linear from 1 thread")
    if nproc:
        ax.axvline(nproc, color="black", linewidth=0.5, linestyle=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(workers)
    ax.set_xticklabels([str(w) for w in workers])
    ax.set_xlabel(f"marker threads ({nproc} CPUs; right of the dotted line: oversubscribed)")
    ax.set_ylabel("mark MB/s (live data)")
    ax.set_title("bench_mark_pause: mark rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(figures) / "mark_scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_heapsize(cells, macro, live, factors, figures):
    plt = plt_module()
    ws = list(live)
    fig, axes = plt.subplots(1, len(ws), figsize=(5.5 * len(ws), 4), squeeze=False)
    for ax, w in zip(axes[0], ws):
        bm = best_malloc(macro, w, 1, lambda c: c.wall_med())
        dnfs = []
        for b in ("handoff", "boehm"):
            xs, ys, dnf = [], [], []
            for k in factors:
                c = cells.get((w, 1, b, k))
                if c is None:
                    continue
                if c.complete and bm:
                    xs.append(k)
                    ys.append(c.wall_med() / bm[1])
                else:
                    dnf.append(k)
            color, marker = STYLE[b]
            ax.plot(xs, ys, marker=marker, color=color, label=f"{b} / best malloc ({bm[0] if bm else '?'})")
            dnfs.append((b, dnf, color))
        ax.axhline(1.0, color="black", linewidth=0.8)
        bottom = ax.get_ylim()[0]
        for b, dnf, color in dnfs:
            if dnf:  # drawn on the bottom edge, so that they do not stretch the axis
                ax.scatter(dnf, [bottom] * len(dnf), marker="v", s=60, color=color, clip_on=False,
                           label=f"{b}: did not complete (out of memory)")
        ax.axhline(1.1, color="black", linewidth=0.5, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_xticks(factors)
        ax.set_xticklabels([str(k) for k in factors])
        ax.set_xlabel("heap limit / live size (k)")
        ax.set_ylabel("time / best malloc time")
        ax.set_title(w)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(figures) / "heap_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_micro(samples, sizes, families, figures):
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(7, 4))
    for f in families:
        ys = [median(samples.get(("fast_path", f, s, 1), [])) for s in sizes]
        if any(y is not None for y in ys):
            color, marker = STYLE.get(f, ("black", "."))
            ax.plot(sizes, ys, marker=marker, color=color, label=f)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("object size (B)")
    ax.set_ylabel("ns per object (1 thread)")
    ax.set_title("fast_path: allocate + release one object")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(figures) / "fast_path.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_macro(data, cells, figures):
    plt = plt_module()
    configs = configs_in_order(data["runs"], "macro")
    backends = data["plan"]["backends"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(backends)
    for ax, metric, title in ((axes[0], lambda c: c.wall_med(), "wall time / best malloc"),
                              (axes[1], lambda c: c.rss_med(), "peak RSS / best malloc")):
        for i, b in enumerate(backends):
            ys = []
            for (w, t) in configs:
                c = cells.get((w, t, b))
                bm = best_malloc(cells, w, t, metric)
                v = metric(c) if c and c.complete else None
                ys.append(v / bm[1] if v and bm else 0)
            ax.bar([x + i * width for x in range(len(configs))], ys, width, label=b, color=STYLE[b][0])
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(configs))])
        ax.set_xticklabels([f"{w}\n{t} thr" for (w, t) in configs], fontsize=8)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(title + " (log scale)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(figures) / "macro.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- the document -------------------------------------------------------

def render(data, alloc, out, figures):
    plots = plt_module() is not None
    Path(figures).mkdir(parents=True, exist_ok=True)
    cells = group(data["runs"], "macro")
    parts = ["# handoff: evaluation", "",
             "Generated by `bench/eval_report.py` from the results of `bench/run_eval.py` "
             f"(`{data.get('results_path')}`); the allocation benchmark section comes from "
             f"`{alloc.get('source_path') if alloc else '-'}`. Do not edit by hand: rerun the command in "
             "*Setup*. Every figure below was measured in those runs; nothing is quoted from elsewhere.", ""]
    if data.get("quick"):
        parts += ["**This is a --quick demo run**: smaller sizes, one repetition, no warm-up. "
                  "The numbers are not the evaluation; see papers/evaluation.md. The sizes given under *Method* are "
                  "the full run's; this run's are in the argv and `params` of every run in the JSON.", ""]
    if not plots:
        parts += ["*(matplotlib was not importable, so the plots were not drawn; install python3-matplotlib.)*", ""]
    body = []
    if cells:
        body += headline(data, cells)
    micro_lines, fast = micro_section(data, figures, plots)
    target_lines, verdicts = targets_section(data, cells, fast)
    body += target_lines
    sweeper_pairs = sweeper_comparison(data, cells)
    body += churn_report.render(micro_samples(data), sweeper_pairs, fmt)
    body += misses_section(data, cells, verdicts)
    body += section_setup(data, alloc) + section_method(data)
    if cells:
        body += macro_tables(data, cells)
        if plots:
            path = plot_macro(data, cells, figures)
            body += [f"![macro workloads relative to the best malloc]({rel(path, out)})", ""]
        body += counters_section(data, cells)
        body += generational_section(data, cells)
    sc = scaling_section(data, figures, plots) + mark_scaling_section(data, figures, plots)
    hs = heapsize_section(data, figures, plots)
    body += [re.sub(r"\]\((/[^)]+)\)", lambda m: "](" + rel(m.group(1), out) + ")", l) for l in sc + hs]
    body += [re.sub(r"\]\((/[^)]+)\)", lambda m: "](" + rel(m.group(1), out) + ")", l) for l in micro_lines]
    body += mark_section(data)
    body += barrier_section(data)
    body += embedder_section(data)
    body += libgc_section(data)
    if alloc:
        text = alloc_report.render(alloc)
        text = text.replace("\n### ", "\n#### ").replace("## Allocation and reclaim against malloc baselines",
                                                          "## Allocator-level allocation and reclaim (alloc_reclaim)")
        body += [text, ""]
    return "\n".join(parts + body) + "\n"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="eval.json from bench/run_eval.py")
    p.add_argument("--alloc", default=str(REPO_ROOT / "papers" / "results" / "alloc_reclaim.json"),
                   help="alloc_reclaim JSON from bench/run_alloc_bench.py to fold in")
    p.add_argument("--out", default=str(REPO_ROOT / "papers" / "evaluation.md"))
    p.add_argument("--figures", default=str(REPO_ROOT / "papers" / "figures"))
    args = p.parse_args(argv)
    data = json.loads(Path(args.results).read_text())
    data["results_path"] = str(Path(args.results).resolve()).replace(str(REPO_ROOT) + "/", "")
    alloc = None
    if args.alloc and Path(args.alloc).exists():
        alloc = json.loads(Path(args.alloc).read_text())
        alloc["source_path"] = str(Path(args.alloc).resolve()).replace(str(REPO_ROOT) + "/", "")
    figures = Path(args.figures).resolve()
    text = render(data, alloc, args.out, figures)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
