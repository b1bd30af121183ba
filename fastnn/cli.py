"""The ``fastnn`` command line: ``python -m fastnn demo`` (also the console script ``fastnn``).

``fastnn demo`` trains the four seed workloads (see ``fastnn._workloads``) once
with ``fastnn.train`` and once with the NumPy loop ``fastnn.reference.train``,
from the same initial point, and prints one table: the time of each, the
speedup, the final loss of each and the largest difference between the two
sets of trained weights.

Exit status: 0 on success, 1 when the demo cannot run (``--plot`` without
matplotlib, a file that cannot be written, training that diverged), 2 for a bad
command line, 130 on Ctrl-C.
"""

import argparse
import json
import os
import platform
import sys
import threading
import time

import numpy as np

from ._workloads import NAMES, WORKLOADS

PLOT_INSTALL = 'pip install "fastnn[plot]"'   # the optional extra; or: pip install matplotlib
PLOT_FORMATS = (".png", ".pdf", ".svg")
TIME_BUDGET = 0.5    # seconds: a side that trains faster than this is re-run ...
MAX_RUNS = 5         # ... up to this many times, and its best time is reported
NOTICE_AFTER = 1.0   # seconds of warm-up before saying that kernels are being compiled


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _png_path(text):
    if os.path.splitext(text)[1].lower() not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in {', '.join(PLOT_FORMATS)}, found {text!r}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name such as demo.png")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: no usage block, just what is wrong."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    from . import __version__
    parser = _Parser(
        prog="fastnn", description="fastnn: train small dense networks with compiled Numba loops.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    lines = [f"  {w.name:9s} {w.shape:18s} {w.activation:8s} {w.loss}, lr {w.lr:g}, "
             f"{w.epochs} epochs" + (f", batch_size={w.batch_size}" if w.batch_size else "")
             + f"  (seed {w.seeds})" for w in WORKLOADS.values()]
    demo = commands.add_parser(
        "demo", help="train the seed workloads with fastnn and with NumPy, and compare",
        description="Train the seed workloads with fastnn and with the NumPy reference loop\n"
                    "from the same initial point; print times, speedups, final losses and\n"
                    "the largest weight difference.",
        epilog="workloads:\n" + "\n".join(lines) + "\n\nTimes are the best of up to "
               f"{MAX_RUNS} runs within about {TIME_BUDGET} s per side; compilation is "
               "done before timing.\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--workload", action="append", choices=NAMES, metavar="NAME",
                      help=f"run only this workload (repeatable): {', '.join(NAMES)}")
    demo.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                      help="dtype of the weights and the computation (default float64)")
    demo.add_argument("--epochs", type=_positive_int, metavar="N",
                      help="train every workload for N epochs instead of its own count")
    demo.add_argument("--json", action="store_true",
                      help="print the results as JSON on stdout (and nothing else there)")
    demo.add_argument("--plot", type=_png_path, metavar="FILE.png",
                      help="save the loss curves and the speedups to FILE.png (needs matplotlib: "
                           f"{PLOT_INSTALL})")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its one-line error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _demo(args)
    except KeyboardInterrupt:
        print("\nfastnn demo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. fastnn demo | head -3
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1


# ----------------------------------------------------------------------------- demo

def _demo(args):
    names = list(dict.fromkeys(args.workload or NAMES))  # keep order, drop repeats
    dtype = np.dtype(args.dtype)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"fastnn demo: error: --plot needs matplotlib, which is not installed; "
                  f"install it with: {PLOT_INSTALL}  (or: pip install matplotlib)",
                  file=sys.stderr)
            return 1
    out = sys.stdout
    started = time.perf_counter()
    import fastnn
    warmup = _warm_up(fastnn, dtype, sys.stderr, names)
    if not args.json:
        _print_header(out, dtype, warmup)
    rows = []
    for name in names:
        try:
            with np.errstate(all="ignore"):  # a diverging NumPy loop is reported below
                row = _run_workload(fastnn, WORKLOADS[name], dtype, args.epochs)
        except fastnn.DivergenceError as exc:
            print(f"fastnn demo: error: {name} ({args.dtype}) diverged: {exc}", file=sys.stderr)
            return 1
        rows.append(row)
        if not args.json:
            _print_row(out, row)
    total = time.perf_counter() - started
    if args.plot:
        message = _plot(rows, args.plot, dtype)
        if message:
            print(f"fastnn demo: error: {message}", file=sys.stderr)
            return 1
    if args.json:
        json.dump(_report(fastnn, rows, dtype, args, warmup, total), out, indent=2)
        out.write("\n")
    else:
        _print_footer(out, rows, total, args.plot)
    if args.plot and args.json:
        print(f"wrote {args.plot}", file=sys.stderr)
    out.flush()
    return 0


def _cache_misses(fastnn):
    """Numba cache misses of the compiled training loops so far (None if unknown)."""
    try:
        return sum(sum(loop.stats.cache_misses.values())
                   for loop in (fastnn.kernels.loop.run_epochs,))
    except Exception:
        return None


def _warm_up(fastnn, dtype, err, names=("mlp3_gd",)):
    """Compile (or load from Numba's cache) the kernels of one dtype before timing.

    One epoch of each workload in ``names`` does it: fastnn compiles only the
    code path a training run executes (gemm layers, small layers, one-sample
    steps), so each workload warms its own. If it takes longer than NOTICE_AFTER
    seconds, a line on ``err`` says what is happening and counts the seconds, so
    a first run (4-25 s of compilation per dtype) never looks hung.
    """
    problems = [WORKLOADS[name].build(dtype) for name in names]
    misses_before = _cache_misses(fastnn)
    done = threading.Event()
    shown = []
    tty = hasattr(err, "isatty") and err.isatty()
    start = time.perf_counter()

    def compiling():
        misses = _cache_misses(fastnn)
        return misses is not None and misses_before is not None and misses > misses_before

    def notice():
        if done.wait(NOTICE_AFTER):
            return
        if compiling() or misses_before is None:
            what = f"compiling fastnn kernels for {dtype} (first run only)..."
        else:
            what = f"loading fastnn kernels for {dtype} from the Numba cache..."
        shown.append(what)
        err.write(what)
        err.flush()
        while tty and not done.wait(1.0):
            err.write(f"\r{what} {time.perf_counter() - start:.0f} s")
            err.flush()

    ticker = threading.Thread(target=notice, name="fastnn-demo-notice", daemon=True)
    ticker.start()
    try:
        for problem in problems:
            fastnn.train(problem.x, problem.y, *problem.copy_params(), **problem.train_kwargs(1))
    finally:
        done.set()
        ticker.join()
    seconds = time.perf_counter() - start
    compiled = compiling()
    if shown:
        prefix = f"\r{shown[0]}" if tty else ""
        err.write(f"{prefix} done in {seconds:.1f} s\n")
        err.flush()
    return {"dtype": str(dtype), "seconds": seconds, "compiled": compiled}


def _best_time(train, problem, kwargs):
    """Train from the initial point until MAX_RUNS runs or TIME_BUDGET seconds;
    returns (best seconds, runs, history, trained weights + biases)."""
    best, spent, runs = float("inf"), 0.0, 0
    result = None
    while runs < MAX_RUNS and (runs == 0 or spent < TIME_BUDGET):
        weights, biases = problem.copy_params()
        t0 = time.perf_counter()
        history = train(problem.x, problem.y, weights, biases, **kwargs)
        seconds = time.perf_counter() - t0
        best, spent, runs = min(best, seconds), spent + seconds, runs + 1
        if result is None:
            result = history, weights + (biases or [])
    return best, runs, result[0], result[1]


def _run_workload(fastnn, workload, dtype, epochs):
    problem = workload.build(dtype)
    kwargs = problem.train_kwargs(epochs)
    np_time, np_runs, np_hist, np_params = _best_time(fastnn.reference.train, problem, kwargs)
    fn_time, fn_runs, fn_hist, fn_params = _best_time(fastnn.train, problem, kwargs)
    diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(fn_params, np_params))
    scale = max(float(np.max(np.abs(b))) for b in np_params)
    return {
        "name": workload.name,
        "seeds": workload.seeds,
        "shape": workload.shape,
        "activation": workload.activation,
        "loss": workload.loss,
        "lr": workload.lr,
        "epochs": kwargs["epochs"],
        "batch_size": workload.batch_size,
        "numpy_seconds": np_time,
        "fastnn_seconds": fn_time,
        "speedup": np_time / fn_time,
        "numpy_runs": np_runs,
        "fastnn_runs": fn_runs,
        "numpy_final_loss": float(np_hist[-1]),
        "fastnn_final_loss": float(fn_hist[-1]),
        "numpy_first_loss": float(np_hist[0]),
        "max_abs_weight_diff": diff,
        "max_abs_weight": scale,
        # kept for --plot, left out of the JSON
        "_histories": (np_hist, fn_hist),
    }


# ----------------------------------------------------------------------------- output

_COLUMNS = [("workload", 9, "<"), ("network", 18, "<"), ("epochs", 6, ">"), ("NumPy", 9, ">"),
            ("fastnn", 9, ">"), ("speedup", 8, ">"), ("NumPy loss", 11, ">"),
            ("fastnn loss", 11, ">"), ("max |dw|", 8, ">")]


def _line(cells):
    return "  ".join(f"{c:{align}{width}}" for c, (_, width, align) in zip(cells, _COLUMNS))


def _seconds(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _print_header(out, dtype, warmup):
    import numba
    print(f"fastnn demo: {dtype}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"numba {numba.__version__}, python {platform.python_version()}", file=out)
    print(_line([c[0] for c in _COLUMNS]), file=out)
    print(_line(["-" * c[1] for c in _COLUMNS]), file=out)
    out.flush()


def _print_row(out, r):
    print(_line([r["name"], r["shape"], r["epochs"], _seconds(r["numpy_seconds"]),
                 _seconds(r["fastnn_seconds"]), f"{r['speedup']:.1f}x",
                 f"{r['numpy_final_loss']:.4e}", f"{r['fastnn_final_loss']:.4e}",
                 f"{r['max_abs_weight_diff']:.1e}"]), file=out)
    out.flush()


def _print_footer(out, rows, total, plot):
    print(file=out)
    print("NumPy = fastnn.reference.train (the seeds' loop); fastnn = fastnn.train (compiled; "
          "compile time excluded).", file=out)
    print(f"Times are the best of up to {MAX_RUNS} runs from the same initial point. max |dw| is "
          "the largest", file=out)
    print(f"|fastnn - NumPy| over the trained weights and biases. Total {total:.1f} s.", file=out)
    if plot:
        print(f"Wrote {plot}.", file=out)


def _report(fastnn, rows, dtype, args, warmup, total):
    import numba
    return {
        "fastnn_version": fastnn.__version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "dtype": str(dtype),
        "epochs_override": args.epochs,
        "warmup": warmup,
        "total_seconds": total,
        "plot": args.plot,
        "workloads": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
    }


def _plot(rows, path, dtype):
    """Loss curves (NumPy and fastnn overlaid, log scale) and a bar chart of the
    speedups, saved to ``path``; returns an error message or None."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    n = len(rows) + 1
    cols = min(n, 3)
    nrows = -(-n // cols)
    fig = Figure(figsize=(4.6 * cols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, r in zip(axes, rows):
        np_hist, fn_hist = r["_histories"]
        epochs = np.arange(len(np_hist))
        ax.plot(epochs, np_hist, color="tab:blue", lw=3.5, alpha=0.45,
                label=f"NumPy ({_seconds(r['numpy_seconds'])})")
        ax.plot(epochs, fn_hist, color="tab:orange", lw=1.2, ls="--",
                label=f"fastnn ({_seconds(r['fastnn_seconds'])})")
        if np.all(np_hist > 0) and np.all(fn_hist > 0):
            ax.set_yscale("log")
        ax.set_title(f"{r['name']}: {r['shape']}, {r['activation']}, {r['loss']}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{r['loss']} loss")
        ax.legend(fontsize=8)
    bar = axes[len(rows)]
    speedups = [r["speedup"] for r in rows]
    names = [r["name"] for r in rows]
    bars = bar.bar(names, speedups, color="tab:orange")
    bar.axhline(1.0, color="gray", lw=1, ls=":")
    if max(speedups) / max(min(speedups), 1e-12) > 20:
        bar.set_yscale("log")
        bar.set_ylim(top=max(speedups) * 3)
    else:
        bar.set_ylim(0, max(max(speedups), 1.0) * 1.15)
    for rect, s in zip(bars, speedups):
        bar.annotate(f"{s:.1f}x", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                     ha="center", va="bottom", fontsize=9)
    bar.set_ylabel("speedup over NumPy (x)")
    bar.set_title(f"speedup of fastnn over the NumPy loop, {dtype}", fontsize=10)
    for ax in axes[len(rows) + 1:]:
        ax.set_visible(False)
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        return f"could not write {path}: {exc}"
    return None
