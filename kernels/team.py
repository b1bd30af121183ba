"""Full-batch training split over two cores: one epoch's batch in two parts.

A small-layer network trained on its full batch (mlp3_gd: 900 x 5 -> 4 -> 4 -> 1)
runs an epoch in about ten microseconds: too short for a thread pool's task
launch, but the epochs of one compiled call can be split between two threads
that meet once per epoch. ``train_team`` is that call, run by each member of a
team (one or two threads) on the same flat buffers:

* the batch is cut into ``PARTS`` row ranges (parts); each member runs
  forward, loss and backward of its parts and writes each part's gradient sums
  and loss into ``grads`` and ``part_loss`` (double-buffered by epoch parity);
* members announce the end of an epoch's parts in ``sync`` and wait for the
  others (a spin that yields the CPU after a while);
* every member then adds the parts' sums in part order and applies the same
  update to its own copy of the parameters, so the copies stay bitwise equal.

The arithmetic depends on the parts only, never on the number of members: one
thread running both parts gives bitwise the results of two threads (the driver
runs one member whenever another team is busy, or the machine has one CPU).
"""

import ctypes
import os

import numpy as np
from numba import config, types

from ._jit import jit
from ._views import block, unliteral
from .layers import MSE, _use_blas
from .loop import (CHECK, CHECK_EACH_EPOCH, CHECK_LOSS, CHECK_NONE, LOSS, N_IN, N_OUT,
                   PARAMS_NOT_FINITE, _network_backward, _network_forward, _offsets, all_finite,
                   load_batch, workspace_size)

PARTS = 2           # parts per batch: fixed, so results never depend on the thread count
MIN_ROWS = 512      # below this an epoch is too short to pay for the per-epoch meeting
LINE = 8            # 64-byte cache line in float64 / int64 elements: one writer per line
FIRST, LAST, MEMBERS, MEMBER = 0, 1, 2, 3  # team: this member runs parts FIRST..LAST-1
TEAM_TIMEOUT = -2   # status when a partner never arrived (see _SPIN_LIMIT)
_SPINS = 4096       # tries before each further try yields the CPU: a partner normally
                    # arrives within microseconds, and one that lost its CPU gets it back
_SPIN_LIMIT = 1 << 32  # tries before giving up (an hour or more of yields): a safety net


def _yield_address():
    # sched_yield from the C library, or None; without it teams stay off (team_parts)
    try:
        return ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value
    except (OSError, AttributeError, TypeError):  # no sched_yield (Windows): no teams
        return None


if config.DISABLE_JIT:
    # Interpreted kernels: one member runs every part, so nothing ever waits.
    AVAILABLE = True

    def _load_acquire(a, i):
        return a[i]

    def _store_release(a, i, value):
        a[i] = value

    def _yield():
        os.sched_yield() if hasattr(os, "sched_yield") else None

else:
    from llvmlite import binding
    from numba.extending import intrinsic
    from numba.np.arrayobj import make_array

    _address = _yield_address()
    AVAILABLE = _address is not None
    if AVAILABLE:
        binding.add_symbol("fastnn_sched_yield", _address)
    _sched_yield = types.ExternalFunction("fastnn_sched_yield", types.int32())

    def _slot(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        return builder.gep(ary.data, [index])

    @intrinsic
    def _load_acquire(typingctx, a, i):
        # a[i] (int64) as an atomic acquire load: never hoisted out of a spin loop, and
        # the partner's writes before its release store are visible after it
        def codegen(context, builder, sig, args):
            return builder.load_atomic(_slot(context, builder, sig, args), "acquire", 8)
        return types.int64(a, i), codegen

    @intrinsic
    def _store_release(typingctx, a, i, value):
        # a[i] = value (int64) as an atomic release store: publishes every earlier write
        def codegen(context, builder, sig, args):
            v = context.cast(builder, args[2], sig.args[2], types.int64)
            builder.store_atomic(v, _slot(context, builder, sig, args), "release", 8)
            return context.get_dummy_value()
        return types.void(a, i, value), codegen

    @jit(inline=True)
    def _yield():
        _sched_yield()


def team_parts(widths, batch, n_rows, in_order=True):
    """Row count of each part when train_team serves this run, else () (plain Python).

    Full batch in row order, at least MIN_ROWS rows, and only small layers (no layer
    goes through BLAS, whose own threads use the cores). The first part is a multiple
    of 4 rows, so both parts' activation rows keep the full batch's alignment.
    """
    batch = min(int(batch), int(n_rows))
    use_blas = getattr(_use_blas, "py_func", _use_blas)
    if not (AVAILABLE and in_order and batch == n_rows and n_rows >= MIN_ROWS):
        return ()
    if any(use_blas(a, b, n_rows) for a, b in zip(widths, widths[1:])):
        return ()
    first = 4 * -(-n_rows // (4 * PARTS))
    return (first, n_rows - first)


def team_workspace(widths, rows):
    """Scratch elements for the parts of ``rows`` (team_parts), each starting on a line."""
    return sum(-(-workspace_size(widths, m) // LINE) * LINE for m in rows)


def team_grads_size(n_params):
    """Elements per part in ``grads``: the parameters, padded to a line."""
    return -(-int(n_params) // LINE) * LINE


@jit(inline=True)
def _part_loss(d, pred, y, loss, count):
    # sum of squared residuals over this part (float64); d = dloss/dpred as
    # loss_forward_backward with the full batch of count rows
    n, m = pred.shape
    total = 0.0
    for j in range(n):
        prow = pred[j]
        yrow = y[j]
        drow = d[j]
        if loss == MSE:
            for t in range(m):
                r = prow[t] - yrow[t]
                total += np.float64(r) * np.float64(r)
                drow[t] = r / count
        else:
            for t in range(m):
                r = prow[t] - yrow[t]
                total += np.float64(r) * np.float64(r)
                drow[t] = 2.0 * r
    return total


@jit
def train_team(losses, params, work, net, cfg, lr, x, y, team, grads, part_loss, sync):
    # One member's share of len(losses) full-batch epochs (see the module docstring).
    # losses (E,) float64; params: this member's copy; work: team_workspace elements,
    # shared (each member touches only its parts); x (N, d_in), y (N, d_out);
    # team int64 [FIRST, LAST, MEMBERS, MEMBER]; grads (2, PARTS, team_grads_size) and
    # part_loss (2, PARTS, LINE) float64 shared; sync int64 (MEMBERS * LINE,) shared,
    # zeroed before the call. Returns as train_loop, or TEAM_TIMEOUT.
    n_rows = x.shape[0]
    n_layers = net.shape[0]
    n_params = params.shape[0]
    loss, check = cfg[LOSS], cfg[CHECK]
    d_in, d_out = net[0, N_IN], net[n_layers - 1, N_OUT]
    first, last, members, me = team[FIRST], team[LAST], team[MEMBERS], team[MEMBER]
    # part p: rows row0[p]..row0[p+1]-1, scratch from base[p]; offsets inside it
    row0 = np.empty(PARTS + 1, np.int64)
    base = np.empty(PARTS + 1, np.int64)
    a_offs = np.empty((PARTS, n_layers + 1), np.int64)
    d_offs = np.empty((PARTS, n_layers + 1), np.int64)
    y_offs = np.empty(PARTS, np.int64)
    row0[0], base[0] = 0, 0
    for p in range(PARTS):
        m = (4 * ((n_rows + 4 * PARTS - 1) // (4 * PARTS))) if p == 0 else n_rows - row0[p]
        row0[p + 1] = row0[p] + m
        a_off, d_off, size = _offsets(net, m, unliteral(True))
        a_offs[p] = a_off
        d_offs[p] = d_off
        y_offs[p] = d_off[n_layers] + d_out * m
        size += d_out * m
        base[p + 1] = base[p] + (size + LINE - 1) // LINE * LINE
    no_rows = np.empty(0, np.int64)
    for p in range(first, last):  # each part's rows, transposed, once per call
        m = row0[p + 1] - row0[p]
        part = block(work, base[p], 1, base[p + 1] - base[p])[0]
        load_batch(block(part, a_offs[p, 0], d_in, m), block(part, y_offs[p], d_out, m),
                   x, y, no_rows, row0[p], m)
    step = params.dtype.type(-lr)  # as the reference: float32 data, float32 step
    status = losses.shape[0]
    for epoch in range(losses.shape[0]):
        parity = epoch & 1
        for p in range(first, last):
            m = row0[p + 1] - row0[p]
            part = block(work, base[p], 1, base[p + 1] - base[p])[0]
            a_off, d_off = a_offs[p], d_offs[p]
            _network_forward(params, part, net, a_off, m, True, 0)
            part_loss[parity, p, 0] = _part_loss(
                block(part, d_off[n_layers], d_out, m), block(part, a_off[n_layers], d_out, m),
                block(part, y_offs[p], d_out, m), loss, n_rows)
            # the part's gradient sums (scale 1, keep 0) into its slot of grads
            _network_backward(grads[parity, p], params, part, net, a_off, d_off, m, 1.0, 0.0,
                              True, 0)
        # meet: announce this epoch's parts, then wait for every partner's
        _store_release(sync, me * LINE, epoch + 1)
        for k in range(members):
            spins = 0
            while _load_acquire(sync, k * LINE) <= epoch:
                spins += 1
                if spins > _SPINS:
                    _yield()
                    if spins > _SPIN_LIMIT:
                        return TEAM_TIMEOUT
        total = 0.0
        for p in range(PARTS):
            total += part_loss[parity, p, 0]
        g = grads[parity]
        for i in range(n_params):
            s = g[0, i]
            for p in range(1, PARTS):
                s += g[p, i]
            params[i] += step * s
        losses[epoch] = total / (d_out * n_rows) if loss == MSE else total
        if check != CHECK_NONE:
            if not np.isfinite(losses[epoch]):
                status = epoch
                break
            if check == CHECK_EACH_EPOCH and not all_finite(params):
                status = epoch
                break
    if status == losses.shape[0] and check == CHECK_LOSS and not all_finite(params):
        return PARAMS_NOT_FINITE
    return status

