"""train_many on a Dask cluster: the networks cut into tasks, the data scattered once.

Each task trains a group of networks with the same code as the local path (one
thread per task: the cluster's workers are the parallelism), from copies of their
parameters and optimizer state, and returns them; the caller's arrays are written
only when every task has returned, in network order. A task whose worker dies is
run again by Dask on another worker; if Dask gives up, the caller gets an error and
unchanged arrays, never partial results.
"""

import math

import numpy as np

from . import _driver
from ._errors import INSTALL, DivergenceError
from ._validate import check_many

RATE = 1e9  # work units per second assumed when cutting tasks (see _driver.work_per_epoch)


def check_client(client, callback):
    """A dask.distributed.Client and no callback (before anything is sent)."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(f"client= needs dask.distributed: {INSTALL['dask']}") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client (for an address, pass "
                        f"Client(address)), found {type(client).__name__}")
    if callback is not None:
        raise TypeError("callback is not supported with client=: the networks train on the "
                        "cluster without a round trip per epoch; use progress=True, or train "
                        "without client=")


def train_on_cluster(client, nets, subsets, optimizer, weights, biases, settings, progress):
    """train_many's work on ``client`` (a dask.distributed.Client); see train_many."""
    count = len(nets)
    groups = _groups(nets, subsets, settings["epochs"], settings["batch_size"],
                     settings.pop("task_seconds"))
    arrays = list(weights) + [b for b in (biases or []) if b is not None]
    n_params = sum(a[0].size for a in arrays)
    buffers, steps = optimizer.bind_many(arrays, count, n_params, nets[0].dtype)
    seeds = _seeds(settings.pop("seed"), count) if settings["shuffle"] else [None] * count
    x, y = _stacked_data(nets)
    # once, to every worker; keys not from the content, which a repeated call would share
    # with the previous call's data while the scheduler releases it
    data = client.scatter([x, y], broadcast=True, hash=False)
    futures = [client.submit(train_group, data[0], data[1], g, [w[g] for w in weights],
                             None if biases is None else [b[g] for b in biases],
                             [subsets[k] for k in g], [seeds[k] for k in g], optimizer.select(g),
                             buffers[g], steps[g], _network_settings(nets[0]), settings,
                             pure=False)  # distinct tasks even when identical
               for g in groups]
    bar = _driver._Progress.of_networks(count * settings["epochs"]) if progress else None
    try:
        results = _gather(client, futures, groups, settings["epochs"], bar)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        if bar is not None:
            bar.close()
    history = np.empty((count, settings["epochs"]))
    diverged = {}
    for g, (hist, new_w, new_b, new_buffers, new_steps, bad) in zip(groups, results):
        history[g] = hist
        for user, new in zip(weights, new_w):
            user[g] = new
        for user, new in zip(biases or [], new_b or []):
            user[g] = new
        buffers[g], steps[g] = new_buffers, new_steps
        diverged.update({g[i]: epoch for i, epoch in bad.items()})
    optimizer.keep_many(arrays, buffers, steps)
    if diverged and settings["on_divergence"] == "raise":
        raise DivergenceError.of_networks(diverged, history)
    return history


def _groups(nets, subsets, epochs, batch_size, task_seconds):
    """Index arrays of consecutive networks, each group about task_seconds of work."""
    seconds = [epochs * _work(net, rows, batch_size) / RATE for net, rows in zip(nets, subsets)]
    per_task = max(1, math.ceil(task_seconds / max(max(seconds), 1e-9)))
    return [np.arange(start, min(start + per_task, len(nets)))
            for start in range(0, len(nets), per_task)]


def _work(net, rows, batch_size):
    n_rows = net.x.shape[0] if rows is None else rows.shape[0]
    return _driver.work_per_epoch_of(net.widths, n_rows, min(batch_size or n_rows, n_rows))


def _seeds(seed, count):
    """The seed of each network's row orders, as the local path derives them."""
    if isinstance(seed, np.random.Generator):
        return seed.spawn(count)
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return sequence.spawn(count)


def _stacked_data(nets):
    """x and y as the caller gave them: shared (N, .) or one per network (K, N, .)."""
    shared = all(net.x is nets[0].x for net in nets) and all(net.y is nets[0].y for net in nets)
    if shared:
        return nets[0].x, nets[0].y
    return np.stack([net.x for net in nets]), np.stack([net.y for net in nets])


def _network_settings(net):
    names = {0: "identity", 1: "relu", 2: "sigmoid", 3: "tanh"}
    losses = {0: "sse", 1: "mse", 2: "softmax_ce", 3: "sigmoid_bce"}
    return dict(activation=[names[a] for a in net.activations[:-1]], loss=losses[net.loss])


def _gather(client, futures, groups, epochs, bar):
    """Every task's result, in order; progress as tasks finish."""
    from distributed import as_completed
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(futures)
    done = 0
    for future in as_completed(futures, loop=client.loop):  # the caller's client, default or not
        i = index[future.key]
        results[i] = future.result()  # raises the task's error, or KilledWorker
        done += len(groups[i]) * epochs
        if bar is not None:
            bar.update(done, _driver.finite_mean(results[i][0][:, -1]))
    return results


def train_group(x, y, group, weights, biases, subsets, seeds, optimizer, buffers, steps,
                network, settings):
    """A task: train one group of networks on one thread; returns (history, weights,
    biases, optimizer buffers, steps, {index in the group: first non-finite epoch})."""
    from ._many import build_runs, fit_many
    if x.ndim == 3:  # data per network: this group's
        x, y = x[group], y[group]
    nets, rows = check_many(x, y, weights, biases, network["activation"], network["loss"],
                            None if all(s is None for s in subsets) else subsets)
    optimizer.resume([*weights, *(biases or [])], buffers, steps)
    runs = build_runs(nets, rows, optimizer, weights, biases, settings["batch_size"],
                      settings["shuffle"], settings["check_finite"])
    orders = ([_driver.shuffled_orders(np.random.default_rng(s)) for s in seeds]
              if settings["shuffle"] else [None] * len(nets))
    hooks = _driver.Hooks(settings["epochs"], None, None, 1, False)
    history = fit_many(runs, settings["epochs"], orders, hooks, "freeze", 1)
    bad = {i: int(np.argmax(np.isnan(h))) for i, h in enumerate(history) if np.isnan(h).any()}
    return history, weights, biases, optimizer.state()[0], optimizer.state()[1], bad
