"""The multi-core goals of issue 12, checked against the summary of a ``python -m benchmarks`` run.

The per-case ``goal`` column of the summary table holds the older, looser goals of issue 8
(``benchmarks.cases``). Issue 12 asks, on the same machine, ours / PyTorch in separate
processes:

- at one thread and at two: every training step at most ``TRAIN_RATIO`` (1.0), every
  inference at most ``INFER_RATIO`` (1.2);
- from one thread to two: our training step at least ``SPEEDUP`` (1.7x) faster on the
  ``SPEEDUP_CASES`` (the two Conv3D cases).

``verdicts(summary)`` turns the rows of ``run.summary_rows`` into one verdict per goal and
case; ``goals_table`` prints them as one row per case (the value, then ``ok`` or ``MISSED``),
with PyTorch's own speed-up beside ours for comparison. A goal whose figures the run did not
measure (a case or a thread count left out, PyTorch not installed) gets no verdict.
"""
TRAIN_RATIO = 1.0
INFER_RATIO = 1.2
SPEEDUP = 1.7
SPEEDUP_CASES = ("conv3d_32_b8", "conv3d_64_b4")


def verdicts(summary):
    """``[{"goal", "case", "threads", "value", "bound", "met"}]`` for the rows of our engine in
    ``summary`` (``run.summary_rows``): the ratios at each thread count (``goal`` ``"train"``
    or ``"infer"``, an upper bound), and the speed-up from one thread to two of the
    ``SPEEDUP_CASES`` (``goal`` ``"speed-up"``, ``threads`` ``2``, a lower bound)."""
    ours = {(s["case"], s["threads"]): s for s in summary if s["engine"] == "ours"}
    out = []
    for (case, threads), s in ours.items():
        if threads not in (1, 2):
            continue
        out.append(_verdict("train", case, threads, s["train_ratio"], TRAIN_RATIO, upper=True))
        out.append(_verdict("infer", case, threads, s["infer_ratio"], INFER_RATIO, upper=True))
    for case in SPEEDUP_CASES:
        one, two = ours.get((case, 1)), ours.get((case, 2))
        if one and two:
            out.append(_verdict("speed-up", case, 2, one["train_ours"] / two["train_ours"], SPEEDUP, upper=False))
    return out


def _verdict(goal, case, threads, value, bound, upper):
    return {"goal": goal, "case": case, "threads": threads, "value": value, "bound": bound,
            "met": value <= bound if upper else value >= bound}


def speedups(summary, column):
    """``{case: training speed-up from one thread to two}`` of the engine whose times are in
    ``column`` (``"train_ours"``, ``"train_torch"``) of our rows, where both were run."""
    times = {(s["case"], s["threads"]): s[column] for s in summary if s["engine"] == "ours"}
    return {case: times[(case, 1)] / times[(case, 2)] for case, t in times if t == 1 and (case, 2) in times}


GOALS_COLUMNS = ("case", f"train 1 thr (<= {TRAIN_RATIO:.1f})", f"infer 1 thr (<= {INFER_RATIO:.1f})",
                 f"train 2 thr (<= {TRAIN_RATIO:.1f})", f"infer 2 thr (<= {INFER_RATIO:.1f})",
                 f"our speed-up 1->2 (>= {SPEEDUP:.1f} on Conv3D)", "PyTorch's speed-up 1->2")


def goals_table(summary, markdown=False):
    """``(title, table)``: the title counts the goals met; the table has one row per case with
    each verdict as ``value ok`` / ``value MISSED`` (``-`` where there is none). ``("", "")``
    when the run gives no verdict (PyTorch not run)."""
    from .run import format_table  # (run imports this module)

    found = verdicts(summary)
    if not found:
        return "", ""
    cells = {}
    for v in found:
        slot = "speed-up" if v["goal"] == "speed-up" else (v["goal"], v["threads"])
        cells[(v["case"], slot)] = f"{v['value']:.2f} {'ok' if v['met'] else 'MISSED'}"
    ours, theirs = speedups(summary, "train_ours"), speedups(summary, "train_torch")
    for case, value in ours.items():  # (no goal outside SPEEDUP_CASES: the value alone)
        cells.setdefault((case, "speed-up"), f"{value:.2f}")
    cases = list(dict.fromkeys(v["case"] for v in found))
    rows = [[case, *(cells.get((case, slot), "-") for slot in (("train", 1), ("infer", 1), ("train", 2), ("infer", 2),
                                                               "speed-up")),
             f"{theirs[case]:.2f}" if case in theirs else "-"] for case in cases]
    missed = [v for v in found if not v["met"]]
    title = (f"multi-core goals (issue 12): {len(found) - len(missed)} of {len(found)} met"
             + (f"; missed: {', '.join(_name(v) for v in missed)}" if missed else ""))
    return title, format_table(GOALS_COLUMNS, rows, markdown)


def _name(v):
    if v["goal"] == "speed-up":
        return f"{v['case']} speed-up {v['value']:.2f}"
    return f"{v['case']} {v['goal']} at {v['threads']} thread{'s' if v['threads'] > 1 else ''} {v['value']:.2f}"
