"""The churn section of papers/evaluation.md (called by eval_report.py).

Churn is fast_path of bench_micro_<family> (bench/micro_alloc.cpp):
allocate one object of S bytes, write it, drop it (malloc family: free);
for handoff the collections that reclaim the objects are inside the time.
Targets, checked against the medians of the same run:

  - handoff at every size (16, 32, 64, 128, 256, 1024 B) and 1 and 2
    threads: time per object <= 1.0x mimalloc's;
  - handoff's 2-thread throughput >= 1.8x its 1-thread throughput;
  - concurrent sweeper on vs off (handoff vs handoff-nosweeper): time
    within 1.03x on every macro workload of the evaluation (the median of
    the per-pair on/off ratios, each pair run in one time window: the
    macro section's repetitions and the sweeper section's extra pairs),
    and on the
    churn points (the off runs are handoff's churn points again with
    HANDOFF_SWEEPER=0, bench/run_eval.py).

Standard library only.
"""

import math
import statistics

CHURN_SIZES = [16, 32, 64, 128, 256, 1024]
CHURN_THREADS = [1, 2]
MIMALLOC_LIMIT = 1.0
SCALING_LIMIT = 1.8
SWEEPER_LIMIT = 1.03


def _median(values):
    return statistics.median(values) if values else None


def _mops(samples, backend, size, threads):
    """Million objects per second, all threads together (samples hold ns per object)."""
    ns = _median(samples.get(("fast_path", backend, size, threads), []))
    return 1e3 / ns if ns else None


def median_interval(values, confidence=0.95):
    """A distribution-free confidence interval for the median: the k-th
    smallest and k-th largest of n values, k the largest with
    P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2. None below 6 values
    (no k exists at 95%)."""
    n = len(values)
    tail = (1.0 - confidence) / 2.0
    k, below = 0, 0.0
    while True:
        below_next = below + math.comb(n, k) / 2.0 ** n  # P(X <= k) = P(X < k + 1)
        if below_next > tail:
            break
        k, below = k + 1, below_next
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def _settled(interval, limit):
    if interval is None:
        return "too few pairs"
    lo, hi = interval
    if hi <= limit:
        return "within the limit"
    if lo > limit:
        return "over the limit"
    return "not settled"


def _verdict(ok):
    return "met" if ok else "MISSED"


def churn_table(samples, fmt):
    """Rows per size: M obj/s at 1 and 2 threads for handoff, mimalloc and
    handoff with the sweeper off; ratios; and the verdicts."""
    lines = ["| size B | threads | handoff M obj/s | mimalloc M obj/s | handoff time / mimalloc "
             "| handoff 2t / 1t | sweeper off M obj/s | sweeper on time / off |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = []
    for s in CHURN_SIZES:
        for t in CHURN_THREADS:
            h = _mops(samples, "handoff", s, t)
            m = _mops(samples, "mimalloc", s, t)
            off = _mops(samples, "handoff-nosweeper", s, t)
            if h is None:
                continue
            vs_mim = m / h if m else None  # time ratio = throughput ratio inverted
            if vs_mim is not None:
                verdicts.append((f"churn <= {MIMALLOC_LIMIT}x mimalloc", f"{s} B, {t} thread(s)", vs_mim,
                                 vs_mim <= MIMALLOC_LIMIT))
            scaling = None
            if t == 2:
                one = _mops(samples, "handoff", s, 1)
                scaling = h / one if one else None
                if scaling is not None:
                    verdicts.append((f"churn 2-thread / 1-thread >= {SCALING_LIMIT}", f"{s} B", scaling,
                                     scaling >= SCALING_LIMIT))
            on_off = off / h if off else None
            if on_off is not None:
                verdicts.append((f"churn, sweeper on / off <= {SWEEPER_LIMIT}", f"{s} B, {t} thread(s)", on_off,
                                 on_off <= SWEEPER_LIMIT))
            lines.append(f"| {s} | {t} | {fmt(h, 1)} | {fmt(m, 1)} | {fmt(vs_mim)} | {fmt(scaling)} "
                         f"| {fmt(off, 1)} | {fmt(on_off)} |")
    return lines, verdicts


def render(samples, sweeper_pairs, fmt):
    """samples: eval_report.micro_samples(); sweeper_pairs: [(workload label,
    handoff median wall s, handoff-nosweeper median wall s, [per-repetition
    on/off wall ratios])] from the macro section."""
    table, verdicts = churn_table(samples, fmt)
    if not verdicts and not sweeper_pairs:
        return []
    lines = ["## Churn and the concurrent sweeper", "",
             "Churn = `fast_path` of `bench_micro_<family>`: allocate one object of S bytes, write it, drop it "
             "(mimalloc: `free`), medians over the repetitions; M obj/s counts all threads together. "
             "*time / mimalloc* below 1.0 is faster than mimalloc. *Sweeper off* is handoff's churn again with "
             "`HANDOFF_SWEEPER=0`, run right after handoff's in each repetition.", ""]
    if len(table) > 2:
        lines += table + [""]
    if sweeper_pairs:
        lines += ["Sweeper on vs off on the macro workloads (handoff vs handoff-nosweeper, wall time). "
                  "*Paired* divides each pair's on run by its off run, the two run back to back in one time "
                  "window: the macro section's repetitions (round robin over all backends) and the sweeper "
                  "section's extra pairs (the two variants only, which runs first alternating from pair to "
                  "pair). The verdict uses the median of those ratios; beside it the range and a "
                  "distribution-free 95% interval of the median (order statistics). *Settled* says whether "
                  "that interval lies wholly within the limit, wholly over it, or straddles it. "
                  "*Ratio of medians* (macro section only) is the older summary, kept beside it.", "",
                  "| workload | sweeper on s | sweeper off s | ratio of medians | paired on / off (median) "
                  "| 95% interval | range | pairs | settled |", "|---|---:|---:|---:|---:|---|---|---:|---|"]
        for name, on, off, paired in sweeper_pairs:
            of_medians = on / off if on and off else None
            ratio = _median(paired) if paired else of_medians
            if ratio is not None:
                verdicts.append((f"sweeper on / off <= {SWEEPER_LIMIT}", name, ratio, ratio <= SWEEPER_LIMIT))
            spread = f"[{fmt(min(paired))}, {fmt(max(paired))}]" if paired else "-"
            interval = median_interval(paired) if paired else None
            shown = f"[{fmt(interval[0])}, {fmt(interval[1])}]" if interval else "-"
            lines.append(f"| {name} | {fmt(on)} | {fmt(off)} | {fmt(of_medians)} | {fmt(ratio)} | {shown} "
                         f"| {spread} | {len(paired)} | {_settled(interval, SWEEPER_LIMIT) if paired else '-'} |")
        lines.append("")
    lines += ["| target | point | ratio | verdict |", "|---|---|---:|---|"]
    for target, point, ratio, ok in sorted(verdicts, key=lambda v: v[0]):  # stable: sizes stay in order
        lines.append(f"| {target} | {point} | {fmt(ratio)} | {_verdict(ok)} |")
    met = sum(1 for v in verdicts if v[3])
    lines += ["", f"{met} of {len(verdicts)} churn and sweeper checks met in this run.", ""]
    return lines
