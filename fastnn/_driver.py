"""The driver: validated arrays -> flat buffers -> compiled loop -> arrays out.

``train`` packs the parameters into one flat buffer, runs the compiled
``train_loop`` over chunks of epochs (about 0.1 s each, so Ctrl-C, callbacks and
progress stay responsive), and after every chunk writes the parameters back into
the user's arrays. The user's arrays therefore always hold the end of a
completed, finite epoch, whatever interrupts training.
"""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import config

from . import kernels as K
from ._errors import DivergenceError
from ._validate import check_network, check_predict, check_schedule

CHUNK_SECONDS = 0.1           # target wall time of one compiled call
MAX_ORDER_ELEMENTS = 1 << 22  # cap on the row orders drawn ahead for one chunk
PREDICT_ROWS = 4096           # rows per batch in predict
TEAM_THREADS = 2              # threads of a kernels.team run (1: all parts in the caller)


ALIGN = 64  # bytes: a cache line, so no vector load of a row straddles two


def _aligned_empty(n, dtype):
    """An uninitialised 1-D array of n elements starting on an ALIGN-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(n + ALIGN // itemsize, dtype)
    skip = (-raw.ctypes.data % ALIGN) // itemsize
    return raw[skip:skip + n]


class _Packed:
    """The network as the kernels see it: a flat parameter buffer and its table.

    ``scratch`` elements of kernel workspace (``self.work``) follow the parameters
    in the same allocation, both aligned to ALIGN bytes: malloc only promises 16,
    and full-batch mlp3_gd runs 1.14x slower with its activation rows off a 32-byte
    boundary (measured: 4.85 against 4.25 ms).
    """

    def __init__(self, net, scratch=0):
        self.net = net
        n_layers = len(net.weights)
        table = np.zeros((n_layers, 5), np.int64)
        off = 0
        for i, w in enumerate(net.weights):
            table[i, K.N_IN], table[i, K.N_OUT] = w.shape
            table[i, K.ACT] = net.activations[i]
            table[i, K.W_OFF] = off
            off += w.size
        for i, b in enumerate(net.biases):
            table[i, K.B_OFF] = -1 if b is None else off
            off += 0 if b is None else b.size
        self.table = table
        step = ALIGN // net.dtype.itemsize
        n_params = -(-off // step) * step
        buffer = _aligned_empty(n_params + scratch, net.dtype)
        self.params = buffer[:off]
        self.work = buffer[n_params:]
        self.views = []  # (user array, flat view shaped like it)
        for i, w in enumerate(net.weights):
            o = table[i, K.W_OFF]
            self.views.append((w, self.params[o:o + w.size].reshape(w.shape)))
        for i, b in enumerate(net.biases):
            if b is not None:
                o = table[i, K.B_OFF]
                self.views.append((b, self.params[o:o + b.size].reshape(b.shape)))
        self.load()

    def load(self):
        """user arrays -> flat buffer"""
        for user, flat in self.views:
            np.copyto(flat, user)

    def store(self):
        """flat buffer -> user arrays (any strides: slices and Fortran order are fine)"""
        for user, flat in self.views:
            np.copyto(user, flat)


def _readonly(a):
    # One compiled signature per dtype and code path: data always reaches the kernels
    # read-only.
    v = a.view()
    v.flags.writeable = False
    return v


def _check_hooks(print_every, callback, callback_every, progress):
    for name, value, optional in (("print_every", print_every, True),
                                  ("callback_every", callback_every, False)):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be {'None or ' if optional else ''}an int >= 1, "
                            f"found {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be {'None or ' if optional else ''}an int >= 1, "
                             f"found {value!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(epoch, loss), "
                        f"found {type(callback).__name__}")
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, found {type(progress).__name__}")


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


_team_lock = threading.Lock()  # one two-thread team at a time: never more threads than cores
_team_pool = None


def _after_fork_in_child():
    # A forked child has no pool thread (a task submitted to the inherited pool would
    # never run, and its partner would wait for it); a new pool starts on first use.
    global _team_lock, _team_pool
    _team_lock, _team_pool = threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _team_threads():
    """Threads for a kernels.team run: TEAM_THREADS, capped by the usable CPUs and by the
    environment variable FASTNN_THREADS (e.g. 1 when every core already runs a process)."""
    if config.DISABLE_JIT:  # interpreted kernels hold the GIL: a partner could only wait
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = os.environ.get("FASTNN_THREADS", "").strip()
    if limit:
        if not limit.isdigit() or int(limit) < 1:
            raise ValueError(f"the environment variable FASTNN_THREADS must be an integer "
                             f">= 1, found {limit!r}")
        cpus = min(cpus or 1, int(limit))
    return max(1, min(TEAM_THREADS, cpus or 1))


class _Team:
    """The shared buffers of a ``kernels.team`` run, and its one or two threads.

    Member 0 runs in the calling thread on the packed parameters, member 1 (when a
    second CPU is free) in a pool thread on its own copy; both end a call with the
    same parameters. The parts, hence the results, never depend on the thread count.
    """

    def __init__(self, packed, threads):
        n = packed.params.shape[0]
        dtype = packed.params.dtype
        size = K.team_grads_size(n)
        self.grads = _aligned_empty(2 * K.team.PARTS * size, dtype).reshape(2, K.team.PARTS, size)
        self.part_loss = _aligned_empty(2 * K.team.PARTS * K.team.LINE, np.float64).reshape(
            2, K.team.PARTS, K.team.LINE)
        self.sync = _aligned_empty(TEAM_THREADS * K.team.LINE, np.int64)
        self.params = _aligned_empty(n, dtype)  # member 1's copy
        self.threads = threads

    def _member(self, team, losses, params, rest):
        try:
            return K.train_team(losses, params, *rest, team, self.grads, self.part_loss,
                                self.sync)
        except BaseException:
            # let a waiting partner run on to the end of its call instead of waiting forever
            self.sync[team[K.team.MEMBER] * K.team.LINE] = np.iinfo(np.int64).max
            raise

    def run(self, losses, params, *rest):
        """train_team on one or two threads; returns its status"""
        global _team_pool
        parts = K.team.PARTS
        self.sync[:] = 0
        if self.threads < 2 or not _team_lock.acquire(blocking=False):
            return self._member(np.array([0, parts, 1, 0], np.int64), losses, params, rest)
        try:
            if _team_pool is None:
                _team_pool = ThreadPoolExecutor(1, thread_name_prefix="fastnn-team")
            np.copyto(self.params, params)
            partner = _team_pool.submit(self._member, np.array([1, parts, 2, 1], np.int64),
                                        np.empty_like(losses), self.params, rest)
            status = self._member(np.array([0, 1, 2, 0], np.int64), losses, params, rest)
            other = partner.result()
        finally:
            _team_lock.release()
        if K.team.TEAM_TIMEOUT in (status, other) or status != other:
            raise RuntimeError(f"fastnn: the two threads of a training call disagree "
                               f"(statuses {status} and {other})")
        return status


def train(x, y, weights, biases=None, *, activation="relu", loss="sse", lr, epochs,
          batch_size=None, shuffle=False, seed=None, check_finite=True,
          print_every=None, callback=None, callback_every=1, progress=False):
    """Train a dense network in place; returns the loss history (float64, one per epoch).

    See the README for the exact formulas. Weights (and biases) are updated in
    place, like ``w -= lr * grad`` in a NumPy loop.
    """
    lr, epochs, batch_size = check_schedule(lr, epochs, batch_size, shuffle, seed)
    _check_hooks(print_every, callback, callback_every, progress)
    threads = _team_threads()  # checks FASTNN_THREADS on every call, not only where used
    net = check_network(x, y, weights, biases, activation, loss)
    n_rows = net.x.shape[0]
    batch = n_rows if batch_size is None else min(batch_size, n_rows)
    gram = K.gram_size(net.widths, batch, n_rows, in_order=not shuffle)
    parts = K.team_parts(net.widths, batch, n_rows, in_order=not shuffle)
    if parts:  # full batch of small layers: split over two threads (kernels/team.py)
        packed = _Packed(net, K.team_workspace(net.widths, parts))
        team = _Team(packed, threads)
    else:
        packed = _Packed(net, K.workspace_size(net.widths, batch) + gram)
    if check_finite and not np.isfinite(packed.params).all():
        raise ValueError("weights and biases must be finite before training "
                         "(or pass check_finite=False)")
    n_steps = -(-n_rows // batch)
    work = packed.work
    cfg = np.array([net.loss, batch, K.CHECK_LOSS if check_finite else K.CHECK_NONE,
                    K.GRAM_START], np.int64)
    xr, yr = _readonly(net.x), _readonly(net.y)
    rng = np.random.default_rng(seed) if shuffle else None
    no_order = np.empty((0, 0), np.int64)
    paths = K.train_paths(net.widths, batch, n_rows, not shuffle)  # compile what runs

    # The Gram path (kernels.gram_size) carries state in work from chunk to chunk; a
    # replay of a chunk starts from a copy of it, taken before the chunk.
    state = K.gram_state(work, net.widths, batch) if gram else work[:0]
    saved = state.copy()

    def run(count, start, orders, check=None):
        """count epochs from the flat buffer's state; returns the kernel's status"""
        c = cfg if check is None else np.array([cfg[K.LOSS], cfg[K.BATCH], check, cfg[K.GRAM]],
                                                np.int64)
        order = no_order if orders is None else orders[start:start + count]
        if parts:
            return team.run(history[start_epoch + start:start_epoch + start + count],
                            packed.params, work, packed.table, c, lr, xr, yr)
        return K.train_loop(history[start_epoch + start:start_epoch + start + count],
                            packed.params, work, packed.table, c, lr, xr, yr, order, *paths)

    def restore():
        """the flat buffer and the Gram state as they were before the current chunk"""
        packed.load()
        np.copyto(state, saved)

    history = np.zeros(epochs, np.float64)
    # work per epoch, in multiply-adds plus a per-step overhead, to size the first chunk
    work_per_epoch = 3 * n_rows * sum(a * b for a, b in zip(net.widths, net.widths[1:]))
    work_per_epoch += 500 * n_steps * len(net.weights)
    rate = 1e9  # work units per second; re-measured after every chunk
    bar = _Progress(epochs) if progress else None
    start_epoch = 0
    synced = True  # the flat buffer holds a completed epoch
    try:
        while start_epoch < epochs:
            count = int(min(epochs - start_epoch,
                            max(1, CHUNK_SECONDS * rate / work_per_epoch)))
            if callback is not None:  # stop right after the next epoch that calls back
                count = min(count, callback_every - start_epoch % callback_every)
            orders = None
            if rng is not None:
                count = min(count, max(1, MAX_ORDER_ELEMENTS // n_rows))
                orders = np.empty((count, n_rows), np.int64)
                for i in range(count):
                    orders[i] = rng.permutation(n_rows)
            np.copyto(saved, state)
            t0 = time.perf_counter()
            synced = False
            status = run(count, 0, orders)
            elapsed = time.perf_counter() - t0
            if status != count:  # a loss or a parameter became non-finite
                bad = _locate_divergence(packed, run, restore, count, orders)
                history = history[:start_epoch + bad]
                synced = True
                last = float(history[-1]) if len(history) else None
                raise DivergenceError(start_epoch + bad, last, history, lr)
            synced = True
            packed.store()
            cfg[K.GRAM] = K.GRAM_CONTINUE
            rate = min(8 * rate, count * work_per_epoch / max(elapsed, 1e-6))
            end = start_epoch + count
            stop = _report(history, start_epoch, end, print_every, callback, callback_every)
            if bar is not None:
                bar.update(end, history[end - 1])
            start_epoch = end
            if stop:
                history = history[:end]
                break
    except KeyboardInterrupt:
        if synced and not (check_finite and not K.all_finite(packed.params)):
            packed.store()  # finish (or redo) the write-back of a completed epoch
        raise
    finally:
        if bar is not None:
            bar.close()
    return history


def _locate_divergence(packed, run, restore, count, orders):
    """Replay the chunk from the user's arrays to find the first bad epoch, and
    leave the user's arrays at the end of the epoch before it."""
    restore()
    bad = run(count, 0, orders, check=K.CHECK_EACH_EPOCH)
    restore()
    if bad > 0:
        run(bad, 0, orders, check=K.CHECK_NONE)
        packed.store()
    return bad


def _report(history, start, end, print_every, callback, callback_every):
    """Print and call back for the epochs just finished; True means stop."""
    for epoch in range(start, end):
        if print_every and epoch % print_every == 0:
            print(epoch, history[epoch])
    if callback is not None and end % callback_every == 0:
        answer = callback(end - 1, float(history[end - 1]))
        return answer is False or (isinstance(answer, np.bool_) and not answer)
    return False


def predict(x, weights, biases=None, *, activation="relu"):
    """The network's output for x: array of shape (N, D_out) in the weights' dtype."""
    net = check_predict(x, weights, biases, activation)
    rows = min(net.x.shape[0], PREDICT_ROWS)
    packed = _Packed(net, K.workspace_size(net.widths, rows, with_grad=False))
    work = packed.work
    out = np.empty((net.x.shape[0], net.widths[-1]), net.dtype)
    small = None if K.gemm_only(net.widths, rows, net.x.shape[0]) else True
    K.predict_loop(out, packed.params, work, packed.table, _readonly(net.x), small)
    return out
