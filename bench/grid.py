"""Interleaved measurements: the rows of each case timed alternately, medians to JSON.

pytest-benchmark times a group's rows one after another, so on a machine whose
speed drifts (this shared VM has slow phases of seconds) a ratio of two rows
can compare two different machine states. This script times every row of a
case in turn, A B C D B C D A ..., for several rounds and keeps each row's
median: the report's ratios come from here. Before timing, every row is
checked against fastnn.reference (which also warms it up), exactly as under
pytest-benchmark; both front ends share ``_harness`` and ``_impls``.

Usage, from the repository root::

    python bench/grid.py                            # grid + act -> bench/results/grid.json
    python bench/grid.py --groups seeds,classify    # other groups (see _groups.GROUPS)
    python bench/grid.py -k b1_ --seconds 1         # only cases whose name contains b1_
    python bench/grid.py --calibrate                # measure epochs / lr for _groups.GRID

One BLAS thread for every row (OPENBLAS_NUM_THREADS etc. default to 1, and
threadpoolctl limits what is loaded; torch.set_num_threads(1); XLA single-threaded).
Rounds per case: as many as fill ``--seconds`` (default 4) of the case's
rows together, within [--min-rounds, --max-rounds] (3, 30). The whole grid
takes about 5 minutes here.
"""

import os

for _var, _value in (("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"),
                     ("MKL_NUM_THREADS", "1"),
                     ("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")):
    os.environ.setdefault(_var, _value)  # before NumPy loads its BLAS: one thread per row

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import _groups as G  # noqa: E402
import _harness as H  # noqa: E402
from _impls import IMPLS, available  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
KIND = "fastnn-interleaved"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def prepare_rows(case, oracles, skip=()):
    """Verified, warm rows of a case, and {label: record} for rows that could not run."""
    rows, missing = [], {}
    for label, impl_name, build in case.rows:
        if impl_name in skip or not available(impl_name):
            missing[label] = {"impl": impl_name, "missing": "skipped" if impl_name in skip
                              else "not installed"}
            continue
        problem = build()
        try:
            rows.append(H.prepare(label, IMPLS[impl_name], problem, oracles))
        except Exception as exc:  # recorded and reported as a failure, never hidden
            missing[label] = {"impl": impl_name, "error": f"{type(exc).__name__}: {exc}"[:2000],
                              "info": problem.describe()}
            log(f"  {label}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
    return rows, missing


def run_case(case, oracles, args):
    """Measure one case interleaved; its JSON record."""
    t0 = time.perf_counter()
    rows, out = prepare_rows(case, oracles, args.skip)
    rounds = 0
    if rows:
        rounds = H.rounds_for(H.round_seconds(rows), args.seconds,
                              args.min_rounds, args.max_rounds)
        times = H.interleave(rows, rounds)
        for r in rows:
            out[r.label] = dict(impl=r.impl.name, verified=r.verified,
                                info=r.impl.problem.describe(), **H.summarize(times[r.label]))
    log(f"{case.name}: {rounds} rounds, {time.perf_counter() - t0:.1f} s  "
        + ", ".join(f"{k} {v['median'] * 1e3:.3g} ms" for k, v in out.items() if "median" in v))
    return {"group": case.group, "name": case.name, "info": case.info, "rounds": rounds,
            "rows": {label: out[label] for label, _, _ in case.rows if label in out}}


def select(groups, pattern):
    return [c for c in G.cases(groups) if not pattern or any(p in c.name for p in pattern)]


def measure(args):
    H.one_blas_thread()
    cases = select(args.groups, args.k)
    log(f"{len(cases)} cases: {', '.join(args.groups)}")
    oracles = H.Oracles()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    records = [run_case(c, oracles, args) for c in cases]
    return {"kind": KIND, "version": 1, "datetime": started,
            "command": "python bench/grid.py " + " ".join(args.argv),
            "machine": H.machine_info(),
            "settings": {"seconds": args.seconds, "min_rounds": args.min_rounds,
                         "max_rounds": args.max_rounds, "skip": list(args.skip)},
            "cases": {r["name"]: r for r in records}}


# ---------------------------------------------------------------- calibration
LR_CANDIDATES = (0.1, 0.05, 0.02, 0.01)
TARGET_SECONDS = 0.1  # the numpy row's aim within 20-500 ms: short runs, many rounds


def steady_fall(hist):
    """The MSE fell, never rose by more than 5% over an epoch's start, and stayed finite."""
    hist = np.asarray(hist)
    return bool(np.isfinite(hist).all() and hist[-1] < 0.9 * hist[0]
                and (np.diff(hist) <= 0.05 * hist[0]).all())


def calibrate(point):
    """Suggested epochs (numpy row ~TARGET_SECONDS) and the largest lr that falls steadily."""
    import dataclasses
    per_epoch = H.run_oracle(G.grid_problem(dataclasses.replace(point, epochs=1)))[1]
    epochs = max(1, round(TARGET_SECONDS / per_epoch))
    trial = max(epochs, 3)  # a fall needs a few epochs to show
    lr_ok = None
    for lr in LR_CANDIDATES:
        try:
            trial_point = dataclasses.replace(point, lr=lr, epochs=trial)
            hist = H.run_oracle(G.grid_problem(trial_point))[0][0]
        except Exception:  # DivergenceError: too large
            continue
        if steady_fall(hist):
            lr_ok = lr
            break
    return per_epoch, epochs, lr_ok


def check_agreement(point):
    """fastnn against the reference on the table's epochs: the largest relative error."""
    import fastnn
    p = G.grid_problem(point)
    (ref_hist, ref_ws, _), _ = H.run_oracle(p)
    ws, bs = p.fresh()
    hist = fastnn.train(p.x, p.y, ws, bs, **p.train_kwargs())
    err = max(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))
              for a, b in zip(ws, ref_ws))
    return err, float(np.max(np.abs(np.sqrt(hist) - np.sqrt(ref_hist)) / np.sqrt(ref_hist[0])))


def run_calibration(pattern):
    H.one_blas_thread()
    print(f"{'point':44s} {'epoch':>9s} {'epochs':>6s} {'table':>5s} {'numpy':>8s} "
          f"{'lr':>5s} {'table':>5s} {'w err':>8s} {'h err':>8s}")
    for p in G.GRID:
        if pattern and not any(k in p.name for k in pattern):
            continue
        per_epoch, epochs, lr = calibrate(p)
        werr, herr = check_agreement(p)
        numpy_s = per_epoch * p.epochs
        flag = "" if 0.02 <= numpy_s <= 0.5 else "  <- numpy row outside 20-500 ms"
        print(f"{p.name:44s} {per_epoch * 1e3:7.2f}ms {epochs:6d} {p.epochs:5d} "
              f"{numpy_s * 1e3:6.0f}ms {lr or 0:5g} {p.lr:5g} {werr:8.1e} {herr:8.1e}{flag}",
              flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default="grid,act", help="comma-separated: " + ",".join(G.GROUPS))
    ap.add_argument("-k", action="append", help="only cases whose name contains this (repeatable)")
    ap.add_argument("--out", default=None, help="JSON file (default bench/results/<groups>.json)")
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per case")
    ap.add_argument("--min-rounds", type=int, default=3)
    ap.add_argument("--max-rounds", type=int, default=30)
    ap.add_argument("--skip", default="", help="comma-separated implementations to leave out")
    ap.add_argument("--calibrate", action="store_true", help="print epochs/lr suggestions")
    args = ap.parse_args(argv)
    args.argv = list(argv)
    if args.calibrate:
        run_calibration(args.k)
        return 0
    args.groups = [g for g in args.groups.split(",") if g]
    args.skip = tuple(s for s in args.skip.split(",") if s)
    data = measure(args)
    out = args.out or os.path.join(RESULTS, "-".join(args.groups) + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
    log(f"wrote {out}")
    failed = [f"{c['name']} {label}" for c in data["cases"].values()
              for label, r in c["rows"].items() if "error" in r]
    if failed:
        log("rows that failed verification: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
