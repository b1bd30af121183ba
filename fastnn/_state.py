"""What a training run hands the kernels: one plan, flat buffers, and their checkpoints.

``Run`` packs the user's weights and biases into one flat buffer, chooses the
path (``kernels.loop``, ``.sample`` or ``.gram``) and the layer table, lays out
the workspace, and holds everything the kernels change from call to call:
the parameters, the optimizer's state, ``track`` and the path's carried state.
``checkpoint``/``restore`` bracket a compiled call so that it can be replayed;
``store`` writes the parameters back into the user's arrays.
"""

from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .kernels import _blaslib
from .kernels import gram as KG
from .kernels import loop as KL
from .kernels import network as KN

ALIGN = 64  # bytes: a cache line, so no vector load of a row straddles two
VALIDATION_ROWS = 256  # rows per block of the validation forward pass
CHUNK_ABOVE = 2 << 20  # a generic step whose workspace exceeds this runs in chunks of rows,
CHUNK_BYTES = 512 << 10  # each of whose workspace is within this,
MIN_CHUNK_ROWS = 256  # and no smaller: BLAS's products lose efficiency on fewer rows
MIN_SMALL_GEMM_ROWS = 32  # chunks for BLAS's small-matrix kernels: no fewer rows than this


def chunk_rows(widths, dtype, batch):
    """Rows per chunk of a generic step of batch rows (batch itself: no chunks), so that every
    pass over the batch stays in the cache, and the forward and input-gradient products fit
    the BLAS's small-matrix kernels where it has them; the chunks of a batch are as even as
    that rule's least rows allow (figures: docs/design.md)."""
    rows, least = batch, 1
    per_row = KN.workspace_layout(widths, 1)[1] * np.dtype(dtype).itemsize
    if batch * per_row > CHUNK_ABOVE:
        rows, least = max(MIN_CHUNK_ROWS, CHUNK_BYTES // per_row), MIN_CHUNK_ROWS
    small = small_gemm_rows(widths, batch)
    if small < rows:
        rows, least = small, MIN_SMALL_GEMM_ROWS
    if rows >= batch:
        return batch
    even = -(-batch // -(-batch // rows))
    return even if even >= least else rows


def small_gemm_rows(widths, batch):
    """The most rows with which every BLAS layer's product (rows x n_in x n_out) fits the
    BLAS's small-matrix kernels; batch where it has none, or where that leaves fewer than
    MIN_SMALL_GEMM_ROWS. The layers are those through BLAS at batch, as the table has them."""
    widest = max([a * b for a, b in zip(widths, widths[1:]) if K.blas_pays(a, b, batch)],
                 default=0)
    rows = _blaslib.SMALL_GEMM_MACS // widest if widest else 0
    return rows if rows >= MIN_SMALL_GEMM_ROWS else batch


def aligned_empty(n, dtype):
    """An uninitialised 1-D array of n elements starting on an ALIGN-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(n + ALIGN // itemsize, dtype)
    skip = (-raw.ctypes.data % ALIGN) // itemsize
    return raw[skip:skip + n]


def layer_table(net, batch):
    """The kernels' int64 table, a row per layer, and the parameter count (weights first)."""
    n_layers = len(net.weights)
    table = np.zeros((n_layers, KN.NET_COLUMNS), np.int64)
    off = 0
    for i, w in enumerate(net.weights):
        n_in, n_out = w.shape
        table[i, [KN.N_IN, KN.N_OUT, KN.ACT, KN.W_OFF]] = n_in, n_out, net.activations[i], off
        table[i, KN.BLAS] = K.blas_pays(n_in, n_out, batch)
        off += w.size
    n_weights = off
    for i, b in enumerate(net.biases):
        table[i, KN.B_OFF] = -1 if b is None else off
        off += 0 if b is None else b.size
    return table, n_weights, off


class Packed:
    """The user's weights and biases as one flat, aligned buffer with views back to them."""

    def __init__(self, net, table, n_params):
        self.params = aligned_empty(n_params, net.dtype)
        self.arrays = [w for w in net.weights] + [b for b in net.biases if b is not None]
        self.views = []
        for i, w in enumerate(net.weights):
            off = table[i, KN.W_OFF]
            self.views.append((w, self.params[off:off + w.size].reshape(w.shape)))
        for i, b in enumerate(net.biases):
            if b is not None:
                off = table[i, KN.B_OFF]
                self.views.append((b, self.params[off:off + b.size].reshape(b.shape)))
        self.load()

    def load(self, first=0):
        """user arrays -> flat buffer (from the first-th array on)"""
        for user, flat in self.views[first:]:
            flat[...] = user  # not np.copyto: its dispatch costs more than these copies

    def store(self):
        """flat buffer -> user arrays (any strides: slices and Fortran order are fine)"""
        for user, flat in self.views:
            user[...] = flat


def readonly(a):
    # One compiled signature per dtype: data always reach the kernels read-only.
    v = a.view()
    v.flags.writeable = False
    return v


@dataclass
class Setup:
    """How a run trains, besides the network and the optimizer.

    ``reduce``, ``loss_scale`` and ``l2_report`` only change the loss reported
    (scikit-learn's estimators report a row-weighted mean, half the MSE, plus
    alpha / 2 times the squared weights over the batch rows).
    """
    batch_size: int = None       # None: the full batch
    in_order: bool = True        # False: row orders come from the caller (shuffle)
    rows: np.ndarray = None      # train on x[rows] (int64), without copying x; None: all rows
    validation: tuple = None     # (x_val, y_val) cast like the data, or None
    patience: int = 0            # early stopping after this many epochs (0: never)
    check_finite: bool = True
    reduce: int = KN.REDUCE_STEPS
    loss_scale: float = 1.0
    l2_report: float = 0.0


class Run:
    """One train call's plan and buffers (see the module docstring)."""

    def __init__(self, net, optimizer, setup):
        self.rows = setup.rows
        self.n_rows = n_rows = net.x.shape[0] if setup.rows is None else setup.rows.shape[0]
        batch_size, validation, patience = setup.batch_size, setup.validation, setup.patience
        self.net, self.optimizer = net, optimizer
        self.batch = n_rows if batch_size is None else min(batch_size, n_rows)
        self.n_steps = -(-n_rows // self.batch)
        self.chunk = chunk_rows(net.widths, net.dtype, self.batch)
        self.table, n_weights, n_params = layer_table(net, self.batch)  # chunks go the same way
        self.packed = Packed(net, self.table, n_params)
        self.params = self.packed.params
        self.path, self.lay, size, self.carried = self._path(
            net, optimizer, validation, not setup.in_order or setup.rows is not None)
        self.work = aligned_empty(size, net.dtype)
        # plain SGD fused into backward, unless a batch runs in chunks (their gradients add up)
        fused = optimizer.fused and not (self.path[2] is not None and self.batch > self.chunk)
        self.grads = self.params[:0] if fused else aligned_empty(n_params, net.dtype)
        self.state, steps = optimizer.bind(self.packed.arrays, n_params, net.dtype)
        self.track = np.zeros(KN.TRACK_SIZE)
        self.track[KN.T], self.track[KN.BEST_VAL] = steps, np.inf
        self.cfg = np.zeros(KN.CFG_SIZE, np.int64)
        self.cfg[[KN.LOSS, KN.BATCH, KN.RULE, KN.NESTEROV, KN.FUSED, KN.REDUCE, KN.N_WEIGHTS,
                  KN.DECAY_PER_ROW, KN.PATIENCE, KN.CHUNK]] = (
            net.loss, self.batch, optimizer.rule, optimizer.nesterov, fused,
            setup.reduce, n_weights, optimizer.decay_per_row, patience, self.chunk)
        self.check = KN.CHECK_LOSS if setup.check_finite else KN.CHECK_NONE
        self.hyper = np.zeros(KN.HYPER_SIZE)
        self.hyper[:optimizer.hyper().shape[0]] = optimizer.hyper()
        self.hyper[KN.LOSS_SCALE], self.hyper[KN.L2_REPORT] = setup.loss_scale, setup.l2_report
        self.x, self.y = readonly(net.x), readonly(net.y)
        self._validation(net, validation, patience, n_params)
        self.uses_blas = bool(self.table[:, KN.BLAS].any())
        self.validating = validation is not None
        self.validate = True if self.validating else None  # run_epochs compiles it only if True
        self.saved = None
        self.phase = "idle"  # "running": a chunk not accepted yet; "accepted": writing back

    def _path(self, net, optimizer, validation, shuffle):
        """(run_epochs's path flags, layout, workspace size, carried (start, stop) in work)."""
        widths, n_rows = net.widths, self.n_rows
        if (optimizer.fused and self.batch == 1 and max(widths) <= K.sample.SMALL
                and net.loss != K.SOFTMAX_CE):
            lay, size = KN.workspace_layout(widths, 1)
            return (True, None, None), lay, size, (0, 0)
        if (optimizer.fused and not optimizer.continues_exactly and validation is None
                and KG.gram_pays(widths, self.batch, n_rows, not shuffle,
                                 K.blas_pays(widths[0], widths[1], self.batch))):
            lay, size, carried = KG.gram_layout(widths, n_rows)
            return (None, True, None), lay, size, carried
        lay, size = KN.workspace_layout(widths, min(self.batch, self.chunk))
        return (None, None, True), lay, size, (0, 0)

    def _validation(self, net, validation, patience, n_params):
        dtype = net.dtype
        if validation is None:
            self.xv, self.yv = readonly(net.x[:0]), readonly(net.y[:0])
            self.vlay, size = KN.workspace_layout(net.widths, 1)
            self.vwork = np.empty(0, dtype)
            self.best = np.empty(0, dtype)
            return
        xv, yv = validation
        self.xv, self.yv = readonly(xv), readonly(yv)
        self.vlay, size = KN.workspace_layout(net.widths, min(xv.shape[0], VALIDATION_ROWS))
        self.vwork = aligned_empty(size, dtype)
        self.best = aligned_empty(n_params + self.state.size, dtype) if patience else \
            np.empty(0, dtype)

    def checkpoint(self):
        """Copy what a compiled call changes besides params (restored from the user's arrays)."""
        a, b = self.carried  # empty parts are not copied: this runs before every callback epoch
        self.saved = (self.track.copy(), self.state.copy() if self.state.size else None,
                      self.work[a:b].copy() if b > a else None)

    def restore(self):
        """Everything as it was at the last checkpoint, params from the user's arrays."""
        track, state, carried = self.saved
        a, b = self.carried
        self.packed.load()
        self.track[...] = track
        if state is not None:
            self.state[...] = state
        if carried is not None:
            self.work[a:b] = carried

    def reload(self):
        """The user's arrays into the flat buffer, after a callback that may have changed
        them; on the Gram path a changed first layer restarts its carried products."""
        first = 0
        if self.path[1] is not None:  # comparing the large first layer costs less than a restart
            if np.array_equal(*self.packed.views[0]):
                first = 1
            else:
                self.track[KN.LOADED] = 0.0
        self.packed.load(first)

    def call(self, losses, vlosses, orders, check):
        """One compiled call over len(losses) epochs; returns its status."""
        self.cfg[KN.CHECK] = check
        return KL.run_epochs(*self.path, self.validate, losses, self.params, self.grads,
                             self.state, self.track, self.work, self.lay, self.table, self.cfg,
                             self.hyper, self.x, self.y, orders, self.xv, self.yv, self.vwork,
                             self.vlay, vlosses, self.best)

    def store(self):
        """Write the parameters back to the user's arrays and the state to the optimizer."""
        self.packed.store()
        self.optimizer.keep(self.packed.arrays, self.state, self.track[KN.T])
