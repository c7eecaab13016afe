#!/usr/bin/env python3
"""Checks of the evaluation's statistics (CTest bench.report_stats).

The sweeper on/off verdict of papers/evaluation.md rests on three pieces
of bench/: the per-pair ratios (eval_report.sweeper_comparison, which joins
the macro section's pairs and the sweeper section's), the interval of their
median (churn_report.median_interval) and the order in which
run_eval.run_sweeper_pairs runs the two variants. Each is checked here
against values worked out by hand. Standard library only.
"""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import churn_report  # noqa: E402
import eval_report  # noqa: E402
import run_eval  # noqa: E402


def record(section, rep, backend, wall, workload="gcbench", threads=1):
    return {"section": section, "rep": rep, "warmup": False, "backend": backend, "workload": workload,
            "threads": threads, "returncode": 0, "result": {"completed": True, "wall_s": wall}}


class MedianInterval(unittest.TestCase):
    def test_order_statistics(self):
        # P(Binomial(n, 1/2) <= k - 1) <= 0.025: k = 1 at n = 6, 2 at 10, 6 at 20.
        self.assertIsNone(churn_report.median_interval([1, 2, 3, 4, 5]))
        self.assertEqual(churn_report.median_interval(list(range(1, 7))), (1, 6))
        self.assertEqual(churn_report.median_interval(list(range(1, 11))), (2, 9))
        self.assertEqual(churn_report.median_interval(list(range(20, 0, -1))), (6, 15))

    def test_settled(self):
        self.assertEqual(churn_report._settled((0.95, 1.02), 1.03), "within the limit")
        self.assertEqual(churn_report._settled((1.04, 1.20), 1.03), "over the limit")
        self.assertEqual(churn_report._settled((0.90, 1.10), 1.03), "not settled")
        self.assertEqual(churn_report._settled(None, 1.03), "too few pairs")


class SweeperComparison(unittest.TestCase):
    def test_joins_macro_and_sweeper_pairs_by_repetition(self):
        runs = [record("macro", 1, "handoff", 2.0), record("macro", 1, "handoff-nosweeper", 1.0),
                record("macro", 2, "handoff", 3.0), record("macro", 2, "handoff-nosweeper", 3.0),
                # rep 3's off run failed: that repetition makes no pair
                record("macro", 3, "handoff", 9.0),
                record("sweeper", 1, "handoff", 1.0), record("sweeper", 1, "handoff-nosweeper", 4.0)]
        data = {"runs": runs}
        cells = eval_report.group(runs, "macro")
        [(name, on, off, ratios)] = eval_report.sweeper_comparison(data, cells)
        self.assertEqual(name, "gcbench (1 thread)")
        self.assertEqual(sorted(ratios), [0.25, 1.0, 2.0])
        self.assertEqual(on, 3.0)   # median of the macro section's on runs only
        self.assertEqual(off, 2.0)


class SweeperPairOrder(unittest.TestCase):
    def test_order_alternates_from_pair_to_pair(self):
        calls = []
        saved = run_eval.run_workload

        def fake(build_dir, backend, workload, threads, extra, rec):
            calls.append((rec["rep"], workload, backend))
            rec.update({"returncode": 0, "argv": []})
            return rec
        run_eval.run_workload = fake
        try:
            plan = run_eval.Plan(quick=True, reps=1, sweeper_pairs=3)
            runs = []
            run_eval.run_sweeper_pairs(plan, Path("."), runs)
        finally:
            run_eval.run_workload = saved
        self.assertEqual(len(runs), 3 * len(plan.macro) * 2)
        firsts = {rep: [b for r, w, b in calls if r == rep][0] for rep in (1, 2, 3)}
        self.assertEqual(firsts, {1: "handoff", 2: "handoff-nosweeper", 3: "handoff"})
        for rep in (1, 2, 3):
            backends = [b for r, w, b in calls if r == rep]
            self.assertEqual(backends.count("handoff"), len(plan.macro))
            self.assertEqual(backends.count("handoff-nosweeper"), len(plan.macro))


if __name__ == "__main__":
    unittest.main()
