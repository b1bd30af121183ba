"""The ``fastnn`` command line: ``python -m fastnn demo|sweep`` (also the console script).

``fastnn demo`` trains the four seed workloads (see ``fastnn._workloads``) once
with ``fastnn.train`` and once with the NumPy loop ``fastnn.reference.train``,
from the same initial point, and prints one table: the time of each, the
speedup, the final loss of each and the largest difference between the two
sets of trained weights.

``fastnn sweep`` trains K copies of one seed workload (default mlp3_gd) from its
initial point with K log-spaced learning rates in one ``fastnn.train_many`` call
(``on_divergence="freeze"``: a too-large lr stops only its own network), prints
each lr's final loss and the best lr, and times the call against K sequential
``fastnn.train`` calls doing the same work (whose results it also compares,
bitwise). ``--client ADDRESS`` runs the train_many call on a Dask scheduler.

Exit status: 0 on success, 1 when the command cannot run (``--plot`` without
matplotlib, a file that cannot be written, training that diverged in the demo,
every network of a sweep diverged, ``--client`` without dask.distributed or an
unreachable scheduler), 2 for a bad command line, 130 on Ctrl-C.
"""

import argparse
import json
import os
import platform
import sys
import threading
import time

import numpy as np

from ._errors import INSTALL
from ._workloads import NAMES, WORKLOADS

PLOT_INSTALL, DASK_INSTALL, SKLEARN_INSTALL = INSTALL["plot"], INSTALL["dask"], INSTALL["sklearn"]
PLOT_FORMATS = (".png", ".pdf", ".svg")
TIME_BUDGET = 0.5    # seconds: a side that trains faster than this is re-run ...
MAX_RUNS = 5         # ... up to this many times, and its best time is reported
NOTICE_AFTER = 1.0   # seconds of warm-up before saying that kernels are being compiled
DIGITS = "digits"    # the demo's classification workload, against scikit-learn
DIGITS_SHAPE = "1797x64->64->10"
DIGITS_EPOCHS = 30
SWEEP_COUNT = 16     # learning rates in a sweep, by default ...
SWEEP_MAX = 4096     # at most (a line each; for more, call fastnn.train_many)
SWEEP_SPAN = 100.0   # ... from the workload's lr / SWEEP_SPAN to lr * SWEEP_SPAN
CONNECT_TIMEOUT = 10.0  # seconds to reach a Dask scheduler (--timeout)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _sweep_count(text):
    value = _positive_int(text)
    if value > SWEEP_MAX:
        raise argparse.ArgumentTypeError(f"expected at most {SWEEP_MAX} learning rates (for more "
                                         f"networks, call fastnn.train_many), found {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text!r}")
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
    digits = [f"  {DIGITS:9s} {DIGITS_SHAPE:18s} relu     log-loss, Adam lr 0.001, "
              f"{DIGITS_EPOCHS} epochs, batch_size=32  (scikit-learn's MLPClassifier)"]
    demo = commands.add_parser(
        "demo", help="train the seed workloads with fastnn and with NumPy, and compare",
        description="Train the seed workloads with fastnn and with the NumPy reference loop\n"
                    "from the same initial point, and a digits classifier with\n"
                    "fastnn.sklearn.MLPClassifier and scikit-learn's own (if installed);\n"
                    "print times, speedups, final losses and the largest weight difference.",
        epilog="workloads:\n" + "\n".join(lines + digits) + "\n\nTimes are the best of up to "
               f"{MAX_RUNS} runs within about {TIME_BUDGET} s per side; compilation is "
               "done before timing.\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--workload", action="append", choices=NAMES + (DIGITS,), metavar="NAME",
                      help=f"run only this workload (repeatable): {', '.join(NAMES)}, "
                           f"{DIGITS}")
    demo.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                      help="dtype of the weights and the computation (default float64)")
    demo.add_argument("--epochs", type=_positive_int, metavar="N",
                      help="train every workload for N epochs instead of its own count")
    demo.add_argument("--json", action="store_true",
                      help="print the results as JSON on stdout (and nothing else there)")
    demo.add_argument("--plot", type=_png_path, metavar="FILE.png",
                      help="save the loss curves and the speedups to FILE.png (needs matplotlib: "
                           f"{PLOT_INSTALL})")

    sweep = commands.add_parser(
        "sweep", help="train K networks with K learning rates in one train_many call",
        description="Train K copies of a seed workload, from its initial point, with K\n"
                    "log-spaced learning rates in one fastnn.train_many call; print each\n"
                    "lr's final loss, the best lr, and the time against K sequential\n"
                    "fastnn.train calls. A network that diverges stops alone (it is marked);\n"
                    "one that ends above its first epoch's loss is marked (grew).",
        epilog="workloads:\n" + "\n".join(lines) + "\n\nThe learning rates default to the "
               f"workload's lr / {SWEEP_SPAN:g} .. lr * {SWEEP_SPAN:g}.\nTimes are the best of "
               f"up to {MAX_RUNS} interleaved runs within about {TIME_BUDGET} s per side\n"
               "(one run on a cluster); compilation is done before timing.\n\nExamples:\n"
               "  fastnn sweep --count 32 --lr-min 0.01 --lr-max 3 --plot sweep.png\n"
               "  fastnn sweep --client tcp://10.0.0.5:8786 --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("--workload", choices=NAMES, default="mlp3_gd", metavar="NAME",
                       help=f"the workload to sweep (default mlp3_gd): {', '.join(NAMES)}")
    sweep.add_argument("--lr-min", type=_positive_float, metavar="LR",
                       help="the smallest learning rate (default: the workload's / "
                            f"{SWEEP_SPAN:g})")
    sweep.add_argument("--lr-max", type=_positive_float, metavar="LR",
                       help=f"the largest learning rate (default: the workload's * {SWEEP_SPAN:g})")
    sweep.add_argument("--count", type=_sweep_count, default=SWEEP_COUNT, metavar="K",
                       help=f"the number of learning rates, log-spaced (default {SWEEP_COUNT}, "
                            f"at most {SWEEP_MAX})")
    sweep.add_argument("--epochs", type=_positive_int, metavar="N",
                       help="train for N epochs instead of the workload's own count")
    sweep.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                       help="dtype of the weights and the computation (default float64)")
    sweep.add_argument("--json", action="store_true",
                       help="print the results as JSON on stdout (and nothing else there)")
    sweep.add_argument("--plot", type=_png_path, metavar="FILE.png",
                       help="save the K loss curves and the final loss against lr to FILE.png "
                            f"(needs matplotlib: {PLOT_INSTALL})")
    sweep.add_argument("--client", metavar="ADDRESS",
                       help="run the train_many call on the Dask scheduler at ADDRESS, such as "
                            f"tcp://10.0.0.5:8786 (needs dask.distributed: {DASK_INSTALL})")
    sweep.add_argument("--timeout", type=_positive_float, default=CONNECT_TIMEOUT,
                       metavar="SECONDS",
                       help=f"seconds to wait for the scheduler (default {CONNECT_TIMEOUT:g})")
    parser.sweep_parser = sweep
    return parser


def _sweep_rates(parser, args):
    """The sweep's learning rates (K log-spaced from lr_min to lr_max); a bad range is a
    command-line error (exit 2)."""
    lr = WORKLOADS[args.workload].lr
    args.lr_min = lr / SWEEP_SPAN if args.lr_min is None else args.lr_min
    args.lr_max = lr * SWEEP_SPAN if args.lr_max is None else args.lr_max
    if args.lr_min > args.lr_max:
        parser.sweep_parser.error(f"argument --lr-min: {args.lr_min:g} is above --lr-max "
                                  f"{args.lr_max:g}")
    return np.geomspace(args.lr_min, args.lr_max, args.count)


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        rates = _sweep_rates(parser, args) if args.command == "sweep" else None
    except SystemExit as exc:  # argparse has printed its one-line error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return _sweep(args, rates) if args.command == "sweep" else _demo(args)
    except KeyboardInterrupt:
        print(f"\nfastnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. fastnn demo | head -3
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1


# ----------------------------------------------------------------------------- demo

def _demo(args):
    names = list(dict.fromkeys(args.workload or NAMES + (DIGITS,)))  # keep order, drop repeats
    dtype = np.dtype(args.dtype)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"fastnn demo: error: --plot needs matplotlib, which is not installed; "
                  f"install it with: {PLOT_INSTALL}", file=sys.stderr)
            return 1
    if DIGITS in names and not _have_sklearn():
        print(f"fastnn demo: {DIGITS} skipped: it compares with scikit-learn, which is not "
              f"installed ({SKLEARN_INSTALL})", file=sys.stderr)
        names.remove(DIGITS)
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
                row = (_run_digits(dtype, args.epochs) if name == DIGITS
                       else _run_workload(fastnn, WORKLOADS[name], dtype, args.epochs))
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
    problems = [WORKLOADS[name].build(dtype) for name in names if name != DIGITS]
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
        if DIGITS in names:
            from .sklearn import MLPClassifier
            _digits_fit(_digits_estimator(MLPClassifier, 1), dtype)
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


def _have_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def _digits_data(dtype):
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
    digits = load_digits()
    return (digits.data / 16.0).astype(dtype), digits.target


def _digits_estimator(cls, epochs):
    """An MLPClassifier for the digits workload: Adam, batches of 32, shuffled, ``epochs``
    epochs exactly (no early stop)."""
    return cls(hidden_layer_sizes=(64,), solver="adam", learning_rate_init=1e-3, batch_size=32,
               max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=0)


def _digits_fit(model, dtype):
    import warnings
    x, labels = _digits_data(dtype)
    with warnings.catch_warnings():  # max_iter reached: the point of a fixed schedule
        warnings.simplefilter("ignore")
        model.fit(x, labels)
    return model


def _best_fit(cls, epochs, dtype):
    """Fit from the same random_state until MAX_RUNS fits or TIME_BUDGET seconds; returns
    (best seconds, runs, the first fitted model)."""
    best, spent, runs, first = float("inf"), 0.0, 0, None
    while runs < MAX_RUNS and (runs == 0 or spent < TIME_BUDGET):
        model = _digits_estimator(cls, epochs)
        t0 = time.perf_counter()
        _digits_fit(model, dtype)
        seconds = time.perf_counter() - t0
        best, spent, runs = min(best, seconds), spent + seconds, runs + 1
        first = first or model
    return best, runs, first


def _run_digits(dtype, epochs):
    """fastnn.sklearn.MLPClassifier against scikit-learn's, with the same parameters."""
    from sklearn.neural_network import MLPClassifier as Theirs

    from .sklearn import MLPClassifier as Ours
    epochs = epochs or DIGITS_EPOCHS
    sk_time, sk_runs, sk = _best_fit(Theirs, epochs, dtype)
    fn_time, fn_runs, fn = _best_fit(Ours, epochs, dtype)
    pairs = list(zip(fn.coefs_ + fn.intercepts_, sk.coefs_ + sk.intercepts_))
    return {
        "name": DIGITS, "seeds": "-", "shape": DIGITS_SHAPE, "activation": "relu",
        "loss": "log_loss", "lr": 1e-3, "epochs": epochs, "batch_size": 32,
        "numpy_seconds": sk_time, "fastnn_seconds": fn_time, "speedup": sk_time / fn_time,
        "numpy_runs": sk_runs, "fastnn_runs": fn_runs,
        "numpy_final_loss": float(sk.loss_curve_[-1]),
        "fastnn_final_loss": float(fn.loss_curve_[-1]),
        "numpy_first_loss": float(sk.loss_curve_[0]),
        "max_abs_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in pairs),
        "max_abs_weight": max(float(np.max(np.abs(b))) for _, b in pairs),
        "_histories": (np.asarray(sk.loss_curve_), np.asarray(fn.loss_curve_)),
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
    if any(r["name"] == DIGITS for r in rows):
        print(f"{DIGITS}: NumPy = scikit-learn's MLPClassifier.fit, fastnn = "
              "fastnn.sklearn.MLPClassifier.fit, same parameters.", file=out)
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
        base = "scikit-learn" if r["name"] == DIGITS else "NumPy"
        ax.plot(epochs, np_hist, color="tab:blue", lw=3.5, alpha=0.45,
                label=f"{base} ({_seconds(r['numpy_seconds'])})")
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
    bar.set_ylabel("speedup (x)")
    bar.set_title(f"fastnn over the NumPy loop (digits: scikit-learn), {dtype}", fontsize=10)
    for ax in axes[len(rows) + 1:]:
        ax.set_visible(False)
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        return f"could not write {path}: {exc}"
    return None


# ----------------------------------------------------------------------------- sweep

def _sweep(args, rates):
    command = "fastnn sweep"
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"{command}: error: --plot needs matplotlib, which is not installed; "
                  f"install it with: {PLOT_INSTALL}", file=sys.stderr)
            return 1
    client = None
    if args.client:
        client, message = _connect(args.client, args.timeout)
        if message:
            print(f"{command}: error: {message}", file=sys.stderr)
            return 1
    try:
        return _run_sweep(args, rates, client)
    finally:
        if client is not None:
            client.close()


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _connect(address, timeout):
    """(a dask.distributed.Client on address, None), or (None, a one-line error message).

    A TCP address is tried with a plain socket first: an unreachable scheduler is
    reported without a half-built Client (whose clean-up would print a traceback)."""
    try:
        import distributed
        from distributed.comm.addressing import normalize_address, parse_address, parse_host_port
    except ImportError:
        return None, (f"--client needs dask.distributed, which is not installed; install it "
                      f"with: {DASK_INSTALL}")
    try:
        scheme, location = parse_address(normalize_address(address))
        if scheme in ("tcp", "tls", "ws", "wss"):
            import socket
            host, port = parse_host_port(location, 8786)
            socket.create_connection((host, port), timeout=timeout).close()
        # the default client: train_many's gathering (as_completed) looks it up
        client = distributed.Client(address, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported on one line
        return None, f"cannot reach the Dask scheduler at {address!r}: {_one_line(exc)}"
    return client, None


def _run_sweep(args, rates, client):
    command = "fastnn sweep"
    started = time.perf_counter()
    import fastnn
    from ._many import threads
    try:
        n_threads = threads()
    except ValueError as exc:  # FASTNN_THREADS
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    workload = WORKLOADS[args.workload]
    dtype = np.dtype(args.dtype)
    problem = workload.build(dtype)
    kwargs = problem.train_kwargs(args.epochs)
    warmup = _warm_up(fastnn, dtype, sys.stderr, [workload.name])
    workers = None
    if client is not None:
        try:  # every worker loads fastnn's kernels before the clock starts
            workers = len(client.run(fastnn.train, problem.x, problem.y,
                                     *problem.copy_params(), **problem.train_kwargs(1)))
        except Exception as exc:  # noqa: BLE001
            print(f"{command}: error: the workers at {args.client!r} cannot run fastnn: "
                  f"{_one_line(exc)}", file=sys.stderr)
            return 1
    try:
        timing = _time_sweep(fastnn, problem, kwargs, rates, client)
    except Exception as exc:  # noqa: BLE001 - a cluster that fails mid-run
        if client is None:
            raise
        print(f"{command}: error: the sweep failed on {args.client!r}: {_one_line(exc)}",
              file=sys.stderr)
        return 1
    result = _sweep_result(workload, problem, kwargs, rates, timing)
    result.update(threads=n_threads, client=args.client, workers=workers, warmup=warmup,
                  total_seconds=time.perf_counter() - started, plot=args.plot)
    if args.plot:
        message = _plot_sweep(result, timing["history"], args.plot)
        if message:
            print(f"{command}: error: {message}", file=sys.stderr)
            return 1
    if args.json:
        json.dump(_sweep_report(fastnn, result, dtype), sys.stdout, indent=2)
        sys.stdout.write("\n")
        if args.plot:
            print(f"wrote {args.plot}", file=sys.stderr)
    else:
        _print_sweep(sys.stdout, result, dtype)
    sys.stdout.flush()
    if result["best_index"] is None:
        print(f"{command}: error: every learning rate diverged or grew; try a smaller "
              f"--lr-max", file=sys.stderr)
        return 1
    return 0


def _stacked(arrays, count):
    return None if arrays is None else [np.repeat(a[None], count, axis=0) for a in arrays]


def _time_sweep(fastnn, problem, kwargs, rates, client):
    """train_many over the rates and the same work as sequential fastnn.train calls,
    interleaved, each the best of up to MAX_RUNS runs within TIME_BUDGET seconds (the
    train_many side once on a cluster); returns the times and the results of each."""
    count = len(rates)
    settings = dict(kwargs, lr=None)

    def run_many():
        weights, biases = problem.copy_params()
        weights, biases = _stacked(weights, count), _stacked(biases, count)
        t0 = time.perf_counter()
        history = fastnn.train_many(problem.x, problem.y, weights, biases,
                                    **dict(settings, lr=rates), on_divergence="freeze",
                                    client=client)
        return time.perf_counter() - t0, (history, weights + (biases or []))

    def run_sequential():
        histories, params = [], []
        t0 = time.perf_counter()
        for lr in rates:
            weights, biases = problem.copy_params()
            try:
                history = fastnn.train(problem.x, problem.y, weights, biases,
                                       **dict(settings, lr=float(lr)))
            except fastnn.DivergenceError as exc:
                history = exc.history
            histories.append(history)
            params.append(weights + (biases or []))
        return time.perf_counter() - t0, (histories, params)

    sides = {"many": [run_many, [], None], "sequential": [run_sequential, [], None]}
    for attempt in range(MAX_RUNS):
        for name, side in sides.items():
            times = side[1]
            if attempt and (sum(times) >= TIME_BUDGET or (name == "many" and client)):
                continue
            seconds, result = side[0]()
            times.append(seconds)
            side[2] = side[2] or result
        if all(sum(s[1]) >= TIME_BUDGET for s in sides.values()):
            break
    (history, params), (histories, seq_params) = sides["many"][2], sides["sequential"][2]
    return dict(history=history, params=params, seq_histories=histories, seq_params=seq_params,
                many_seconds=min(sides["many"][1]), many_runs=len(sides["many"][1]),
                sequential_seconds=min(sides["sequential"][1]),
                sequential_runs=len(sides["sequential"][1]))


def _sweep_result(workload, problem, kwargs, rates, timing):
    history = timing["history"]
    count, epochs = history.shape
    finite = np.isfinite(history)
    diverged = [None if finite[k].all() else int(np.argmin(finite[k])) for k in range(count)]
    final = [None if d is not None else float(history[k, -1]) for k, d in enumerate(diverged)]
    first = [float(history[k, 0]) if finite[k, 0] else None for k in range(count)]
    candidates = [k for k in range(count)  # a network that grew did not learn: never the best
                  if final[k] is not None and not _grew(final[k], first[k])]
    best = min(candidates, key=lambda k: final[k]) if candidates else None
    identical = all(
        np.array_equal(history[k, :len(h)], h) and np.isnan(history[k, len(h):]).all()
        and all(np.array_equal(p[k], q) for p, q in zip(timing["params"], timing["seq_params"][k]))
        for k, h in enumerate(timing["seq_histories"]))
    return dict(
        workload=workload.name, shape=workload.shape, activation=workload.activation,
        loss=workload.loss, batch_size=workload.batch_size, epochs=epochs, count=count,
        lr_min=float(rates[0]), lr_max=float(rates[-1]), lrs=[float(r) for r in rates],
        final_losses=final, first_losses=first, diverged_at=diverged, best_index=best,
        best_lr=None if best is None else float(rates[best]),
        best_final_loss=None if best is None else final[best],
        many_seconds=timing["many_seconds"], sequential_seconds=timing["sequential_seconds"],
        speedup=timing["sequential_seconds"] / timing["many_seconds"],
        many_runs=timing["many_runs"], sequential_runs=timing["sequential_runs"],
        identical=bool(identical))


def _sweep_report(fastnn, result, dtype):
    import numba
    return {
        "fastnn_version": fastnn.__version__,
        "numpy_version": np.__version__,
        "numba_version": numba.__version__,
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "command": "sweep",
        "dtype": str(dtype),
        **result,
    }


def _grew(final, first):
    """A network finished finite but above its first epoch's loss: it did not learn."""
    return final is not None and first is not None and final > first


def _print_sweep(out, r, dtype):
    batch = "full batch" if r["batch_size"] is None else f"batch_size={r['batch_size']}"
    print(f"fastnn sweep: {r['workload']} ({r['shape']}, {r['activation']}, {r['loss']}, "
          f"{batch}), {r['epochs']} epochs, {r['count']} learning rates from {r['lr_min']:.4g} "
          f"to {r['lr_max']:.4g} (log-spaced), {dtype}", file=out)
    print(f"{'#':>4}  {'lr':>10}  {'final loss':>12}", file=out)
    print(f"{'-' * 4}  {'-' * 10}  {'-' * 12}", file=out)
    for k, lr in enumerate(r["lrs"]):
        if r["diverged_at"][k] is not None:
            cell = f"diverged at epoch {r['diverged_at'][k]}"
        else:
            grew = _grew(r["final_losses"][k], r["first_losses"][k])
            cell = f"{r['final_losses'][k]:12.4e}" + ("  <- best" if k == r["best_index"] else
                                                      "  (grew)" if grew else "")
        print(f"{k:>4}  {lr:>10.4g}  {cell}", file=out)
    print(file=out)
    n_diverged = sum(d is not None for d in r["diverged_at"])
    n_grew = sum(map(_grew, r["final_losses"], r["first_losses"]))
    if r["best_index"] is None:
        print(f"best lr: none, every one of the {r['count']} networks diverged or grew.",
              file=out)
    else:
        print(f"best lr: {r['best_lr']:.4g} (network {r['best_index']}), final loss "
              f"{r['best_final_loss']:.4e}; {n_diverged} of {r['count']} diverged "
              "(stopped at their last finite epoch)"
              + (f"; {n_grew} grew (a final loss above the first epoch's)" if n_grew else "")
              + ".", file=out)
    where = (f"on {r['client']} ({r['workers']} workers, one run, data transfer included)"
             if r["client"] else f"on {r['threads']} thread{'s' if r['threads'] > 1 else ''}")
    faster = (f"{r['speedup']:.2f}x faster" if r["speedup"] >= 1
              else f"{1 / r['speedup']:.2f}x slower")
    print(f"time: one train_many call {where}: {_seconds(r['many_seconds'])}; "
          f"{r['count']} sequential fastnn.train calls: {_seconds(r['sequential_seconds'])}; "
          f"train_many is {faster}.", file=out)
    print(f"train_many equals the sequential calls bitwise: {'yes' if r['identical'] else 'NO'}. "
          f"Total {r['total_seconds']:.1f} s.", file=out)
    if r["plot"]:
        print(f"Wrote {r['plot']}.", file=out)


def _plot_sweep(r, history, path):
    """The K loss curves (log y, coloured by lr, diverged ones ending in an x) and the final
    loss against lr, saved to ``path``; returns an error message or None."""
    with np.errstate(over="ignore"):  # log axes over losses near the float64 limit
        return _draw_sweep(r, history, path)


def _draw_sweep(r, history, path):
    from matplotlib import cm, colors
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    curves, finals = fig.subplots(1, 2)
    lrs = np.array(r["lrs"])
    norm = colors.LogNorm(vmin=lrs[0], vmax=lrs[-1] if lrs[-1] > lrs[0] else lrs[0] * 10)
    cmap = cm.viridis
    finite = history[np.isfinite(history)]
    positive = finite.size > 0 and bool(np.all(finite > 0))
    # y from the lowest loss to 3x the highest first-epoch loss: a curve that blows up
    # (up to ~1e308 before it diverges) leaves the plot instead of flattening the others
    first = history[:, 0][np.isfinite(history[:, 0])]
    top = 3 * float(first.max()) if first.size else 1.0
    bottom = float(finite.min()) if finite.size else 0.0
    bottom = bottom / 1.5 if positive else bottom - 0.05 * (top - bottom)
    epochs = np.arange(history.shape[1])
    for k, lr in enumerate(lrs):
        best = k == r["best_index"]
        curves.plot(epochs, history[k], color=cmap(norm(lr)), lw=2.4 if best else 1.0,
                    zorder=3 if best else 2,
                    label=f"best lr {lr:.3g}" if best else None)
        stop = r["diverged_at"][k]
        if stop is not None and stop > 0 and history[k, stop - 1] <= top:
            curves.plot(stop - 1, history[k, stop - 1], "x", color="tab:red", ms=7)
    if positive:
        curves.set_yscale("log")
    if top > bottom:
        curves.set_ylim(bottom, top)
    curves.set_xlabel("epoch")
    curves.set_ylabel(f"{r['loss']} loss")
    curves.set_title(f"{r['workload']}: {r['count']} learning rates, one train_many call "
                     f"({_seconds(r['many_seconds'])})", fontsize=10)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=curves, label="lr")
    if r["best_index"] is not None:
        curves.legend(fontsize=8)
    final = np.array([np.nan if f is None else f for f in r["final_losses"]])
    shown = np.isfinite(final) & (final <= top)
    finals.plot(lrs[shown], final[shown], "o-", color="tab:blue", ms=4, label="final loss")
    above = np.isfinite(final) & (final > top)
    if above.any():
        finals.plot(lrs[above], [top] * int(above.sum()), "^", color="tab:orange", ms=8,
                    label="final loss above the plot")
    bad = ~np.isfinite(final)
    if bad.any():
        finals.plot(lrs[bad], [top] * int(bad.sum()), "x", color="tab:red", ms=8,
                    label="diverged")
    if r["best_index"] is not None:
        finals.plot(lrs[r["best_index"]], r["best_final_loss"], "*", color="tab:orange",
                    ms=14, label=f"best lr {r['best_lr']:.3g}")
    finals.set_xscale("log")
    if positive:
        finals.set_yscale("log")
    if top > bottom:
        finals.set_ylim(bottom, top * 1.5 if positive else top)
    finals.set_xlabel("lr")
    finals.set_ylabel(f"final {r['loss']} loss")
    finals.set_title(f"final loss after {r['epochs']} epochs", fontsize=10)
    finals.legend(fontsize=8)
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        return f"could not write {path}: {exc}"
    return None
