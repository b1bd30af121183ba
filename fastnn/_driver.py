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
from ._validate import (check_flag, check_hooks, check_network, check_params_finite,
                        check_predict, check_schedule, check_validation)
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
    best_epoch : int, the epoch (0-based) with the lowest validation loss; -1 when no
        validation loss was finite.
    stopped_early : bool, True when ``early_stopping`` ran out of patience (on the last
        epoch too).
    """
    loss: np.ndarray
    val_loss: np.ndarray
    best_epoch: int
    stopped_early: bool


def train(x, y, weights, biases=None, *, activation="relu", loss="sse", lr=None, optimizer=None,
          epochs, batch_size=None, shuffle=False, seed=None, validation=None, early_stopping=None,
          check_finite=True, print_every=None, callback=None, callback_every=1, progress=False):
    """Train a dense network in place, as the hand-written NumPy loop would.

    Each epoch runs forward, loss, backward and update over the rows of ``x`` in
    batches; the weights and biases are updated in place (``w -= lr * grad``).

    Parameters
    ----------
    x : array_like (N, n_0)
        Inputs, converted to the weights' dtype.
    y : array_like (N, n_L), or (N,)
        Targets. A 1-D y is the column of a one-output network, or the integer
        class labels of ``loss="softmax_ce"`` (bitwise the numbers of their one-hot rows).
    weights : list of ndarray (n_i, n_{i+1})
        One per layer, float32 or float64, all one dtype (it sets the computation's).
        Updated in place; any strides.
    biases : list of ndarray (n_{i+1},) or (1, n_{i+1}), optional
        One per layer, updated in place.
    activation : str or list of str, default "relu"
        Of the hidden layers: "relu", "sigmoid", "tanh" or "identity" (one name, or
        one per hidden layer). The output layer is linear; the loss may apply a softmax
        or a sigmoid.
    loss : {"sse", "mse", "softmax_ce", "sigmoid_bce"}, default "sse"
        On a batch of m rows with outputs z (n_L per row), the reported loss; then the
        gradient d loss / dz a step follows:

        * "sse": sum (z - y)^2; then 2 (z - y).
        * "mse": sum (z - y)^2 / (m n_L); then (z - y) / m, the gradient of
          sum (z - y)^2 / (2 m), as seed 004's notebook steps.
        * "softmax_ce": the mean over rows of -sum_c y_c log p_c, p = softmax(z);
          then (p - y) / m.
        * "sigmoid_bce": the mean over rows of sum max(z, 0) - z y + log(1 + exp(-|z|));
          then (sigmoid(z) - y) / m.
    lr : float, optional
        Plain SGD with this learning rate: ``p -= lr * grad``.
    optimizer : fastnn.SGD or fastnn.Adam, optional
        Instead of lr (give exactly one). It keeps its state: a later call with the
        same optimizer and arrays continues exactly.
    epochs : int
        Passes over the data (an upper bound: memory follows the epochs run).
    batch_size : int, optional
        Rows per step (the last batch may be shorter); None: the full batch.
    shuffle : bool, default False
        A new row order every epoch: ``rng.permutation(N)`` of
        ``rng = np.random.default_rng(seed)``.
    seed : int, SeedSequence or Generator, optional
    validation : (x_val, y_val), optional
        The validation loss (the loss of all its rows as one batch) after every epoch,
        computed in the compiled loop; train then returns a :class:`fastnn.History`.
    early_stopping : int, optional
        Stop after this many epochs without a lower validation loss, and leave the
        weights and the optimizer's state at the best epoch (bitwise what training
        ``best_epoch + 1`` epochs gives); they also end there when the epochs run out.
    check_finite : bool, default True
        Stop with :class:`fastnn.DivergenceError` when a loss or a parameter becomes
        NaN or Inf; False behaves like the NumPy loop.
    print_every : int, optional
        Print ``epoch loss`` every this many epochs, as the seed notebooks do.
    callback : callable(epoch, loss), optional
        Called every ``callback_every`` epochs with the weights and biases up to date;
        returning False stops training after that epoch. It may change their values:
        training continues from what it leaves in the arrays. A change to the
        optimizer's settings takes effect at the next call.
    callback_every : int, default 1
    progress : bool, default False
        A progress bar (tqdm if installed, else a line on stderr).

    Returns
    -------
    ndarray (epochs run,) float64
        The loss of every epoch: the mean of its steps' losses, each computed on its
        batch before that batch's update. With ``validation``, a
        :class:`fastnn.History` (``loss``, ``val_loss``, ``best_epoch``, ``stopped_early``).

    Raises
    ------
    TypeError, ValueError
        Bad input, naming the argument, what was expected and what was found;
        nothing is modified.
    DivergenceError
        A non-finite loss or parameter (with ``check_finite``); the arrays hold the
        last finite epoch, ``.history`` the losses before it.
    KeyboardInterrupt
        Within a fraction of a second; the arrays hold a completed epoch and the
        exception's ``.history`` the losses of the completed epochs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((64, 1000)), rng.standard_normal((64, 10))
    >>> w1, w2 = rng.standard_normal((1000, 100)), rng.standard_normal((100, 10))
    >>> history = fastnn.train(x, y, [w1, w2], lr=1e-6, epochs=500)
    >>> history[-1] < 1e-3 * history[0]
    True
    """
    optimizer = resolve(lr, optimizer)
    epochs, batch_size = check_schedule(epochs, batch_size, shuffle, seed)
    check_hooks(print_every, callback, callback_every, progress)
    check_flag(check_finite, "check_finite")
    net = check_network(x, y, weights, biases, activation, loss)
    optimizer.check_dtype(net.dtype)
    validation, patience = check_validation(validation, early_stopping, net, loss)
    setup = Setup(batch_size=batch_size, in_order=not shuffle, validation=validation,
                  patience=patience, check_finite=check_finite)
    run = Run(net, optimizer, setup)
    orders = shuffled_orders(np.random.default_rng(seed)) if shuffle else None
    hooks = Hooks(epochs, print_every, callback, callback_every, progress)
    losses, val_losses = fit(run, epochs, orders, hooks)
    return losses if validation is None else history(run, losses, val_losses)


class shuffled_orders:
    """Row orders as train's shuffle draws them: rng.permutation(n_rows) once per epoch.

    A chunk's orders are drawn ahead; ``keep(used)`` leaves ``rng`` as if only the first
    ``used`` of them had been drawn (a Generator the caller passed as seed then continues
    where the epochs run left it, as in the NumPy loop)."""

    def __init__(self, rng):
        self.rng, self.before, self.drawn = rng, None, 0

    def __call__(self, count, n_rows):
        self.before, self.drawn, self.n_rows = self.rng.bit_generator.state, count, n_rows
        out = np.empty((count, n_rows), np.int64)
        for i in range(count):
            out[i] = self.rng.permutation(n_rows)
        return out

    def keep(self, used):
        if self.before is not None and used < self.drawn:
            self.rng.bit_generator.state = self.before
            for _ in range(used):
                self.rng.permutation(self.n_rows)
        self.before = None


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
    (None: every epoch in row order); ``orders.keep(used)``, if it has one, is told how
    many of them were used."""
    check_start(run)
    parts, val_parts = [], []
    done, rate = 0, 1e9  # rate: work units per second, re-measured after every chunk
    per_epoch = work_per_epoch(run)
    try:
        while done < epochs:
            count = hooks.chunk_epochs(done, epochs, CHUNK_SECONDS * rate / per_epoch)
            if run.uses_blas:
                with _blas_threads(True):
                    losses, vlosses, bad, elapsed = advance(run, count, orders)
            else:  # no context manager around a call that may last a few microseconds
                losses, vlosses, bad, elapsed = advance(run, count, orders)
            if hasattr(orders, "keep"):  # the diverging epoch drew its order too
                orders.keep(len(losses) + (bad is not None))
            parts.append(losses)
            val_parts.append(vlosses)
            if bad is not None:
                if bad == 0 and hooks.called_back(done):
                    blame_callback(run)
                raise DivergenceError(done + bad, *_last(parts), run.optimizer.lr,
                                      val_history=_joined(val_parts) if run.validating else None)
            done += len(losses)
            rate = min(8 * rate, len(losses) * per_epoch / max(elapsed, 1e-6))
            if hooks.after_chunk(losses, done) or run.track[KN.STOPPED]:
                break
            if hooks.called_back(done):
                run.reload()  # the callback may have changed the user's arrays
    except KeyboardInterrupt as exc:
        settle(run)
        if hasattr(orders, "keep"):
            orders.keep(0)  # only an interrupted chunk's orders are still pending
        exc.history = _joined(parts)
        if run.validating:
            exc.val_history = _joined(val_parts)
        raise
    finally:
        hooks.close()
    return _joined(parts), _joined(val_parts)


def check_start(run, hint=" (or pass check_finite=False)", names=("weights", "biases")):
    """With check_finite, every parameter must be finite before training."""
    if run.check == KN.CHECK_LOSS and not np.isfinite(run.params).all():
        check_params_finite(run.net.weights, run.net.biases, hint, names=names)


def blame_callback(run, where=""):
    """The chunk after a callback diverged at once: a non-finite value the callback left in
    the arrays gets a ValueError that says so (checked only here, where it costs nothing)."""
    check_params_finite(run.net.weights, run.net.biases, ", left there by the callback",
                        where=where)


def advance(run, count, orders):
    """Up to count epochs in one compiled call, from the last accepted state.

    Returns (losses, val_losses, bad, seconds). bad is None when the epochs were accepted
    and written back (early stopping may end them sooner than count); else it is the
    index of the first non-finite epoch, and the user's arrays hold the epoch before it.
    The caller sets the BLAS threads (_blas_threads)."""
    order, count = _chunk_orders(run, orders, count)
    losses, vlosses = np.zeros(count), np.zeros(count if run.validating else 0)
    run.checkpoint()
    run.phase = "running"
    t0 = time.perf_counter()
    status = run.call(losses, vlosses, order, run.check)
    elapsed = time.perf_counter() - t0
    if status != count and (status == KN.PARAMS_NOT_FINITE or not run.track[KN.STOPPED]):
        bad = _locate_divergence(run, losses, vlosses, order)
        run.phase = "idle"
        return losses[:bad], vlosses[:bad], bad, elapsed
    run.phase = "accepted"
    run.store()
    run.phase = "idle"
    if status == count:
        return losses, vlosses, None, elapsed
    return losses[:status], vlosses[:status], None, elapsed


def settle(run):
    """After an interrupt: the user's arrays and the optimizer at a completed epoch."""
    if run.phase == "running":
        run.restore()  # the user's arrays hold the end of the last accepted chunk
    elif run.phase == "accepted":
        run.store()  # finish a write-back the interrupt may have cut short
    run.phase = "idle"


def _joined(parts):
    return np.concatenate(parts) if parts else np.zeros(0)


def _last(parts):
    history = _joined(parts)
    return (float(history[-1]) if len(history) else None), history


def work_per_epoch(run):
    """A chunk-sizing estimate for a run (see work_per_epoch_of), validation included."""
    return (work_per_epoch_of(run.net.widths, run.n_rows, run.batch)
            + work_per_epoch_of(run.net.widths, run.xv.shape[0], max(run.xv.shape[0], 1)) / 3)


def work_per_epoch_of(widths, n_rows, batch):
    """Multiply-adds of an epoch's forward and backward, plus a per-step overhead."""
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    return 3 * n_rows * macs + 500 * -(-n_rows // batch) * (len(widths) - 1)


def _chunk_orders(run, orders, count):
    """The rows of the next count epochs (at most MAX_ORDER_ELEMENTS drawn ahead) as the
    kernels take them, and count."""
    if orders is None and run.rows is None:
        return NO_ORDER, count
    count = max(1, min(count, MAX_ORDER_ELEMENTS // run.n_rows))
    if orders is None:  # a subset of the rows, in its order, every epoch
        return np.broadcast_to(run.rows, (count, run.n_rows)).copy(), count
    order = orders(count, run.n_rows)
    return (order if run.rows is None else run.rows[order]), count


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


def _blas_threads(uses_blas):
    """One BLAS thread for the kernels' products, the user's setting restored after.

    OpenBLAS's threads spin while they wait for work; beside another busy process
    a second thread made runs many times slower (docs/design.md), and a layer small
    enough for fastnn gains little from it.
    """
    if not uses_blas or config.DISABLE_JIT:
        return contextlib.nullcontext()
    return _OneBlasThread()


class _OneBlasThread:
    """Set every BLAS library to one thread, and back to its own count on exit; a library
    already on one thread is left alone (two calls per chunk, not threadpoolctl's rescan)."""

    libraries = None  # threadpoolctl's controllers of the loaded BLAS libraries, found once

    def __enter__(self):
        if _OneBlasThread.libraries is None:
            from threadpoolctl import ThreadpoolController
            _OneBlasThread.libraries = ThreadpoolController().select(
                user_api="blas").lib_controllers
        self.changed = []
        for library in _OneBlasThread.libraries:
            threads = library.get_num_threads()
            if threads != 1:
                library.set_num_threads(1)
                self.changed.append((library, threads))

    def __exit__(self, *exc):
        for library, threads in self.changed:
            library.set_num_threads(threads)


class Hooks:
    """print_every, callback and the progress bar, run between compiled chunks."""

    def __init__(self, epochs, print_every, callback, callback_every, progress, many=False):
        self.print_every, self.callback, self.every = print_every, callback, callback_every
        self.bar = (None if not progress else _Progress.of_networks(epochs) if many
                    else _Progress(epochs))
        self.bar_done = 0

    def chunk_epochs(self, done, epochs, affordable):
        """Epochs in the next chunk: what the time budget affords, cut at the next callback."""
        count = int(min(epochs - done, max(1, affordable)))
        if self.callback is not None:
            count = min(count, self.every - done % self.every)
        return count

    def calls_back(self, end):
        """True when the callback runs after the epochs up to ``end``."""
        return self.callback is not None and end % self.every == 0

    def called_back(self, done):
        """True when the callback ran after the first ``done`` epochs (done > 0)."""
        return done > 0 and self.calls_back(done)

    def after_chunk(self, losses, end):
        """Print and call back for the epochs just finished; True means stop."""
        start = end - len(losses)
        if self.print_every:
            for epoch in range(-start % self.print_every + start, end, self.print_every):
                print(epoch, losses[epoch - start])
        if self.bar is not None:
            self.bar.update(end, losses[-1])
        if self.calls_back(end):
            answer = self.callback(end - 1, float(losses[-1]))
            return answer is False or (isinstance(answer, np.bool_) and not answer)
        return False

    def after_chunk_many(self, losses, end, active):
        """train_many's hooks after a round: losses (K, epochs of the round), ``active``
        networks still training. The callback gets the last epoch's (K,) losses."""
        self.bar_done += losses.shape[1] * active
        if self.bar is not None:
            self.bar.update(self.bar_done, finite_mean(losses[:, -1]))
        if self.calls_back(end):
            answer = self.callback(end - 1, losses[:, -1].copy())
            return answer is False or (isinstance(answer, np.bool_) and not answer)
        return False

    def close(self):
        if self.bar is not None:
            self.bar.close()


def finite_mean(values):
    """The mean of the finite values (NaN when there is none, without a warning)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


class _Progress:
    """tqdm if installed, else one updating line on stderr."""

    def __init__(self, total, unit="epoch", label="loss"):
        self.total, self.unit, self.label = total, unit, label
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar = None
            self.start = time.perf_counter()
        else:
            self.bar = tqdm(total=total, unit=unit)

    @classmethod
    def of_networks(cls, total):
        """train_many's bar: epochs summed over the networks, their mean loss."""
        return cls(total, unit="network-epoch", label="mean loss")

    def update(self, done, loss):
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix({self.label: f"{loss:.6g}"}, refresh=False)
        else:
            elapsed = time.perf_counter() - self.start
            sys.stderr.write(f"\r{self.unit} {done}/{self.total}  {self.label} {loss:.6g}"
                             f"  {elapsed:.1f}s")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")


def predict(x, weights, biases=None, *, activation="relu", output="identity"):
    """The network's output for x.

    Parameters
    ----------
    x : array_like (N, n_0)
    weights, biases, activation
        As in :func:`fastnn.train`; only read (read-only arrays are fine).
    output : {"identity", "softmax", "sigmoid"}, default "identity"
        Applied to the output layer: "softmax" gives the class probabilities of a
        network trained with "softmax_ce", "sigmoid" those of "sigmoid_bce".

    Returns
    -------
    ndarray (N, n_L) in the weights' dtype

    Raises
    ------
    TypeError, ValueError
        Bad input, naming the argument.

    Examples
    --------
    >>> probabilities = fastnn.predict(x, [w1, w2], activation="tanh", output="softmax")
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

