"""What every example does around its two trainings: arguments, timing and the comparison.

Not part of fastnn: the scripts in this folder import it (Python puts a script's
own folder on ``sys.path``), so copy it along with a script you take elsewhere.
"""

import argparse
import contextlib
import time

import numpy as np

try:
    from threadpoolctl import threadpool_limits
except ImportError:   # then the NumPy loop runs with the BLAS's default threads
    threadpool_limits = None

TOLERANCE = 1e-9   # relative; float64 runs of the same math differ by rounding only


def parse_args(description, epochs, seed):
    """``--epochs N`` (default: the notebook's own count) and ``--seed S``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=epochs,
                        help="iterations of the loop, epochs of fastnn "
                             f"(default: {epochs}, the notebook's)")
    parser.add_argument("--seed", type=int, default=seed,
                        help="seed of np.random.default_rng for the data and initial weights "
                             f"(default: {seed})")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, found {args.epochs}")
    return args


def compare(numpy_run, fastnn_run):
    """Run both and print times, speedup, largest differences and a verdict.

    ``numpy_run()`` and ``fastnn_run()`` each train fresh copies of the same
    initial arrays and return (loss history, [trained arrays]). Returns the exit
    status: 0 when both give the same numbers up to rounding, 1 otherwise.
    """
    # fastnn runs its matrix products on one BLAS thread; so does the NumPy loop here.
    # (On a busy 2-core machine OpenBLAS's default threads made it up to 10x slower.)
    one_thread = (threadpool_limits(limits=1, user_api="blas") if threadpool_limits
                  else contextlib.nullcontext())
    with one_thread:
        start = time.perf_counter()
        np_losses, np_params = numpy_run()
        np_seconds = time.perf_counter() - start
    threads = "one BLAS thread" if threadpool_limits else "default BLAS threads"
    print(f"NumPy loop:   {np_seconds:8.3f} s ({threads})", flush=True)

    # The first fastnn call in a process compiles its kernels (or loads them from
    # Numba's on-disk cache), so it is run once untimed and the second call is timed.
    print("fastnn: the first call compiles the kernels (several seconds the first time, "
          "cached on disk afterwards)...", flush=True)
    start = time.perf_counter()
    fastnn_run()
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fn_losses, fn_params = fastnn_run()
    fn_seconds = time.perf_counter() - start
    print(f"fastnn.train: {fn_seconds:8.3f} s (second call; the first, which compiled or loaded "
          f"the kernels, took {first_seconds:.1f} s)")
    print(f"speedup:      {np_seconds / fn_seconds:8.1f}x")

    np_losses, fn_losses = np.asarray(np_losses, np.float64), np.asarray(fn_losses, np.float64)
    loss_diff = (_relative_diff(fn_losses, np_losses) if fn_losses.shape == np_losses.shape
                 else float("inf"))
    # each trained array against its own largest entry (biases are smaller than weights)
    weight_diff = max(_relative_diff(a, b) for a, b in zip(fn_params, np_params))
    print(f"largest difference (relative to the largest magnitude): "
          f"losses {loss_diff:.1e}, weights {weight_diff:.1e}")
    print(f"final loss:   NumPy {np_losses[-1]:.6e}, fastnn {fn_losses[-1]:.6e}")
    same = loss_diff <= TOLERANCE and weight_diff <= TOLERANCE   # False for NaN
    if same:
        print(f"verdict: same numbers (differences <= {TOLERANCE:g}, rounding only)")
        return 0
    print(f"verdict: DIFFERENT (a difference > {TOLERANCE:g})")
    return 1


def _relative_diff(actual, expected):
    """max |actual - expected| / max |expected| (1 as the scale if expected is all 0)."""
    scale = float(np.max(np.abs(expected))) or 1.0
    return float(np.max(np.abs(actual - expected))) / scale
