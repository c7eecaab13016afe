#!/usr/bin/env python3
"""Same program, same input, two collectors: Debian's libgc.so.1 and
handoff's (selected with LD_LIBRARY_PATH). Runs are interleaved (Boehm,
handoff, Boehm, ...) so that drift in machine load hits both alike; each
run's wall time and CPU time (user + system) come from wait4's rusage, its
peak RSS from GNU time (/usr/bin/time, see run()). Outputs of the two libraries are compared (they must be identical).

  python3 bench/libgc/compare.py --lib build/release/compat/lib [--reps 3]
      [--page-mb 20] [--gcbench-depth 18] [--out papers/libgc.md]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


GNU_TIME = "/usr/bin/time"  # Debian package "time"


def run(cmd, env, cwd):
    """Wall and CPU from wait4. Peak RSS from GNU time when it is installed:
    wait4's ru_maxrss of a child forked from this Python process starts at
    the parent's resident size (Linux keeps the larger of the pre-exec and
    post-exec high-water marks), which exceeds a small program's own peak."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        argv = ([GNU_TIME, "-f", "%M", "-o", rss.name] + cmd) if os.path.exists(GNU_TIME) else cmd
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        output = out.read()
        rss_kb = usage.ru_maxrss
        if argv is not cmd:
            text = rss.read().strip().splitlines()
            rss_kb = int(text[-1]) if text and text[-1].isdigit() else rss_kb
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed:\n{output[-2000:].decode(errors='replace')}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": rss_kb / 1024.0}, output


W3M_ARGS = ["-dump", "-T", "text/html", "-cols", "100", "-O", "UTF-8"]


def measure(lib, work, plan, log=print):
    """Runs every (name, page MB or GCBench depth, reps) of `plan` on both
    libraries, interleaved, and returns one record per run. `plan` holds
    ("w3m", page_mb, reps) and ("gcbench", depth, reps) entries."""
    lib = os.path.abspath(lib)
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    gcbench = os.path.join(work, "gcbench")
    if not os.path.exists(gcbench):
        subprocess.run(["cc", "-O2", os.path.join(HERE, "gcbench.c"), "-o", gcbench, "-lgc"], check=True)
    records = []
    for kind, size, reps in plan:
        if kind == "w3m":
            page = os.path.join(work, f"page-{size:g}.html")
            subprocess.run([sys.executable, os.path.join(ROOT, "compat", "tests", "make_page.py"),
                            "--bytes", str(int(size * 1024 * 1024)), page], check=True)
            name = f"w3m -dump, {size:g} MB page"
            cmd = ["w3m"] + W3M_ARGS + [page]
            base_env = {"HOME": home, "LANG": "C.UTF-8", "TERM": "dumb", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            key = lambda o: o  # noqa: E731
        else:
            name = f"GCBench (C, depth {size})"
            cmd = [gcbench, str(size)]
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
            key = lambda o: o.split(b",")[0]  # noqa: E731  the checksum; collection counts differ
        outputs = {}
        for rep in range(1, reps + 1):
            for which in ("boehm", "handoff"):
                env = dict(base_env)
                env.pop("LD_LIBRARY_PATH", None)
                if which == "handoff":
                    env["LD_LIBRARY_PATH"] = lib
                r, out = run(cmd, env, work)
                outputs.setdefault(which, key(out))
                records.append({"workload": name, "kind": kind, "size": size, "library": which, "rep": rep,
                                "wall_s": r["wall"], "cpu_s": r["cpu"], "rss_mb": r["rss_mb"],
                                "output_matches": key(out) == outputs.get("boehm", key(out))})
                log(f"{name} [{which} {rep}/{reps}]: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                    f"{r['rss_mb']:.0f} MB peak RSS")
    return records


def medians(records):
    """{workload: {library: {wall_s, cpu_s, rss_mb, runs}}} in first-seen order."""
    table = {}
    for r in records:
        table.setdefault(r["workload"], {}).setdefault(r["library"], []).append(r)
    return {w: {lib: {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "cpu_s", "rss_mb")} | {"runs": len(rs)}
                for lib, rs in libs.items()} for w, libs in table.items()}


def markdown_table(records):
    lines = ["| workload | runs | Boehm wall s | handoff wall s | ratio | Boehm CPU s | handoff CPU s | ratio "
             "| Boehm peak RSS MB | handoff peak RSS MB | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, med in medians(records).items():
        b, h = med["boehm"], med["handoff"]
        lines.append(f"| {name} | {h['runs']} | {b['wall_s']:.2f} | {h['wall_s']:.2f} | {h['wall_s'] / b['wall_s']:.2f}x "
                     f"| {b['cpu_s']:.2f} | {h['cpu_s']:.2f} | {h['cpu_s'] / b['cpu_s']:.2f}x "
                     f"| {b['rss_mb']:.0f} | {h['rss_mb']:.0f} | {h['rss_mb'] / b['rss_mb']:.2f}x |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", required=True, help="directory holding handoff's libgc.so.1")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--page-mb", type=float, default=20)
    parser.add_argument("--gcbench-depth", type=int, default=18)
    parser.add_argument("--out", help="write a Markdown report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        records = measure(args.lib, work, [("w3m", args.page_mb, args.reps),
                                           ("gcbench", args.gcbench_depth, args.reps)])
    if not all(r["output_matches"] for r in records):
        sys.exit("compare.py: the outputs of the two libraries differ")
    table = "\n".join(markdown_table(records))
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("# Debian's libgc vs handoff's libgc: same programs, same inputs\n\n"
                    "Generated by `python3 bench/libgc/compare.py --lib build/release/compat/lib "
                    f"--reps {args.reps} --page-mb {args.page_mb:g} --gcbench-depth {args.gcbench_depth}`. "
                    f"Medians of {args.reps} interleaved runs each; outputs identical. "
                    f"Machine: {os.cpu_count()} CPUs.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
