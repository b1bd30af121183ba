"""train() and predict(): validated arrays in, one compiled call per chunk of epochs.

``train`` runs chunks of about CHUNK_SECONDS each (so Ctrl-C, callbacks and
progress stay responsive) and after every chunk writes the parameters back into
the user's arrays, which therefore always hold the end of a completed, finite
epoch, whatever interrupts training. Chunking never changes the numbers.
"""

import contextlib
import sys
import time
from typing import NamedTuple

import numpy as np
from numba import config

from ._errors import DivergenceError
from ._state import Packed, Run, Setup, aligned_empty, layer_table, readonly
from ._validate import (check_hooks, check_network, check_predict, check_schedule,
                        check_validation)
from .kernels import loop as KL
from .kernels import network as KN
from .optim import resolve

CHUNK_SECONDS = 0.1           # target wall time of one compiled call
MAX_ORDER_ELEMENTS = 1 << 22  # cap on the row orders drawn ahead for one chunk
PREDICT_ROWS = 4096           # rows per block in predict
NO_ORDER = np.empty((0, 0), np.int64)


class History(NamedTuple):
    """What ``train`` returns when given ``validation``.

    loss : float64 array, the training loss of every epoch run.
    val_loss : float64 array, the validation loss after every epoch run.
    best_epoch : int, the epoch (0-based) with the lowest validation loss.
    stopped_early : bool, True when ``early_stopping`` ended training.
    """
    loss: np.ndarray
    val_loss: np.ndarray
    best_epoch: int
    stopped_early: bool


def train(x, y, weights, biases=None, *, activation="relu", loss="sse", lr=None, optimizer=None,
          epochs, batch_size=None, shuffle=False, seed=None, validation=None, early_stopping=None,
          check_finite=True, print_every=None, callback=None, callback_every=1, progress=False):
    """Train a dense network in place; returns the loss of every epoch.

    See ``fastnn.train.__doc__`` (set in ``fastnn/_docs.py``) for the full reference.
    """
    optimizer = resolve(lr, optimizer)
    epochs, batch_size = check_schedule(epochs, batch_size, shuffle, seed)
    check_hooks(print_every, callback, callback_every, progress)
    net = check_network(x, y, weights, biases, activation, loss)
    validation, patience = check_validation(validation, early_stopping, net, loss)
    setup = Setup(batch_size=batch_size, in_order=not shuffle, validation=validation,
                  patience=patience, check_finite=check_finite)
    run = Run(net, optimizer, setup)
    orders = shuffled_orders(np.random.default_rng(seed)) if shuffle else None
    hooks = Hooks(epochs, print_every, callback, callback_every, progress)
    losses, val_losses = fit(run, epochs, orders, hooks)
    return losses if validation is None else history(run, losses, val_losses)


def shuffled_orders(rng):
    """Row orders as train's shuffle draws them: rng.permutation(n_rows) once per epoch."""
    def orders(count, n_rows):
        out = np.empty((count, n_rows), np.int64)
        for i in range(count):
            out[i] = rng.permutation(n_rows)
        return out
    return orders


def history(run, losses, val_losses):
    """train's result with validation; early stopping leaves the best epoch's weights."""
    if run.cfg[KN.PATIENCE] and not run.track[KN.STOPPED] and run.track[KN.BEST_VAL] < np.inf:
        _restore_best(run)
    finite = np.isfinite(val_losses)
    best = int(np.argmin(np.where(finite, val_losses, np.inf))) if finite.any() else -1
    return History(losses, val_losses, best, bool(run.track[KN.STOPPED]))


def fit(run, epochs, orders, hooks):
    """Train up to ``epochs`` epochs in compiled chunks; returns the loss histories.

    ``orders(count, n_rows)`` gives the row orders of the next ``count`` epochs
    (None: every epoch in row order)."""
    if run.check == KN.CHECK_LOSS and not np.isfinite(run.params).all():
        raise ValueError("weights and biases must be finite before training "
                         "(or pass check_finite=False)")
    validating = run.xv.shape[0] > 0
    parts, val_parts = [], []
    done, rate = 0, 1e9  # rate: work units per second, re-measured after every chunk
    per_epoch = _work_per_epoch(run)
    phase = "idle"  # "running": a chunk not yet accepted; "accepted": being written back
    try:
        while done < epochs:
            count = hooks.chunk_epochs(done, epochs, CHUNK_SECONDS * rate / per_epoch)
            if orders is None:
                order = NO_ORDER
            else:  # at most MAX_ORDER_ELEMENTS drawn ahead
                count = max(1, min(count, MAX_ORDER_ELEMENTS // run.x.shape[0]))
                order = orders(count, run.x.shape[0])
            losses, vlosses = np.zeros(count), np.zeros(count if validating else 0)
            run.checkpoint()
            phase = "running"
            t0 = time.perf_counter()
            with _blas_threads(run.uses_blas):
                status = run.call(losses, vlosses, order, run.check)
            elapsed = time.perf_counter() - t0
            stopped = run.track[KN.STOPPED] != 0
            if status == KN.PARAMS_NOT_FINITE or (status < count and not stopped):
                bad = _locate_divergence(run, losses, vlosses, order)
                parts.append(losses[:bad])
                val_parts.append(vlosses[:bad])
                phase = "idle"
                raise DivergenceError(done + bad, *_last(parts), run.optimizer.lr,
                                      val_history=_joined(val_parts) if validating else None)
            phase = "accepted"
            run.store()
            phase = "idle"
            parts.append(losses[:status])
            val_parts.append(vlosses[:status])
            done += status
            rate = min(8 * rate, status * per_epoch / max(elapsed, 1e-6))
            if hooks.after_chunk(losses[:status], done) or stopped:
                break
    except KeyboardInterrupt as exc:
        if phase == "running":
            run.restore()  # the user's arrays hold the end of the last accepted chunk
        elif phase == "accepted":
            run.store()  # finish a write-back the interrupt may have cut short
        exc.history = _joined(parts)
        if validating:
            exc.val_history = _joined(val_parts)
        raise
    finally:
        hooks.close()
    return _joined(parts), _joined(val_parts)


def _joined(parts):
    return np.concatenate(parts) if parts else np.zeros(0)


def _last(parts):
    history = _joined(parts)
    return (float(history[-1]) if len(history) else None), history


def _work_per_epoch(run):
    """A chunk-sizing estimate: multiply-adds of an epoch plus a per-step overhead."""
    widths = run.net.widths
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    rows = run.x.shape[0] + (run.xv.shape[0] if run.xv.shape[0] else 0)
    return 3 * rows * macs + 500 * run.n_steps * len(run.net.weights)


def _locate_divergence(run, losses, vlosses, orders):
    """Replay the chunk to find its first bad epoch, and leave the user's arrays (and the
    optimizer) at the end of the epoch before it; returns that epoch's index in the chunk."""
    run.restore()
    with _blas_threads(run.uses_blas):
        bad = run.call(losses, vlosses, orders, KN.CHECK_EACH_EPOCH)
        run.restore()
        if bad > 0:
            run.call(losses[:bad], vlosses[:bad], orders[:bad], KN.CHECK_NONE)
    run.store()
    return bad


def _restore_best(run):
    """Early stopping without running out of patience: back to the best epoch."""
    n = run.params.shape[0]
    np.copyto(run.params, run.best[:n])
    np.copyto(run.state.reshape(-1), run.best[n:])
    run.track[KN.T] = run.track[KN.BEST_T]
    run.store()


_controller = []


def _blas_threads(uses_blas):
    """One BLAS thread for the kernels' products, the user's setting restored after.

    OpenBLAS's threads spin while they wait for work; beside another busy process
    a second thread made a run 10-60x slower (docs/design.md), and a layer small
    enough for fastnn gains little from it.
    """
    if not uses_blas or config.DISABLE_JIT:
        return contextlib.nullcontext()
    if not _controller:
        from threadpoolctl import ThreadpoolController
        _controller.append(ThreadpoolController())
    return _controller[0].limit(limits=1, user_api="blas")


class Hooks:
    """print_every, callback and the progress bar, run between compiled chunks."""

    def __init__(self, epochs, print_every, callback, callback_every, progress):
        self.print_every, self.callback, self.every = print_every, callback, callback_every
        self.bar = _Progress(epochs) if progress else None

    def chunk_epochs(self, done, epochs, affordable):
        """Epochs in the next chunk: what the time budget affords, cut at the next callback."""
        count = int(min(epochs - done, max(1, affordable)))
        if self.callback is not None:
            count = min(count, self.every - done % self.every)
        return count

    def after_chunk(self, losses, end):
        """Print and call back for the epochs just finished; True means stop."""
        start = end - len(losses)
        if self.print_every:
            for epoch in range(-start % self.print_every + start, end, self.print_every):
                print(epoch, losses[epoch - start])
        if self.bar is not None:
            self.bar.update(end, losses[-1])
        if self.callback is not None and end % self.every == 0:
            answer = self.callback(end - 1, float(losses[-1]))
            return answer is False or (isinstance(answer, np.bool_) and not answer)
        return False

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _Progress:
    """tqdm if installed, else one updating line on stderr."""

    def __init__(self, total):
        self.total = total
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar = None
            self.start = time.perf_counter()
        else:
            self.bar = tqdm(total=total, unit="epoch")

    def update(self, done, loss):
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
        else:
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"\repoch {done}/{self.total}  loss {loss:.6g}  {elapsed:.1f}s")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")


def predict(x, weights, biases=None, *, activation="relu", output="identity"):
    """The network's output for x: an (N, D_out) array in the weights' dtype.

    See ``fastnn.predict.__doc__`` (set in ``fastnn/_docs.py``) for the full reference.
    """
    net, code = check_predict(x, weights, biases, activation, output)
    rows = min(net.x.shape[0], PREDICT_ROWS)
    table, _, n_params = layer_table(net, rows)
    packed = Packed(net, table, n_params)
    lay, size = KN.workspace_layout(net.widths, rows)
    work = aligned_empty(size, net.dtype)
    out = np.empty((net.x.shape[0], net.widths[-1]), net.dtype)
    with _blas_threads(table[:, KN.BLAS].any()):
        KN.predict_rows(out, packed.params, work, lay, table, readonly(net.x), code)
    return out

