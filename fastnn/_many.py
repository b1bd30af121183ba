"""train_many() and predict_many(): K networks at once, on every core or on a Dask cluster.

Each network gets the Run that ``fastnn.train`` would build for it, so it does
exactly what ``train`` does on that network alone. The networks advance in
rounds of a chunk of epochs; within a round, a pool of threads takes networks
one by one (the kernels release the GIL), so a thread slowed by another process
simply takes fewer networks; the round ends when every network's chunk is done
(futures, no spinning). Between rounds: callbacks, progress, Ctrl-C.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import config

from . import _driver
from ._errors import DivergenceError
from ._state import Run, Setup
from ._validate import (check_flag, check_hooks, check_many, check_params_finite, check_schedule,
                        check_task_seconds)
from .optim import resolve

ON_DIVERGENCE = ("raise", "freeze")
TASK_SECONDS = 0.1  # the least work a Dask task should carry (Dask costs ~1 ms per task)


def train_many(x, y, weights, biases=None, *, activation="relu", loss="sse", lr=None,
               optimizer=None, epochs, batch_size=None, shuffle=False, seed=None, rows=None,
               check_finite=True, on_divergence="raise", callback=None, callback_every=1,
               progress=False, client=None, task_seconds=TASK_SECONDS):
    """Train K networks at once (ensembles, sweeps, bootstrap, cross-validation).

    Network k computes exactly what ``fastnn.train`` computes on it alone, with its lr,
    its optimizer settings and its seed. The networks run on threads over the usable
    CPUs (at most the environment variable FASTNN_THREADS), or on a Dask cluster.

    Parameters
    ----------
    x : array_like (N, n_0), or (K, N, n_0) for data per network
    y : array_like (N, n_L) or (N,), or (K, N, n_L) per network
        A 2-D y is shared when x is, and one row per network (labels, or one output)
        when x is per network.
    weights : list of ndarray (K, n_i, n_{i+1})
        Network k's weights are ``weights[i][k]``; updated in place.
    biases : list of ndarray (K, n_{i+1}) or (K, 1, n_{i+1}), optional
    activation, loss, epochs, batch_size, shuffle, check_finite
        As in :func:`fastnn.train`.
    lr : float or array (K,), optional
        Plain SGD, one learning rate for all or one per network.
    optimizer : fastnn.SGD or fastnn.Adam, optional
        Its numeric settings may be arrays of one value per network. It keeps the
        state of all K networks for a later call with the same arrays.
    seed : int, SeedSequence or Generator, optional
        Network k draws its row orders from
        ``np.random.default_rng(np.random.SeedSequence(seed).spawn(K)[k])`` (a
        Generator: ``seed.spawn(K)[k]``): pass that seed to ``fastnn.train`` to
        reproduce network k.
    rows : list of K integer arrays, optional
        Network k trains on ``x[rows[k]], y[rows[k]]`` (bootstrap samples with
        repeats, cross-validation folds) without copying x.
    on_divergence : {"raise", "freeze"}, default "raise"
        "raise": :class:`fastnn.DivergenceError` naming the networks that diverged
        (``.networks``, ``.epochs``); every network holds its last finite epoch.
        "freeze": a diverged network stops at its last finite epoch (NaN in its row of
        the history after it) and the others train on.
    callback : callable(epoch, losses), optional
        losses: the (K,) losses of that epoch (NaN for frozen networks). Returning
        False stops every network; changed arrays are trained on from what they hold
        (frozen networks stay as they are). Not with ``client``.
    callback_every : int, default 1
    progress : bool, default False
        A bar over networks x epochs.
    client : dask.distributed.Client, optional
        Train on its cluster: the networks are cut into tasks of at least
        ``task_seconds`` of estimated work, the data is scattered once, and the
        results are written into your arrays when every task has returned (a worker
        that dies has its task rerun; if Dask gives up, the arrays are unchanged).
        Bitwise the local results.
    task_seconds : float, default 0.1

    Returns
    -------
    ndarray (K, epochs run) float64
        Row k: network k's losses, as fastnn.train returns them.

    Examples
    --------
    >>> w1 = 0.1 * rng.standard_normal((8, 5, 16)); w2 = 0.1 * rng.standard_normal((8, 16, 1))
    >>> losses = fastnn.train_many(x, y, [w1, w2], lr=np.geomspace(1e-3, 1e-1, 8), epochs=100,
    ...                            on_divergence="freeze")
    >>> best = np.nanargmin(losses[:, -1])
    """
    nets, subsets = check_many(x, y, weights, biases, activation, loss, rows)
    optimizer = resolve(lr, optimizer, networks=len(nets))
    optimizer.check_dtype(nets[0].dtype)
    epochs, batch_size = check_schedule(epochs, batch_size, shuffle, seed)
    check_hooks(None, callback, callback_every, progress)
    check_flag(check_finite, "check_finite")
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"on_divergence must be one of {ON_DIVERGENCE}, found {on_divergence!r}")
    check_task_seconds(task_seconds)
    if client is not None:
        from ._cluster import check_client
        check_client(client, callback)
    if check_finite:  # before the optimizer is bound to the arrays, or anything is sent
        check_params_finite(weights, biases, stacked=True)
    if client is not None:
        from ._cluster import train_on_cluster
        return train_on_cluster(client, nets, subsets, optimizer, weights, biases, dict(
            epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=seed,
            check_finite=check_finite, on_divergence=on_divergence,
            task_seconds=task_seconds), progress)
    n_threads = threads()  # FASTNN_THREADS checked before the optimizer is bound
    runs = build_runs(nets, subsets, optimizer, weights, biases, batch_size, shuffle,
                      check_finite)
    orders = network_orders(seed, len(runs)) if shuffle else [None] * len(runs)
    hooks = _driver.Hooks(epochs * len(runs), None, callback, callback_every, progress,
                          many=True)
    return fit_many(runs, epochs, orders, hooks, on_divergence, n_threads)


def build_runs(nets, subsets, optimizer, weights, biases, batch_size, shuffle, check_finite):
    """One Run per network, as fastnn.train builds it; the optimizer keeps the state of all
    (each network's share is updated in place)."""
    arrays = list(weights) + [b for b in (biases or []) if b is not None]
    n_params = sum(a[0].size for a in arrays)
    buffers, steps = optimizer.bind_many(arrays, len(nets), n_params, nets[0].dtype)
    runs = []
    for k, (net, subset) in enumerate(zip(nets, subsets)):
        member = optimizer.member(k, buffers, steps)
        setup = Setup(batch_size=batch_size, in_order=not shuffle, rows=subset,
                      check_finite=check_finite)
        runs.append(Run(net, member, setup))
    optimizer.keep_many(arrays, buffers, steps)
    return runs


def network_orders(seed, count):
    """Each network's row orders: network k draws from default_rng(SeedSequence(seed).spawn(K)[k])
    (a Generator seed spawns its children with Generator.spawn)."""
    if isinstance(seed, np.random.Generator):
        rngs = seed.spawn(count)
    else:
        sequence = seed if isinstance(seed, np.random.SeedSequence) else \
            np.random.SeedSequence(seed)
        rngs = [np.random.default_rng(child) for child in sequence.spawn(count)]
    return [_driver.shuffled_orders(rng) for rng in rngs]


def threads():
    """Threads for train_many: the usable CPUs, at most FASTNN_THREADS."""
    if config.DISABLE_JIT:  # interpreted kernels hold the GIL
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = os.environ.get("FASTNN_THREADS", "").strip()
    if limit:
        if not limit.isdigit() or int(limit) < 1:
            raise ValueError(f"the environment variable FASTNN_THREADS must be an integer "
                             f">= 1, found {limit!r}")
        cpus = min(cpus or 1, int(limit))
    return max(1, cpus or 1)


def fit_many(runs, epochs, orders, hooks, on_divergence, n_threads):
    """Train every run for up to ``epochs`` epochs in rounds; returns the (K, epochs run)
    losses, NaN after a frozen network's last finite epoch."""
    count = len(runs)
    history = [[] for _ in runs]
    active, diverged = list(range(count)), {}
    done, rate = 0, 1e9
    per_epoch = sum(_driver.work_per_epoch(r) for r in runs) / min(n_threads, count)
    uses_blas = any(r.uses_blas for r in runs)
    pool = ThreadPoolExecutor(min(n_threads, count), thread_name_prefix="fastnn")
    pending = {}  # this round's futures until their losses are in history
    try:
        while done < epochs and active:
            chunk = hooks.chunk_epochs(done, epochs, _driver.CHUNK_SECONDS * rate / per_epoch)
            t0 = time.perf_counter()
            with _driver._blas_threads(uses_blas):
                pending = {k: pool.submit(_driver.advance, runs[k], chunk, orders[k])
                           for k in active}
                results = {k: f.result() for k, f in pending.items()}
            elapsed = time.perf_counter() - t0
            this_round = np.full((count, chunk), np.nan)  # NaN: frozen, or diverged in it
            for k, (losses, _, bad, _) in results.items():
                history[k].append(losses)
                del pending[k]
                this_round[k, :len(losses)] = losses
                if bad is not None:
                    if bad == 0 and hooks.called_back(done):
                        _driver.blame_callback(runs[k], where=f"network {k}: ")
                    diverged[k] = done + bad
            active = [k for k in active if k not in diverged]
            if diverged and on_divergence == "raise":
                raise DivergenceError.of_networks(diverged, _padded(history, done + chunk))
            done += chunk
            rate = min(8 * rate, chunk * per_epoch / max(elapsed, 1e-6))
            if hooks.after_chunk_many(this_round, done, len(active)):
                return _padded(history, done)
            if hooks.called_back(done):
                for k in active:
                    runs[k].reload()  # the callback may have changed the user's arrays
    except KeyboardInterrupt as exc:
        pool.shutdown(wait=True, cancel_futures=True)  # chunks already running finish
        for k, future in pending.items():  # and were stored: their losses join the history
            if future.done() and not future.cancelled() and future.exception() is None:
                history[k].append(future.result()[0])
        for run in runs:
            _driver.settle(run)
        exc.history = _padded(history, max((sum(len(p) for p in h) for h in history), default=0))
        raise
    finally:
        pool.shutdown(wait=True)
        hooks.close()
    return _padded(history, epochs)  # every epoch run, or every network frozen: NaN after


def _padded(history, epochs):
    """(K, epochs) losses from each network's chunks, NaN where a network has none."""
    out = np.full((len(history), epochs), np.nan)
    for k, parts in enumerate(history):
        losses = np.concatenate(parts) if parts else np.zeros(0)
        out[k, :min(epochs, len(losses))] = losses[:epochs]
    return out


def predict_many(x, weights, biases=None, *, activation="relu", output="identity"):
    """The K networks' outputs for x: an array (K, N, n_L).

    x is shared (N, n_0) or one per network (K, N, n_0); weights, biases, activation
    and output as in :func:`fastnn.train_many` and :func:`fastnn.predict`.
    """
    nets, _ = check_many(x, None, weights, biases, activation, "sse", update=False, targets=False)
    return np.stack([_driver.predict(net.x, net.weights, [b for b in net.biases]
                                     if biases is not None else None, activation=activation,
                                     output=output) for net in nets])

