#!/usr/bin/env python3
"""Run the alloc_reclaim benchmark for every allocator backend and merge it.

Each backend is its own executable (bench_alloc_<backend>; see
bench/alloc_reclaim.cpp for why). The executables run interleaved, round
robin: repetition 1 of every backend, then repetition 2, and so on, so slow
drift of the machine (thermal, other load) spreads over all backends instead
of landing on one. Each run writes Google Benchmark JSON; this script merges
them into one file with the machine description and the exact commands, and
prints, per object size, every backend's ns/object (median, min and max over
the repetitions) and its ratio to mimalloc's median (< 1.0: faster than
mimalloc).

Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Executable backends in run order. The handoff executable reports two
# result backends (handoff: eager sweep, handoff-lazy: lazy sweep).
EXECUTABLES = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc", "boehm", "handoff"]
RESULT_BACKENDS = {"handoff": ["handoff", "handoff-lazy"]}
BASELINE = "mimalloc"
QUICK_REPS = 2
QUICK_MIN_TIME = 0.05
DEFAULT_MIN_TIME = 0.25


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Runs the bench_alloc_<backend> executables "
        "interleaved, merges their JSON and prints a table of ns/object with the ratio to mimalloc.",
        epilog="Relative paths are taken from the current directory; the defaults are anchored "
        f"at the repository root ({REPO_ROOT}). Build the executables with a Release "
        "configuration, e.g.: cmake --preset release && cmake --build --preset release",
    )
    parser.add_argument("--build-dir", default=str(REPO_ROOT / "build" / "release"),
                        help="CMake build directory holding bench/bench_alloc_* (default: build/release)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions of every backend (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_REPS} repetitions and --benchmark_min_time={QUICK_MIN_TIME}: "
                        "a smoke run of well under a minute")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds Google Benchmark spends per benchmark and repetition "
                        f"(default {DEFAULT_MIN_TIME}; {QUICK_MIN_TIME} with --quick)")
    parser.add_argument("--out", default=str(REPO_ROOT / "papers" / "results" / "alloc_reclaim.json"),
                        help="combined JSON output (default: papers/results/alloc_reclaim.json)")
    parser.add_argument("--report", default=None,
                        help="also write the Markdown report section here (e.g. papers/evaluation-alloc.md) "
                        "with bench/alloc_report.py")
    parser.add_argument("--backends", default=None,
                        help="comma list of backends to run (default: all): "
                        + ", ".join(EXECUTABLES + ["handoff-lazy"]))
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = QUICK_REPS if args.quick else 5
    if args.min_time is None:
        args.min_time = QUICK_MIN_TIME if args.quick else DEFAULT_MIN_TIME
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.min_time <= 0:
        parser.error("--min-time must be positive")
    return args


def fail(message):
    print(f"run_alloc_bench.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def selected_backends(spec):
    """Maps the --backends list to {executable: [result backends]}."""
    if spec is None:
        return {exe: RESULT_BACKENDS.get(exe, [exe]) for exe in EXECUTABLES}
    owner = {b: exe for exe in EXECUTABLES for b in RESULT_BACKENDS.get(exe, [exe])}
    chosen = {}
    for name in (n.strip() for n in spec.split(",")):
        if not name:
            continue
        if name not in owner:
            fail(f"unknown backend '{name}'; known: {', '.join(owner)}")
        chosen.setdefault(owner[name], []).append(name)
    if not chosen:
        fail("--backends selects nothing")
    return {exe: chosen[exe] for exe in EXECUTABLES if exe in chosen}


def executable_path(build_dir, exe):
    return build_dir / "bench" / f"bench_alloc_{exe}"


def check_executables(build_dir, plan):
    missing = [executable_path(build_dir, exe) for exe in plan if not executable_path(build_dir, exe).is_file()]
    if not missing:
        return
    lines = "\n".join(f"  {path}" for path in missing)
    fail(f"missing benchmark executable(s):\n{lines}\n"
         f"They are built by bench/CMakeLists.txt when HANDOFF_BUILD_BENCH=ON (the default unless "
         f"HANDOFF_SANITIZER is set). Build a Release tree, e.g.\n"
         f"  cmake --preset release && cmake --build --preset release     (build/release)\n"
         f"or\n"
         f"  cmake -S {REPO_ROOT} -B {build_dir} -G Ninja -DCMAKE_BUILD_TYPE=Release -DHANDOFF_BUILD_BENCH=ON\n"
         f"  cmake --build {build_dir}\n"
         f"and pass that directory with --build-dir.")


def cmake_build_type(build_dir):
    cache = build_dir / "CMakeCache.txt"
    try:
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                return line.split("=", 1)[1]
    except OSError:
        pass
    return None


def machine_info():
    info = {"cpu_model": None, "logical_cpus": os.cpu_count(), "physical_cores": None,
            "kernel": platform.release(), "machine": platform.machine(), "python": platform.python_version()}
    try:
        cores = set()
        physical = None
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and info["cpu_model"] is None:
                info["cpu_model"] = value
            elif key == "physical id":
                physical = value
            elif key == "core id":
                cores.add((physical, value))
        info["physical_cores"] = len(cores) or None
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_kib"] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return info


def benchmark_filter(exe, backends):
    """Regex for --benchmark_filter, or None to run everything."""
    if backends == RESULT_BACKENDS.get(exe, [exe]):
        return None
    return "^[^/]+/(" + "|".join(backends) + ")/"


def run_one(build_dir, exe, backends, min_time, rep, reps):
    with tempfile.NamedTemporaryFile(prefix=f"alloc_{exe}_", suffix=".json", delete=False) as tmp:
        out_path = Path(tmp.name)
    argv = [str(executable_path(build_dir, exe)), f"--benchmark_min_time={min_time}",
            f"--benchmark_out={out_path}", "--benchmark_out_format=json"]
    pattern = benchmark_filter(exe, backends)
    if pattern is not None:
        argv.append(f"--benchmark_filter={pattern}")
    print(f"rep {rep}/{reps} {exe} ...", end="", flush=True)
    start = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - start
    try:
        if proc.returncode != 0:
            print(" FAILED", flush=True)
            tail = "\n".join(proc.stdout.splitlines()[-20:])
            fail(f"{' '.join(argv)} exited with status {proc.returncode}; last output:\n{tail}")
        try:
            result = json.loads(out_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            fail(f"{' '.join(argv)} wrote no readable JSON: {error}")
    finally:
        out_path.unlink(missing_ok=True)
    print(f" done in {seconds:.1f} s", flush=True)
    # The temporary output file is named in argv; record a stable form.
    recorded = [a if not a.startswith("--benchmark_out=") else "--benchmark_out=<tmp>.json" for a in argv]
    return {"rep": rep, "executable": exe, "argv": recorded, "seconds": round(seconds, 3),
            "context": result.get("context", {}), "benchmarks": result.get("benchmarks", [])}


def parse_name(name):
    """'alloc_reclaim/handoff/64/100000/real_time' -> (family, backend, size, objects)."""
    parts = name.split("/")
    if len(parts) < 4:
        return None
    try:
        return parts[0], parts[1], int(parts[2]), int(parts[3])
    except ValueError:
        return None


def summarise(runs, wanted):
    samples = {}  # (family, backend, size, objects) -> [ns per object]
    for run in runs:
        for bench in run["benchmarks"]:
            if bench.get("run_type", "iteration") != "iteration" or bench.get("error_occurred"):
                continue
            key = parse_name(bench.get("name", ""))
            if key is None or key[1] not in wanted or not bench.get("items_per_second"):
                continue
            samples.setdefault(key, []).append(1e9 / bench["items_per_second"])
    summary = []
    for key in sorted(samples, key=lambda k: (k[0], k[2], k[3], order_of(k[1]))):
        values = samples[key]
        summary.append({"family": key[0], "backend": key[1], "size": key[2], "objects": key[3],
                        "ns_per_object": {"median": statistics.median(values), "min": min(values),
                                          "max": max(values), "samples": values}})
    medians = {(s["family"], s["size"], s["objects"]): s["ns_per_object"]["median"]
               for s in summary if s["backend"] == BASELINE}
    for s in summary:
        base = medians.get((s["family"], s["size"], s["objects"]))
        s["ratio_to_" + BASELINE] = s["ns_per_object"]["median"] / base if base else None
    return summary


def order_of(backend):
    flat = [b for exe in EXECUTABLES for b in RESULT_BACKENDS.get(exe, [exe])]
    return flat.index(backend) if backend in flat else len(flat)


def print_tables(summary, reps):
    families = []
    for s in summary:
        if (s["family"], s["objects"]) not in families:
            families.append((s["family"], s["objects"]))
    for family, objects in families:
        rows = [s for s in summary if s["family"] == family and s["objects"] == objects]
        print(f"\n{family}, N = {objects}: ns per object, median [min, max] over {reps} rep(s); "
              f"ratio = median / {BASELINE} median (< 1.0: faster than {BASELINE})")
        print(f"{'size':>5}  {'backend':<13} {'median':>9} {'min':>9} {'max':>9} {'ratio':>7}")
        last_size = None
        for s in rows:
            if last_size is not None and s["size"] != last_size:
                print()
            last_size = s["size"]
            ns = s["ns_per_object"]
            ratio = s["ratio_to_" + BASELINE]
            ratio_text = f"{ratio:7.2f}" if ratio is not None else f"{'-':>7}"
            print(f"{s['size']:>5}  {s['backend']:<13} {ns['median']:9.2f} {ns['min']:9.2f} "
                  f"{ns['max']:9.2f} {ratio_text}")


def main(argv):
    args = parse_args(argv)
    build_dir = Path(args.build_dir).resolve()
    plan = selected_backends(args.backends)
    check_executables(build_dir, plan)
    build_type = cmake_build_type(build_dir)
    if build_type is not None and build_type != "Release":
        print(f"warning: {build_dir} is a {build_type or 'no-build-type'} build; "
              "numbers are only meaningful from a Release build", file=sys.stderr)

    started = datetime.datetime.now(datetime.timezone.utc)
    runs = []
    for rep in range(1, args.reps + 1):
        for exe, backends in plan.items():
            runs.append(run_one(build_dir, exe, backends, args.min_time, rep, args.reps))
    finished = datetime.datetime.now(datetime.timezone.utc)

    wanted = {b for backends in plan.values() for b in backends}
    summary = summarise(runs, wanted)
    contexts = {}
    for run in runs:
        contexts.setdefault(run["executable"], run["context"])
    compilers = sorted({c.get("compiler") for c in contexts.values() if c.get("compiler")})
    combined = {
        "benchmark": "alloc_reclaim",
        "description": "allocate N objects of S bytes, write one word into each, reclaim all; "
                       "ns per object = 1e9 / items_per_second (real time)",
        "generated_by": "bench/run_alloc_bench.py",
        "driver_command": " ".join(["python3", "bench/run_alloc_bench.py"] + list(argv)),
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 1),
        "machine": machine_info(),
        "build": {"build_dir": str(build_dir), "cmake_build_type": build_type, "compilers": compilers},
        "settings": {"reps": args.reps, "quick": args.quick, "min_time_s": args.min_time,
                     "order": "interleaved (round robin over backends per repetition)",
                     "baseline": BASELINE, "backends": sorted(wanted, key=order_of)},
        "commands": [{"rep": r["rep"], "executable": r["executable"], "argv": r["argv"], "seconds": r["seconds"]}
                     for r in runs],
        "contexts": contexts,
        "summary": summary,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(combined, indent=1) + "\n")

    machine = combined["machine"]
    print(f"\n{machine['cpu_model']}, {machine['logical_cpus']} logical CPUs; "
          f"{', '.join(compilers) or 'compiler unknown'}; {build_type or 'unknown'} build; "
          f"min_time {args.min_time} s; {combined['duration_s']} s in all")
    print_tables(summary, args.reps)
    print(f"\nwrote {out}")
    if args.report:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import alloc_report
        alloc_report.main([str(out), "--out", args.report])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
