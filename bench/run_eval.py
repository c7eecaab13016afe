#!/usr/bin/env python3
"""Run the whole evaluation matrix and write papers/evaluation.md.

One command runs, with the backends interleaved (round robin within each
repetition, so drift of a shared machine spreads over all of them) and one
untimed warm-up pass first:

  macro     the workloads of bench/workloads/ (gcbench, binary-trees 1 and
            2 threads, larson, prodcons, steady) on every backend:
            glibc, jemalloc, mimalloc, tcmalloc, tbbmalloc (malloc
            baselines), boehm, boehm-incremental (Boehm GC as a collector),
            handoff, handoff-nosweeper, handoff-nogen (generational
            collection off: every collection full)
  scaling   binary-trees and larson at 1, 2, 4 and 8 threads
  heapsize  gcbench and binary-trees under heap limits of k x the live size
            (k in 1.25, 1.5, 2, 3, 4, 6) on handoff and Boehm GC; the live
            size is measured first with --live-probe
  micro     bench_micro_<family> (Google Benchmark) for every family, and
            the churn points (fast_path at 16..1024 B, 1 and 2 threads) once
            more on handoff with the concurrent sweeper off
            (HANDOFF_SWEEPER=0), interleaved with the others
  mark      bench_mark_pause (mark throughput and pauses on ~100 MB live)
  sweeper   the concurrent sweeper on vs off on the macro workloads:
            --sweeper-pairs more pairs of handoff and handoff-nosweeper
            (the order alternating from pair to pair, so that drift
            within a pair falls on each side equally often), added to the
            macro section's pairs for the on/off verdict
  markscaling  bench_mark_pause with HANDOFF_MARKER_THREADS at 1, 2, 4 (and
            8, 16 where the machine has that many CPUs), interleaved: mark
            rate against the number of marking threads
  barrier   bench_barrier (Google Benchmark): the write barrier's cost per
            Member store against a plain pointer store
  embedder  bench_ephemeron (ephemeron marking cost: ns per entry, fixpoint
            rounds) and bench_external_rss (peak RSS of small wrappers owning
            large external buffers, counted by the trigger or not)
  libgc     Debian's w3m and a C GCBench (bench/libgc/) on Debian's
            libgc.so.1 and on handoff's (compat/, LD_LIBRARY_PATH),
            interleaved: a 5 MB page and GCBench at --reps, the 20 MB page
            once per library (Boehm's run alone takes tens of seconds and
            up to 2 GB), 2 to 3 minutes in all on 2 cores

Every process prints one JSON line (wall, CPU, peak RSS, counters); this
script stores them all in papers/results/eval.json (raw, every run, the
warm-up marked) and then calls bench/eval_report.py to write the report and
the plots. The allocation benchmark of bench/run_alloc_bench.py is folded in
from papers/results/alloc_reclaim.json (rerun it with --alloc).

Standard library only (the plots need matplotlib, used by eval_report.py).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_alloc_bench  # noqa: E402  (machine_info, cmake_build_type)

MALLOC_BASELINES = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc"]
COLLECTORS = ["boehm", "boehm-incremental", "handoff", "handoff-nosweeper", "handoff-nogen"]
BACKENDS = MALLOC_BASELINES + COLLECTORS
FAMILY = {b: b for b in MALLOC_BASELINES}
FAMILY.update({"boehm": "boehm", "boehm-incremental": "boehm", "handoff": "handoff", "handoff-nosweeper": "handoff",
               "handoff-nogen": "handoff"})
FAMILIES = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc", "boehm", "handoff"]
HEAP_FACTORS = [1.25, 1.5, 2, 3, 4, 6]
SCALING_THREADS = [1, 2, 4, 8]
PACKAGES = ["libc6", "libjemalloc2", "libmimalloc2.0", "libtbbmalloc2", "libgoogle-perftools4",
            "libtcmalloc-minimal4", "libgc1", "libbenchmark1debian"]


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Build first: cmake --preset release && cmake --build --preset release "
               "(or any Release tree, passed with --build-dir). The full run with --alloc took "
               "11 to 12 minutes on a 2-core machine; --quick well under a minute.")
    p.add_argument("--build-dir", default=str(REPO_ROOT / "build" / "release"),
                   help="CMake Release build directory holding bench/ (default: build/release)")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes, one repetition, no warm-up, fewer sections: a demo run; writes "
                        "papers/results/quick/ (the full report is left alone)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per configuration "
                   "(default 5 for macro, 3 for scaling and heapsize; 1 with --quick)")
    p.add_argument("--sweeper-pairs", type=int, default=None,
                   help="extra sweeper on/off pairs per macro workload in the sweeper section "
                        "(default 15; 2 with --quick)")
    p.add_argument("--sections", default="macro,sweeper,scaling,heapsize,micro,mark,markscaling,barrier,embedder,libgc",
                   help="comma list of sections to run (default: all)")
    p.add_argument("--alloc", action="store_true",
                   help="also rerun bench/run_alloc_bench.py (about 2.5 minutes) instead of folding in "
                        "the recorded papers/results/alloc_reclaim.json")
    p.add_argument("--out-dir", default=None,
                   help="where eval.json and the report go (default: papers/results and papers/evaluation.md; "
                        "papers/results/quick with --quick)")
    p.add_argument("--no-report", action="store_true", help="run and store, do not write the report")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if args.sweeper_pairs is not None and args.sweeper_pairs < 0:
        p.error("--sweeper-pairs must be 0 or more")
    unknown = set(args.sections) - {"macro", "sweeper", "scaling", "heapsize", "micro", "mark", "markscaling", "barrier", "embedder", "libgc"}
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def fail(message):
    print(f"run_eval.py: error: {message}", file=sys.stderr)
    sys.exit(2)


# ---- the plan -----------------------------------------------------------

class Plan:
    def __init__(self, quick, reps, sweeper_pairs=None):
        self.quick = quick
        self.sweeper_pairs = sweeper_pairs if sweeper_pairs is not None else (2 if quick else 15)
        self.macro_reps = reps or (1 if quick else 5)
        self.other_reps = reps or (1 if quick else 3)
        self.warmup = not quick
        if quick:
            self.bt_depth = 14
            self.macro = [("gcbench", 1, []), ("binary-trees", 1, ["--depth", "14"]),
                          ("binary-trees", 2, ["--depth", "14"]), ("larson", 2, ["--ops", "400000"]),
                          ("prodcons", 2, ["--ops", "50000"]),
                          ("steady", 2, ["--ops", "400000", "--slots", str(16 << 20)])]
            self.scaling = [("larson", ["--ops", "400000"])]
            self.scaling_threads = [1, 2, 4]
            self.scaling_backends = ["glibc", "mimalloc", "boehm", "handoff"]
            self.heap_workloads = [("gcbench", [])]
            self.heap_factors = [1.5, 2, 4]
            self.micro_min_time = 0.02
            self.micro_filter = "fast_path/[^/]+/(16|256|1024)/real_time/threads:[12]$"
            self.mark_args = ["--mb", "20", "--collections", "5"]
            self.libgc = [("w3m", 2, 1), ("gcbench", 16, 1)]
        else:
            self.bt_depth = 17
            depth = ["--depth", str(self.bt_depth)]
            self.macro = [("gcbench", 1, []), ("binary-trees", 1, depth), ("binary-trees", 2, depth),
                          ("larson", 2, []), ("prodcons", 2, []), ("steady", 2, ["--ops", "4000000"])]
            self.scaling = [("binary-trees", ["--depth", "16"]), ("larson", [])]
            self.scaling_threads = SCALING_THREADS
            self.scaling_backends = MALLOC_BASELINES + ["boehm", "handoff"]
            self.heap_workloads = [("gcbench", []), ("binary-trees", depth)]
            self.heap_factors = HEAP_FACTORS
            self.micro_min_time = 0.1
            self.micro_filter = None
            self.mark_args = []
            # (program, page MB or GCBench depth, repetitions); reps filled in below
            self.libgc = [("w3m", 5, None), ("w3m", 20, 1), ("gcbench", 18, None)]
        self.libgc = [(k, size, n or self.other_reps) for k, size, n in self.libgc]
        self.marker_threads = [1, 2, 4] + [n for n in (8, 16) if n <= (os.cpu_count() or 1)]


def executable(build_dir, family):
    return build_dir / "bench" / f"bench_workload_{family}"


def check_executables(build_dir, sections):
    needed = []
    if {"macro", "sweeper", "scaling", "heapsize"} & set(sections):
        needed += [executable(build_dir, f) for f in FAMILIES]
    if "micro" in sections:
        needed += [build_dir / "bench" / f"bench_micro_{f}" for f in FAMILIES]
    if "mark" in sections or "markscaling" in sections:
        needed.append(build_dir / "bench" / "bench_mark_pause")
    if "embedder" in sections:
        needed += [build_dir / "bench" / "bench_ephemeron", build_dir / "bench" / "bench_external_rss"]
    if "barrier" in sections:
        needed.append(build_dir / "bench" / "bench_barrier")
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        fail("missing executable(s):\n  " + "\n  ".join(missing) +
             "\nBuild a Release tree with the benchmarks (HANDOFF_BUILD_BENCH=ON, the default without a "
             "sanitizer), e.g. cmake --preset release && cmake --build --preset release, and pass it "
             "with --build-dir.")


# ---- running ------------------------------------------------------------

def run_workload(build_dir, backend, workload, threads, extra, record):
    argv = [str(executable(build_dir, FAMILY[backend])), "--workload", workload, "--backend", backend,
            "--threads", str(threads)] + list(extra)
    start = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    record.update({"argv": [a.replace(str(REPO_ROOT) + "/", "") for a in argv], "returncode": proc.returncode,
                   "process_s": round(time.monotonic() - start, 3)})
    line = next((l for l in proc.stdout.splitlines() if l.startswith("{")), None)
    if line is not None:
        try:
            record["result"] = json.loads(line)
        except json.JSONDecodeError:
            pass
    if proc.returncode not in (0, 3) or "result" not in record:
        record["stderr_tail"] = proc.stderr[-2000:]
    return record


def progress(done, total, started, label):
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0
    print(f"\r[{done}/{total}] {elapsed:6.0f} s elapsed, ~{eta:4.0f} s left  {label:<60}", end="", flush=True)


def run_and_keep(build_dir, cfg, record, runs):
    """Runs one configuration into `record`, appends it to `runs`, and warns
    (without stopping the matrix) when the process failed."""
    runs.append(run_workload(build_dir, cfg["backend"], cfg["workload"], cfg["threads"], cfg["extra"], record))
    if record["returncode"] not in (0, 3):
        print(f"\n  warning: {' '.join(record['argv'])} exited with {record['returncode']}: "
              f"{record.get('stderr_tail', '').strip()[-300:]}")


def run_rounds(section, configs, reps, warmup, build_dir, runs):
    """configs: list of dicts with backend, workload, threads, extra (+ any tags).
    Runs rep 0 (warm-up, discarded) then reps 1..reps, each a round robin over configs."""
    rounds = ([0] if warmup else []) + list(range(1, reps + 1))
    total = len(rounds) * len(configs)
    started = time.monotonic()
    done = 0
    for rep in rounds:
        for cfg in configs:
            record = {"section": section, "rep": rep, "warmup": rep == 0}
            record.update({k: v for k, v in cfg.items() if k != "extra"})
            progress(done, total, started, f"{section} rep {rep} {cfg['workload']} {cfg['backend']} t{cfg['threads']}")
            run_and_keep(build_dir, cfg, record, runs)
            done += 1
    progress(done, total, started, f"{section} done")
    print()


def macro_configs(plan):
    # Interleave: within a repetition every workload runs on every backend.
    return [{"backend": b, "workload": w, "threads": t, "extra": extra}
            for (w, t, extra) in plan.macro for b in BACKENDS]


def run_sweeper_pairs(plan, build_dir, runs):
    """The sweeper on/off comparison's extra pairs: per pair and macro
    workload, handoff and handoff-nosweeper back to back, handoff first in
    odd pairs and second in even ones. A pair shares its time window; the
    alternation keeps a steady drift (the machine warming, another job
    starting) from always landing on the same side. Records: section
    "sweeper", rep = the pair's number."""
    variants = ["handoff", "handoff-nosweeper"]
    total = plan.sweeper_pairs * len(plan.macro) * 2
    started = time.monotonic()
    done = 0
    for pair in range(1, plan.sweeper_pairs + 1):
        order = variants if pair % 2 else variants[::-1]
        for (w, t, extra) in plan.macro:
            for backend in order:
                cfg = {"backend": backend, "workload": w, "threads": t, "extra": extra}
                record = {"section": "sweeper", "rep": pair, "warmup": False, "backend": backend, "workload": w,
                          "threads": t, "first": order[0]}
                progress(done, total, started, f"sweeper pair {pair} {w} {backend} t{t}")
                run_and_keep(build_dir, cfg, record, runs)
                done += 1
    progress(done, total, started, "sweeper done")
    print()


def scaling_configs(plan):
    return [{"backend": b, "workload": w, "threads": t, "extra": extra}
            for (w, extra) in plan.scaling for t in plan.scaling_threads for b in plan.scaling_backends]


def measure_live(plan, build_dir, runs):
    """Live size per heapsize workload, measured by both collectors with
    --live-probe: a full collection wherever the workload's live data peaks,
    and the largest live size any probe found (handoff: HeapStats.live_bytes;
    Boehm: heap size minus free bytes after GC_gcollect). Both objects sizes
    are the same here (32-byte cells for tree nodes), and a conservative
    collector can only over-count (a dead object kept by a stale stack word),
    so the smaller of the two is taken."""
    live = {}
    for workload, extra in plan.heap_workloads:
        found = {}
        for backend in ("handoff", "boehm"):
            record = {"section": "live", "rep": 1, "warmup": False, "backend": backend, "workload": workload,
                      "threads": 1}
            run_workload(build_dir, backend, workload, 1, list(extra) + ["--live-probe"], record)
            runs.append(record)
            value = record.get("result", {}).get("counters", {}).get("live_bytes_probe_max")
            if value:
                found[backend] = value
        if not found:
            fail(f"could not measure the live size of {workload}")
        live[workload] = min(found.values())
    return live


def heapsize_configs(plan, live):
    configs = []
    for workload, extra in plan.heap_workloads:
        for k in plan.heap_factors:
            limit_mb = live[workload] * k / 1048576.0
            for backend in ("handoff", "boehm"):
                args = list(extra) + ["--max-heap-mb", f"{limit_mb:.3f}"]
                if backend == "handoff":
                    # Use the headroom: collect when the heap has grown by (k - 1) x live.
                    args += ["--growth-percent", str(max(10, int(round((k - 1) * 100))))]
                configs.append({"backend": backend, "workload": workload, "threads": 1, "extra": args,
                                "heap_factor": k, "heap_limit_bytes": int(live[workload] * k)})
    return configs


def run_gbench(argv, prefix, timeout, env=None):
    """Runs a Google Benchmark program with JSON output to a temporary file;
    returns its record (argv as run, return code, benchmarks, stderr tail).
    `env`: variables added to the environment."""
    with tempfile.NamedTemporaryFile(prefix=prefix, suffix=".json", delete=False) as tmp:
        path = Path(tmp.name)
    full = argv + [f"--benchmark_out={path}", "--benchmark_out_format=json"]
    proc = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)
    try:
        data = json.loads(path.read_text()) if proc.returncode == 0 else {}
    except (OSError, json.JSONDecodeError):
        data = {}
    path.unlink(missing_ok=True)
    recorded = argv + ["--benchmark_out=<tmp>.json", "--benchmark_out_format=json"]
    return {"returncode": proc.returncode, "argv": [a.replace(str(REPO_ROOT) + "/", "") for a in recorded],
            "benchmarks": data.get("benchmarks", []), "stderr_tail": proc.stderr[-1000:]}


# The churn points of the sweeper on/off comparison (eval_report.py, "Churn").
CHURN_NOSWEEPER_FILTER = "fast_path/handoff/(16|32|64|128|256|1024)/real_time/threads:[12]$"


def run_micro(plan, build_dir, reps):
    """Google Benchmark JSON from every family, interleaved over repetitions;
    after handoff in each repetition, handoff's churn points with the
    concurrent sweeper off (variant "nosweeper")."""
    out = []
    started = time.monotonic()
    runs = [(f, None) for f in FAMILIES] + [("handoff", "nosweeper")]
    total = reps * len(runs)
    done = 0
    for rep in range(1, reps + 1):
        for family, variant in runs:
            progress(done, total, started, f"micro rep {rep} {family}{' ' + variant if variant else ''}")
            argv = [str(build_dir / "bench" / f"bench_micro_{family}"), f"--benchmark_min_time={plan.micro_min_time}"]
            env = None
            if variant == "nosweeper":
                env = {"HANDOFF_SWEEPER": "0"}
                argv.append(f"--benchmark_filter={plan.micro_filter or CHURN_NOSWEEPER_FILTER}")
            elif plan.micro_filter:
                argv.append(f"--benchmark_filter={plan.micro_filter}")
            record = {"rep": rep, "family": family}
            if variant:
                record.update({"variant": variant, "env": env})
            out.append({**record, **run_gbench(argv, f"micro_{family}_", 900, env)})
            done += 1
    progress(done, total, started, "micro done")
    print()
    return out


def run_json_line(argv, env=None, timeout=600):
    """Runs a program that prints one JSON line: its return code, and the
    parsed line as "result" (or the tail of stderr when there is none)."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
    record = {"returncode": proc.returncode}
    line = next((l for l in proc.stdout.splitlines() if l.startswith("{")), None)
    if line:
        record["result"] = json.loads(line)
    else:
        record["stderr_tail"] = proc.stderr[-2000:]
    return record


def run_mark(plan, build_dir, reps, marker_threads=(None,)):
    """bench_mark_pause, `reps` times; per repetition once for each entry of
    marker_threads (HANDOFF_MARKER_THREADS; None: the heap's default),
    interleaved so that drift of a shared machine spreads over all."""
    out = []
    for rep in range(1, reps + 1):
        for markers in marker_threads:
            argv = [str(build_dir / "bench" / "bench_mark_pause")] + plan.mark_args
            env = dict(os.environ)
            if markers is not None:
                env["HANDOFF_MARKER_THREADS"] = str(markers)
            print(f"mark_pause rep {rep}" + (f" markers {markers}" if markers else "") + " ...", flush=True)
            record = {"rep": rep, "argv": [a.replace(str(REPO_ROOT) + "/", "") for a in argv]}
            if markers is not None:
                record["marker_threads"] = markers
            out.append({**record, **run_json_line(argv, env=env)})
    return out


def run_barrier(plan, build_dir, reps):
    """bench_barrier's Google Benchmark JSON, one process per repetition."""
    out = []
    for rep in range(1, reps + 1):
        print(f"barrier rep {rep} ...", flush=True)
        argv = [str(build_dir / "bench" / "bench_barrier"), f"--benchmark_min_time={plan.micro_min_time}"]
        out.append({"rep": rep, **run_gbench(argv, "barrier_", 600)})
    return out


# The embedder API: one JSON line per process. The uncounted RSS control
# runs only at the smoke size (without the trigger it grows to ~2 GB).
EMBEDDER_RUNS = [
    ("ephemeron", ["bench_ephemeron", "--entries", "100000", "--live-percent", "50"]),
    ("ephemeron", ["bench_ephemeron", "--entries", "100000", "--live-percent", "50", "--chain", "16"]),
    ("external_rss", ["bench_external_rss"]),
    ("external_rss", ["bench_external_rss", "--tiny"]),
    ("external_rss", ["bench_external_rss", "--tiny", "--uncounted"]),
]


def run_embedder(plan, build_dir, reps):
    out = []
    for rep in range(1, reps + 1):
        for name, args in EMBEDDER_RUNS:
            if plan.quick and "--tiny" not in args:
                args = args + ["--tiny"]
            argv = [str(build_dir / "bench" / args[0])] + args[1:]
            print(f"embedder {name} rep {rep} ...", flush=True)
            out.append({"rep": rep, "bench": name, "argv": args, **run_json_line(argv)})
    return out


def run_libgc(plan, build_dir):
    """bench/libgc/compare.py's interleaved runs: one record per run."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("libgc_compare", REPO_ROOT / "bench" / "libgc" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    lib = build_dir / "compat" / "lib"
    missing = [p for p in ("w3m", "cc") if shutil.which(p) is None]
    if not (lib / "libgc.so.1").exists() or missing:
        print(f"warning: libgc section skipped: {lib}/libgc.so.1 (target handoff_gc, needs libgc-dev) "
              f"or {', '.join(missing) or 'nothing else'} missing", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as work:
        records = compare.measure(str(lib), work, plan.libgc, log=lambda m: print("libgc " + m, flush=True))
    return {"plan": [list(p) for p in plan.libgc], "runs": records}


# ---- the environment ----------------------------------------------------

def package_versions():
    versions = {}
    for pkg in PACKAGES:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            out = ""
        versions[pkg] = out or None
    return versions


def cmake_cache(build_dir, keys):
    values = {}
    try:
        for line in (build_dir / "CMakeCache.txt").read_text(errors="replace").splitlines():
            name = line.split(":", 1)[0]
            if name in keys:
                values[name] = line.split("=", 1)[1] if "=" in line else ""
    except OSError:
        pass
    return values


def compiler_version(path):
    try:
        return subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return None


def loadavg():
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def git_state():
    def git(*args):
        try:
            return subprocess.run(["git", "-C", str(REPO_ROOT)] + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            return ""
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "allocator", "collector")
    return {"commit": git("rev-parse", "HEAD") or None,
            "library_sources_modified": bool(dirty)}


def environment(build_dir, argv):
    cache = cmake_cache(build_dir, {"CMAKE_BUILD_TYPE", "CMAKE_CXX_COMPILER", "CMAKE_CXX_FLAGS",
                                    "CMAKE_CXX_FLAGS_RELEASE"})
    machine = run_alloc_bench.machine_info()
    return {
        "machine": machine,
        "nproc": os.cpu_count(),
        "packages": package_versions(),
        "build": {"build_dir": str(build_dir).replace(str(REPO_ROOT) + "/", ""),
                  "cmake_build_type": cache.get("CMAKE_BUILD_TYPE"),
                  "cxx": cache.get("CMAKE_CXX_COMPILER"),
                  "cxx_version": compiler_version(cache.get("CMAKE_CXX_COMPILER") or "c++"),
                  "cxx_flags": (cache.get("CMAKE_CXX_FLAGS", "") + " " + cache.get("CMAKE_CXX_FLAGS_RELEASE", "")).strip()
                               + " -std=c++20"},
        "command": " ".join(["python3", "bench/run_eval.py"] + list(argv)),
        "python": platform.python_version(),
        "git": git_state(),
    }


def report_python():
    """A Python that can import matplotlib (pyenv shims often lack Debian's)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if candidate and Path(candidate).exists():
            ok = subprocess.run([candidate, "-c", "import matplotlib"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
            if ok:
                return candidate
    return sys.executable


def main(argv):
    args = parse_args(argv)
    build_dir = Path(args.build_dir).resolve()
    check_executables(build_dir, args.sections)
    if run_alloc_bench.cmake_build_type(build_dir) not in (None, "Release"):
        print(f"warning: {build_dir} is not a Release build; the numbers mean little", file=sys.stderr)
    plan = Plan(args.quick, args.reps, args.sweeper_pairs)
    if args.out_dir:
        out_dir = Path(args.out_dir)
        report = out_dir / "evaluation.md"
    elif args.quick:
        out_dir = REPO_ROOT / "papers" / "results" / "quick"
        report = out_dir / "evaluation.md"
    else:
        out_dir = REPO_ROOT / "papers" / "results"
        report = REPO_ROOT / "papers" / "evaluation.md"
    out_dir.mkdir(parents=True, exist_ok=True)

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    data = {"generated_by": "bench/run_eval.py", "date": started.isoformat(timespec="seconds"),
            "quick": args.quick, "load_at_start": loadavg()}
    data.update(environment(build_dir, argv))
    data["plan"] = {"macro_reps": plan.macro_reps, "other_reps": plan.other_reps, "warmup": plan.warmup,
                    "binary_trees_depth": plan.bt_depth, "backends": BACKENDS,
                    "malloc_baselines": MALLOC_BASELINES, "scaling_threads": plan.scaling_threads,
                    "scaling_backends": plan.scaling_backends, "heap_factors": plan.heap_factors,
                    "marker_threads": plan.marker_threads, "sweeper_pairs": plan.sweeper_pairs,
                    "sections": args.sections}
    runs = []
    data["runs"] = runs
    if "macro" in args.sections:
        run_rounds("macro", macro_configs(plan), plan.macro_reps, plan.warmup, build_dir, runs)
    if "sweeper" in args.sections and plan.sweeper_pairs:
        run_sweeper_pairs(plan, build_dir, runs)
    if "scaling" in args.sections:
        run_rounds("scaling", scaling_configs(plan), plan.other_reps, plan.warmup, build_dir, runs)
    if "heapsize" in args.sections:
        live = measure_live(plan, build_dir, runs)
        data["live_bytes"] = live
        run_rounds("heapsize", heapsize_configs(plan, live), plan.other_reps, plan.warmup, build_dir, runs)
    if "micro" in args.sections:
        data["micro"] = run_micro(plan, build_dir, plan.other_reps)
    if "mark" in args.sections:
        data["mark_pause"] = run_mark(plan, build_dir, plan.other_reps)
    if "markscaling" in args.sections:
        data["mark_scaling"] = run_mark(plan, build_dir, plan.other_reps, plan.marker_threads)
    if "barrier" in args.sections:
        data["barrier"] = run_barrier(plan, build_dir, plan.other_reps)
    if "embedder" in args.sections:
        data["embedder"] = run_embedder(plan, build_dir, plan.other_reps)
    if "libgc" in args.sections:
        libgc = run_libgc(plan, build_dir)
        if libgc:
            data["libgc"] = libgc
    if args.alloc:
        alloc_args = ["--build-dir", str(build_dir), "--out", str(out_dir / "alloc_reclaim.json")]
        if args.quick:
            alloc_args.append("--quick")
        run_alloc_bench.main(alloc_args)
    data["load_at_end"] = loadavg()
    data["duration_s"] = round(time.monotonic() - t0, 1)
    results = out_dir / "eval.json"
    results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {results} ({data['duration_s']} s)")
    if args.no_report:
        return 0
    alloc_json = out_dir / "alloc_reclaim.json"
    if not alloc_json.exists():
        alloc_json = REPO_ROOT / "papers" / "results" / "alloc_reclaim.json"
    figures = (out_dir / "figures") if (args.quick or args.out_dir) else (REPO_ROOT / "papers" / "figures")
    cmd = [report_python(), str(Path(__file__).resolve().parent / "eval_report.py"), str(results),
           "--alloc", str(alloc_json), "--out", str(report), "--figures", str(figures)]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
