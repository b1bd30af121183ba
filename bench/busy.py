"""fastnn on a busy machine: quiet vs another process spinning on one core, default
settings vs FASTNN_THREADS=1 (issue 16, "steady on a busy machine").

Usage, from the repository root (about 2 minutes here)::

    python bench/busy.py                          # -> bench/results/busy.json
    python bench/busy.py --rounds 3 --no-verify   # quicker

Workloads: the four seed workloads (float64) and three grid points, one tiny,
one medium and one BLAS-sized (:data:`WORKLOADS`); only the fastnn row, each
checked against fastnn.reference once before timing (``--no-verify`` skips it).

Four configurations: {quiet, loaded} x {default, FASTNN_THREADS=1}. "loaded"
starts ``python -c "while True: pass"`` before and kills it after the
measurement; "default" is the environment this script was started with (it sets
no thread variable: OpenBLAS's and fastnn's own choices apply), the other adds
FASTNN_THREADS=1. Each measurement is a fresh worker process (``--worker``), so
the environment applies from the start; it loads the kernels with one untimed
call per workload, then times each workload back to back (at least 5 runs and
0.3 s) and reports medians. The configurations take turns, in a rotating
order, for ``--rounds`` rounds (5); the JSON keeps every round and the median.
Targets (report.py): loaded <= 2x quiet; default <= 1.1x FASTNN_THREADS=1.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

# (label, kind, key): seeds by workload name, grid points by their name in _groups.GRID
WORKLOADS = [
    ("relu2", "seed", "relu2"),
    ("sigmoid2", "seed", "sigmoid2"),
    ("mlp3_gd", "seed", "mlp3_gd"),
    ("mlp3_sgd", "seed", "mlp3_sgd"),
    ("grid tiny", "grid", "4-4-4-1_b1_n256_relu_shuf_f64"),
    ("grid medium", "grid", "16-64-64-64-1_b32_n4096_relu_shuf_f64"),
    ("grid BLAS-sized", "grid", "64-64-64_b256_n4096_relu_f64"),
]
CONFIGS = [("quiet", "default"), ("loaded", "default"), ("quiet", "threads1"),
           ("loaded", "threads1")]
MIN_RUNS, MIN_SECONDS = 5, 0.3


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def problem(kind, key):
    import _groups as G
    if kind == "seed":
        return G.seed_problem(key, "float64")
    return G.grid_problem(next(p for p in G.GRID if p.name == key))


# --------------------------------------------------------------------- worker
def worker(labels):
    """In a fresh process: time fastnn on each workload; print one JSON line."""
    from _impls import FastnnImpl
    from _harness import time_run
    impls = {label: FastnnImpl(problem(kind, key)) for label, kind, key in WORKLOADS
             if label in labels}
    for impl in impls.values():
        time_run(impl)  # loads (or compiles) the kernels: not timed
    out = {}
    for label, impl in impls.items():
        times, t0 = [], time.perf_counter()
        while len(times) < MIN_RUNS or time.perf_counter() - t0 < MIN_SECONDS:
            times.append(time_run(impl)[0])
        out[label] = {"median": statistics.median(times), "runs": len(times)}
    print(json.dumps(out))


# --------------------------------------------------------------------- parent
def spinner():
    """Another process spinning on one core."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(load, threads, labels):
    env = dict(os.environ)
    if threads == "threads1":
        env["FASTNN_THREADS"] = "1"
    spin = spinner() if load == "loaded" else None
    try:
        time.sleep(0.2 if spin else 0)  # let the spinner get going
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                               ",".join(labels)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=1800)
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({load}, {threads}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def verify(labels):
    """fastnn against fastnn.reference on each workload, once, in this process."""
    import _harness as H
    from _impls import FastnnImpl
    H.one_blas_thread()  # the reference's products on one thread; the workers keep the defaults
    oracles, out = H.Oracles(), {}
    for label, kind, key in WORKLOADS:
        if label in labels:
            p = problem(kind, key)
            out[label] = FastnnImpl(p.verification()).verify(oracles.get(p.verification())[0])
            log(f"verified {label}: {out[label]}")
    return out


def run(args):
    import _harness as H
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    labels = [w[0] for w in WORKLOADS if not args.k or any(k in w[0] for k in args.k)]
    verified = {} if args.no_verify else verify(labels)
    per_round = {f"{load}/{threads}": [] for load, threads in CONFIGS}
    load_avg = {c: [] for c in per_round}  # 1-minute load before each measurement: other users
    for r in range(args.rounds):
        order = CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]
        for load, threads in order:
            load_avg[f"{load}/{threads}"].append(os.getloadavg()[0])
            result = measure(load, threads, labels)
            per_round[f"{load}/{threads}"].append(result)
            log(f"round {r + 1} {load}/{threads}: " + ", ".join(
                f"{k} {v['median'] * 1e3:.3g} ms" for k, v in result.items()))
    workloads = {}
    for label, kind, key in WORKLOADS:
        if label not in labels:
            continue
        configs = {c: {"rounds": [rr[label]["median"] for rr in results]}
                   for c, results in per_round.items()}
        for c in configs.values():
            c["median"] = statistics.median(c["rounds"])
        workloads[label] = {"kind": kind, "key": key, "verified": verified.get(label),
                            "info": problem(kind, key).describe(), "configs": configs}
    return {"kind": "fastnn-busy", "version": 1,
            "datetime": started,
            "command": "python bench/busy.py " + " ".join(args.argv), "machine": H.machine_info(),
            "settings": {"rounds": args.rounds, "min_runs": MIN_RUNS, "min_seconds": MIN_SECONDS},
            "load_average_before": load_avg, "workloads": workloads}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1].split(","))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "busy.json"))
    ap.add_argument("-k", action="append", help="only workloads whose label contains this")
    ap.add_argument("--no-verify", action="store_true", help="skip the check against the reference")
    args = ap.parse_args(argv)
    args.argv = list(argv)
    data = run(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
