"""A/B figures of fastnn's special paths and tricks against their generic fallback.

    python bench/ab.py [--rounds 9]      # writes docs/ab.md (about 3 minutes here)

Each figure trains the same network the same way twice in one process, once as
fastnn does and once with the special path switched off (the driver's choice
monkeypatched), in turns (A B A B ...), fresh copies of the initial weights each
round; the table gives both medians and their ratio. The micro-benchmarks time one
compiled operation both ways. docs/design.md explains each path.
"""

import argparse
import contextlib
import datetime
import os
import platform
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn import _state  # noqa: E402
from fastnn._workloads import build  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def patched(obj, name, value):
    saved = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, saved)


class _Unfused(fastnn.optim._PlainSGD):
    """lr= as a gradient buffer and an update pass, instead of the fused step."""
    fused = False


def seed_case(name, dtype=np.float64, epochs=None):
    p = build(name, dtype)
    kw = p.train_kwargs(epochs)

    def run(lr_optimizer=None):
        w, b = p.copy_params()
        args = dict(kw)
        if lr_optimizer is not None:
            args.pop("lr")
            args["optimizer"] = lr_optimizer(kw["lr"])
        fastnn.train(p.x, p.y, w, b, **args)
    return f"{name} ({np.dtype(dtype).name})", run


def grid_case(widths, batch, rows, activation, epochs, shuffle=False, lr=0.05):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((rows, widths[0])), rng.standard_normal((rows, widths[-1]))
    w0 = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths, widths[1:])]
    name = f"{'-'.join(map(str, widths))}, batch {batch or 'full'}, {rows} rows, {activation}"

    def run(lr_optimizer=None):
        w = [a.copy() for a in w0]
        opt = dict(lr=lr) if lr_optimizer is None else dict(optimizer=lr_optimizer(lr))
        fastnn.train(x, y, w, activation=activation, loss="mse", epochs=epochs,
                     batch_size=batch, shuffle=shuffle, seed=0, **opt)
    return name, run


def off_sample():
    return patched(_state.K.sample, "SMALL", 0)


def off_gram():
    return patched(_state.KG, "gram_pays", lambda *args: False)


def off_small_gemm():
    return patched(_state._blaslib, "SMALL_GEMM_MACS", 0)


def loops_only():
    return patched(_state.K, "blas_pays", lambda *args: False)


def blas_only():
    return patched(_state.K, "blas_pays", lambda *args: True)


FIGURES = [  # (path, case, how to switch it off, B's label)
    ("one-row path", seed_case("mlp3_sgd"), off_sample, "generic path"),
    ("one-row path", grid_case((4, 4, 4, 1), 1, 256, "tanh", 20), off_sample, "generic path"),
    ("one-row path", grid_case((8, 8, 1), 1, 2048, "relu", 3), off_sample, "generic path"),
    ("Gram path", seed_case("relu2"), off_gram, "generic path"),
    ("Gram path", seed_case("sigmoid2", epochs=50), off_gram, "generic path"),
    ("Gram path", grid_case((1024, 64, 1), None, 256, "relu", 40), off_gram, "generic path"),
    ("fused SGD step", seed_case("mlp3_gd"), None, "gradient + update pass"),
    ("fused SGD step", grid_case((64, 64, 64), 128, 4096, "relu", 3), None,
     "gradient + update pass"),
    ("small-layer loops", seed_case("mlp3_gd"), blas_only, "BLAS for every layer"),
    ("small-layer loops", grid_case((16, 16, 1), None, 4096, "relu", 20), blas_only,
     "BLAS for every layer"),
    ("small-layer loops", grid_case((64, 16, 16, 1), 256, 4096, "relu", 3), blas_only,
     "BLAS for every layer"),
    ("BLAS above the threshold", grid_case((16, 64, 64, 64, 1), 32, 4096, "relu", 3),
     loops_only, "loops for every layer"),
    ("BLAS above the threshold", grid_case((64, 64, 64), 256, 4096, "relu", 3), loops_only,
     "loops for every layer"),
    ("BLAS above the threshold", grid_case((16, 64, 64), None, 4096, "sigmoid", 20),
     loops_only, "loops for every layer"),
    ("BLAS above the threshold", grid_case((256, 256, 256), 32, 4096, "relu", 1, lr=0.005),
     loops_only, "loops for every layer"),
    ("chunks for BLAS's small kernels", grid_case((64, 64, 64), 256, 4096, "relu", 3),
     off_small_gemm, "whole batches"),
    ("chunks for BLAS's small kernels", grid_case((16, 64, 64), None, 4096, "sigmoid", 20),
     off_small_gemm, "whole batches"),
    ("chunks for BLAS's small kernels", grid_case((176, 176, 176), 512, 4096, "relu", 1,
                                                  lr=0.005), off_small_gemm, "whole batches"),
]

SWEEP_WIDTHS = (4, 16, 64, 128)
SWEEP_ROWS = (1, 8, 32, 128, 512)


def time_pair(run_a, run_b, rounds):
    run_a(), run_b()  # compile both before timing
    a, b = [], []
    for _ in range(rounds):
        for fn, out in ((run_a, a), (run_b, b)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return float(np.median(a)), float(np.median(b))


def figure(path, case, switch, rounds):
    name, run = case
    if switch is None:  # the fused step: B trains through the optimizer interface
        return time_pair(run, lambda: run(_Unfused), rounds)

    def run_b():
        with switch():
            run()
    return time_pair(run, run_b, rounds)


def micro_benchmarks(repeat):
    """(operation, fastnn's way, the plain way, their times per element or call)."""
    from fastnn.kernels import _numba_private as P
    from fastnn.kernels.vmath import exp64, tanh64
    rows = []
    x = np.random.default_rng(0).standard_normal(1 << 16)
    out = np.empty_like(x)
    for name, mine, libm in (("exp", exp64, np.exp), ("tanh", tanh64, np.tanh)):
        @numba.njit(fastmath={"contract"}, error_model="numpy")
        def vec(a, o):
            for i in range(a.shape[0]):
                o[i] = mine(a[i])

        @numba.njit(error_model="numpy")
        def call(a, o):
            for i in range(a.shape[0]):
                o[i] = libm(a[i])
        rows.append((f"{name} over an array", "vmath (vectorized)", "np." + name,
                     *_per(vec, call, (x, out), x.size, repeat), "ns per element"))

    @numba.njit(error_model="numpy")
    def view_bare(buf, n):
        s = 0.0
        for r in range(n):
            s += numba.carray(P.pointer(buf, r % 7), (4, 8))[1, 2]
        return s

    @numba.njit(error_model="numpy")
    def view_reshape(buf, n):
        s = 0.0
        for r in range(n):
            s += buf[r % 7:r % 7 + 32].reshape((4, 8))[1, 2]
        return s
    buf = np.ones(64)
    rows.append(("2-D view of a flat buffer", "carray on a pointer", "slice + reshape",
                 *_per(view_bare, view_reshape, (buf, 1 << 16), 1 << 16, repeat), "ns per view"))
    return rows


def layer_sweep(repeat):
    """BLAS time / loops time of one layer's forward and backward, per (n_in, n_out) and
    batch rows m: the measurements behind kernels.blas_pays."""
    from fastnn.kernels import dense as D
    from fastnn.kernels._numba_private import bare

    @numba.njit(error_model="numpy")
    def layer(n, a_out, a_in, w, b, d_in, d_out, blas):
        a_out, a_in, w, b, d_in, d_out = (bare(a_out), bare(a_in), bare(w), bare(b),
                                          bare(d_in), bare(d_out))
        for _ in range(n):
            D.dense_forward(a_out, a_in, w, b, 1, blas)
            D.dense_backward(d_in, w, b, w, d_out, a_in, 1, -1e-12, 1.0, blas)
    rng = np.random.default_rng(0)
    rows = []
    for n_in in SWEEP_WIDTHS:
        for n_out in SWEEP_WIDTHS:
            ratios = []
            for m in SWEEP_ROWS:
                a_in, d_out = rng.standard_normal((n_in, m)), rng.standard_normal((n_out, m))
                w, b = rng.standard_normal((n_in, n_out)) / 8, np.zeros(n_out)
                args = (np.empty((n_out, m)), a_in, w, b, np.empty((n_in, m)), d_out)
                reps = max(1, int(2e6 / (n_in * n_out * m + 2000)))
                loops, blas = _per(lambda: layer(reps, *args, False),
                                   lambda: layer(reps, *args, True), (), reps, repeat)
                ratios.append(blas / loops)
            rows.append((n_in, n_out, ratios))
    return rows


def _per(fast, plain, args, count, repeat):
    fast(*args), plain(*args)
    best = []
    for fn in (fast, plain):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t0)
        best.append(min(times) / count * 1e9)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "ab.md"))
    args = parser.parse_args(argv)
    lines = ["<!-- generated by `python bench/ab.py`; do not edit by hand -->", "",
             "# A/B figures", "",
             f"Run of {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"numba {numba.__version__}, numpy {np.__version__}, the BLAS's core "
             f"{_state._blaslib.CORE or 'unknown'}; one BLAS thread; "
             f"medians of {args.rounds} rounds in turns. Ratio > 1: the special path is "
             f"faster. See docs/design.md for what each path does.", "",
             "| path | network | with it | without it (B) | B | B / with it |",
             "|---|---|---:|---:|---|---:|"]
    for path, case, switch, label in FIGURES:
        a, b = figure(path, case, switch, args.rounds)
        lines.append(f"| {path} | {case[0]} | {_ms(a)} | {_ms(b)} | {label} | {b / a:.2f}x |")
        print(lines[-1], flush=True)
    lines += ["", "| operation | fastnn | plain | fastnn | plain | unit |",
              "|---|---|---|---:|---:|---|"]
    for op, mine, plain, t_mine, t_plain, unit in micro_benchmarks(args.rounds):
        lines.append(f"| {op} | {mine} | {plain} | {t_mine:.2f} | {t_plain:.2f} | {unit} |")
        print(lines[-1], flush=True)
    lines += ["", "BLAS time / loops time for one layer's forward and backward on m rows "
              "(> 1: the loops are faster; kernels.blas_pays follows this table):", "",
              "| n_in x n_out | " + " | ".join(f"m = {m}" for m in SWEEP_ROWS) + " |",
              "|---|" + "---:|" * len(SWEEP_ROWS)]
    for n_in, n_out, ratios in layer_sweep(args.rounds):
        cells = " | ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"| {n_in} x {n_out} | {cells} |")
        print(lines[-1], flush=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _ms(seconds):
    return f"{seconds * 1e3:.3g} ms"


if __name__ == "__main__":
    main()
