"""The training loop: epochs x steps x layers in one compiled call.

``run_epochs`` is the loop every path shares: epochs, row orders, the epoch
loss, divergence checks, validation and early stopping. Its first three
arguments choose the step: exactly one is ``True``, the others ``None``. Numba
prunes an ``if flag is not None`` branch before typing it when the flag is
``None`` (it cannot decide the test for a plain ``True``, so each step sits
under its own flag, never in an ``else``), so a run compiles only its own path:

* ``run_epochs(None, None, True, ...)``: ``network.batch_step``, any batch size, loss and
  optimizer;
* ``run_epochs(True, None, None, ...)``: ``sample.sample_step``, one row per step, plain SGD;
* ``run_epochs(None, True, None, ...)``: ``gram.gram_step``, full-batch plain SGD on wide data.

The fourth, ``validate``, is ``True`` for a run with validation data and ``None``
without, so that a run without compiles no validation code.

See ``network`` for the other arrays.
"""

import numpy as np

from ._jit import jit, plain
from ._numba_private import bare
from .gram import gram_begin, gram_step, gram_sync
from .losses import SSE
from .network import (BATCH, BEST_EPOCH, BEST_T, BEST_VAL, CHECK, CHECK_EACH_EPOCH, CHECK_LOSS,
                      CHECK_NONE, EPOCH, LOADED, LOSS, PARAMS_NOT_FINITE, PATIENCE, REDUCE,
                      REDUCE_ROWS, SINCE_BEST, STOPPED, T, all_finite, batch_epoch, load_batch,
                      network_forward, output_loss)
from .sample import sample_epoch


@jit(python=True)
def run_epochs(sample, gram, generic, validate, losses, params, grads, state, track, work, lay,
               net, cfg, hyper, x, y, order, xv, yv, vwork, vlay, vlosses, best):
    # len(losses) epochs over the batches of x, y (the rows listed in order[epoch], or all in
    # order when order is (0, 0)); with validate not None, the validation loss of each epoch
    # into vlosses. Epochs go to sample_epoch, gram_step or batch_epoch, by the flag that is
    # not None. Returns the epochs completed with finite losses (and parameters, per
    # cfg[CHECK]), or PARAMS_NOT_FINITE when only the final parameter check failed.
    # the arrays from Python carry reference counts that every helper would update
    params, grads, state, track, work, lay = (bare(params), bare(grads), bare(state), bare(track),
                                              bare(work), bare(lay))
    net, cfg, hyper, x, y, order = bare(net), bare(cfg), bare(hyper), bare(x), bare(y), bare(order)
    xv, yv, vwork, vlay, vlosses = bare(xv), bare(yv), bare(vwork), bare(vlay), bare(vlosses)
    losses, best = bare(losses), bare(best)
    n_rows = x.shape[0]
    if gram is not None:
        if track[LOADED] == 0.0:  # the Gram path's state starts with the first call
            load_batch(work, lay, net, x, y, np.empty(0, np.int64), plain(0), n_rows)
            gram_begin(params, work, lay, net, n_rows)
            track[LOADED] = 1.0
    no_rows = order[0, :0] if order.shape[0] > 0 else np.empty(0, np.int64)
    status = losses.shape[0]
    for epoch in range(losses.shape[0]):
        rows = order[epoch] if order.shape[0] > 0 else no_rows
        if sample is not None:
            losses[epoch] = sample_epoch(params, track, work, lay, net, cfg, hyper, x, y, rows)
        if gram is not None:
            losses[epoch] = gram_step(params, track, work, lay, net, cfg, hyper, n_rows)
        if generic is not None:
            losses[epoch] = batch_epoch(params, grads, state, track, work, lay, net, cfg, hyper,
                                        x, y, rows)
        track[EPOCH] += 1.0
        if cfg[CHECK] != CHECK_NONE and not np.isfinite(losses[epoch]):
            status = epoch
            break
        if gram is not None:
            if cfg[CHECK] == CHECK_EACH_EPOCH:  # the parameters must be current to be checked
                gram_sync(params, work, lay, net, hyper)
        if cfg[CHECK] == CHECK_EACH_EPOCH and not all_finite(params):
            status = epoch
            break
        if validate is not None:
            vlosses[epoch] = validation_loss(params, vwork, vlay, net, cfg, hyper, xv, yv)
            if cfg[PATIENCE] > 0 and early_stop(params, state, track, cfg, vlosses[epoch], best):
                status = epoch + 1
                break
    if gram is not None:
        gram_sync(params, work, lay, net, hyper)
    if track[STOPPED] != 0.0 and track[BEST_VAL] < np.inf:
        restore_best(params, state, track, best)
    if status == losses.shape[0] and cfg[CHECK] == CHECK_LOSS and not all_finite(params):
        return PARAMS_NOT_FINITE
    return status


@jit(inline=True)
def validation_loss(params, vwork, vlay, net, cfg, hyper, xv, yv):
    # the loss of all rows of xv, yv as one batch (no L2 term), computed in blocks of vlay[-1]
    n, vm = xv.shape[0], vlay[vlay.shape[0] - 1]
    no_rows = np.empty(0, np.int64)
    total = 0.0
    for start in range(0, n, vm):
        m = min(vm, n - start)
        load_batch(vwork, vlay, net, xv, yv, no_rows, start, m)
        network_forward(params, vwork, vlay, net, m, plain(0))
        value = output_loss(vwork, vlay, net, cfg, hyper, m)
        total += value if cfg[LOSS] == SSE else value * m  # sums add up, means are weighted
    return total if cfg[LOSS] == SSE else total / n


@jit(inline=True)
def early_stop(params, state, track, cfg, value, best):
    # keeps the best epoch's parameters and optimizer state in best (P + 2P); True when
    # cfg[PATIENCE] epochs in a row did not improve on it (the caller stops and restores it)
    if value < track[BEST_VAL]:
        track[BEST_VAL] = value
        track[BEST_EPOCH] = track[EPOCH] - 1.0
        track[BEST_T] = track[T]
        track[SINCE_BEST] = 0.0
        n = params.shape[0]
        flat = state.ravel()
        for i in range(n):
            best[i] = params[i]
        for i in range(flat.shape[0]):
            best[n + i] = flat[i]
        return False
    track[SINCE_BEST] += 1.0
    if track[SINCE_BEST] >= cfg[PATIENCE]:
        track[STOPPED] = 1.0
        return True
    return False


@jit(inline=True)
def restore_best(params, state, track, best):
    # parameters, optimizer state and step count of the best epoch (see early_stop)
    n = params.shape[0]
    flat = state.ravel()
    for i in range(n):
        params[i] = best[i]
    for i in range(flat.shape[0]):
        flat[i] = best[n + i]
    track[T] = track[BEST_T]
