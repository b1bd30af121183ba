"""Arrays in: check every argument before anything is touched.

Shared by ``fastnn.train`` and ``fastnn.reference.train`` so both accept and
reject exactly the same input. Every error names the argument, what was
expected and what was found; nothing is modified here.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from .kernels import ACTIVATIONS, LOSSES

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class Network:
    """A validated network: the user's arrays plus what the kernels need."""
    x: np.ndarray              # (N, D_in), C-contiguous, network dtype
    y: np.ndarray              # (N, D_out), C-contiguous, network dtype
    weights: list              # the user's arrays, updated in place
    biases: list               # the user's arrays or None, one per layer
    dtype: np.dtype
    widths: list               # n_0 .. n_L
    activations: list         # one code per layer; the output layer is identity
    loss: int


def _names(table):
    return ", ".join(repr(k) for k in table)


def _array_kind(a):
    return f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__


def _param(arr, name, dtype, update):
    if not isinstance(arr, np.ndarray) or isinstance(arr, np.ma.MaskedArray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is updated in place; a masked "
                        f"array's mask would be ignored), found {type(arr).__name__}")
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, found {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but weights[0] has {dtype}; "
                        f"all weights and biases must share one dtype")
    if update and not arr.flags.writeable:
        raise ValueError(f"{name} is read-only, but fastnn updates it in place; "
                         f"pass a writeable array (for example {name.split('[')[0]}[i].copy())")
    if update:
        _check_apart_inside(arr, name)


def _check_apart_inside(arr, name):
    if _overlaps_itself(arr):
        raise ValueError(f"{name} has elements that share memory (strides {arr.strides} for "
                         f"shape {arr.shape}), so they cannot be trained apart; pass a copy")


def _overlaps_itself(a):
    """True when two elements of a share memory (zero or overlapping strides)."""
    if a.flags.c_contiguous or a.flags.f_contiguous:  # the usual case, at once
        return False
    extent = a.itemsize  # bytes spanned by the axes taken so far, smallest stride first
    for stride, n in sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1):
        if stride < extent:
            break
        extent += stride * (n - 1)
    else:
        return False
    if a.size == 0:
        return False
    offsets = np.zeros(1, np.int64)  # exact: every element's byte offset, for rare layouts
    for stride, n in zip(a.strides, a.shape):
        offsets = (offsets[:, None] + stride * np.arange(n, dtype=np.int64)).ravel()
    return bool((np.diff(np.sort(offsets)) < a.itemsize).any())


def _data(arr, name, ndims=(2,)):
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, found dtype {a.dtype}")
    if a.ndim not in ndims:
        expected = "1-D or 2-D" if ndims == (1, 2) else "2-D (rows, features)"
        raise ValueError(f"{name} must be {expected}, found shape {a.shape}")
    return a


def _targets(y, name, loss, n_out):
    """y as (N, n_out) rows for the loss: a 1-D y is one output's column, or the class
    labels of softmax_ce (one-hot rows, so labels give bitwise the numbers of those rows)."""
    ya = _data(y, name, (1, 2))
    if ya.ndim == 2:
        if ya.shape[1] != n_out:
            raise ValueError(f"{name} must have {n_out} columns to match the network's "
                             f"{n_out} outputs (weights[-1]), found shape {ya.shape}")
        return ya
    if loss != "softmax_ce":
        if n_out != 1:
            raise ValueError(f"a 1-D {name} needs a network with one output, found {n_out} "
                             f"outputs; give {name} of shape ({ya.shape[0]}, {n_out})")
        return ya.reshape(-1, 1)
    labels = ya
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ValueError(f"{name} as class labels (1-D, softmax_ce) must be integers in "
                             f"[0, {n_out}), found non-integer values")
    if labels.size and (labels.min() < 0 or labels.max() >= n_out):
        bad = labels[(labels < 0) | (labels >= n_out)][0]
        raise ValueError(f"{name} as class labels (1-D, softmax_ce) must be integers in "
                         f"[0, {n_out}), found {bad.item()!r}")
    onehot = np.zeros((labels.shape[0], n_out), np.float64)
    onehot[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
    return onehot


def _check_target_values(ya, name, loss, dtype, given):
    """softmax_ce rows must be probability rows; sigmoid_bce targets must lie in [0, 1].
    Rows sum to 1 within the rounding of the coarser of the network's dtype and the
    dtype they were given in."""
    if loss == "sigmoid_bce" and ya.size and (ya.min() < 0 or ya.max() > 1):
        bad = ya[(ya < 0) | (ya > 1)][0]
        raise ValueError(f"{name} for sigmoid_bce must lie in [0, 1], found {float(bad)!r}")
    if loss == "softmax_ce" and ya.size:
        if ya.min() < 0:
            raise ValueError(f"{name} for softmax_ce must be probability rows (>= 0, each "
                             f"summing to 1) or 1-D class labels, found {float(ya.min())!r}")
        sums = ya.sum(axis=1, dtype=np.float64)
        worst = int(np.argmax(np.abs(sums - 1)))
        eps = max(np.finfo(dtype).eps, np.finfo(given).eps if given.kind == "f" else 0.0)
        if abs(sums[worst] - 1) > 8 * ya.shape[1] * eps:
            raise ValueError(f"{name} for softmax_ce must be probability rows (>= 0, each "
                             f"summing to 1) or 1-D class labels, found row {worst} "
                             f"summing to {float(sums[worst])!r}")


def _activation_codes(activation, n_hidden):
    if isinstance(activation, str):
        names = [activation] * n_hidden
        checked = [activation]
    elif isinstance(activation, (list, tuple)):
        if len(activation) != n_hidden:
            raise ValueError(f"activation must be one name or a sequence of one name per hidden "
                             f"layer ({n_hidden}), found a sequence of {len(activation)}")
        names = checked = list(activation)
    else:
        raise TypeError(f"activation must be a name or a sequence of names, "
                        f"found {type(activation).__name__}")
    for name in checked:
        if not isinstance(name, str):
            raise TypeError(f"activation names must be strings, found {type(name).__name__}")
        if name not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {_names(ACTIVATIONS)}, found {name!r}")
    return [ACTIVATIONS[n] for n in names] + [ACTIVATIONS["identity"]]


def _share(a, b):
    """True when a and b may share memory (an undecidable case counts as shared)."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except np.exceptions.TooHardError:
        return True


def _check_no_overlap(arrays):
    for i, (name_a, a) in enumerate(arrays):
        for name_b, b in arrays[:i]:
            if a is b:
                raise ValueError(f"{name_a} and {name_b} are the same array; "
                                 f"each parameter needs its own array")
            if _share(a, b):
                raise ValueError(f"{name_a} and {name_b} share memory; "
                                 f"each parameter needs its own array")


def check_network(x, y, weights, biases, activation, loss, update=True, targets=True):
    """Validate a network and its data; returns a :class:`Network`.

    ``targets=False`` (y is None) and ``update=False`` serve ``predict``, which reads
    the parameters only (read-only arrays are fine there).
    """
    if targets and y is None:
        raise TypeError("y must be an array of targets, (N, n_L) or (N,), found None")
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name, found {type(loss).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {_names(LOSSES)}, found {loss!r}")
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be a list or tuple of 2-D numpy arrays, "
                        f"found {_array_kind(weights)}")
    if len(weights) == 0:
        raise ValueError("weights must hold at least one layer, found an empty sequence")
    dtype = None
    for i, w in enumerate(weights):
        _param(w, f"weights[{i}]", dtype, update)
        dtype = w.dtype
        if w.ndim != 2:
            raise ValueError(f"weights[{i}] must be 2-D (n_in, n_out), found shape {w.shape}")
        if 0 in w.shape:
            raise ValueError(f"weights[{i}] must have no zero dimension, found shape {w.shape}")
        if i > 0 and weights[i - 1].shape[1] != w.shape[0]:
            raise ValueError(f"weights[{i}] must have {weights[i - 1].shape[1]} rows to follow "
                             f"weights[{i - 1}] of shape {weights[i - 1].shape}, "
                             f"found shape {w.shape}")
    widths = [weights[0].shape[0]] + [w.shape[1] for w in weights]

    if biases is None:
        biases = [None] * len(weights)
    elif not isinstance(biases, (list, tuple)):
        raise TypeError(f"biases must be None or a list or tuple of arrays, "
                        f"found {_array_kind(biases)}")
    elif len(biases) != len(weights):
        raise ValueError(f"biases must hold one array per layer ({len(weights)}), "
                         f"found {len(biases)}")
    else:
        for i, b in enumerate(biases):
            _param(b, f"biases[{i}]", dtype, update)
            n = widths[i + 1]
            if b.shape not in ((n,), (1, n)):
                raise ValueError(f"biases[{i}] must have shape ({n},) or (1, {n}), "
                                 f"found shape {b.shape}")
        biases = list(biases)

    xa = _data(x, "x")
    if xa.shape[0] == 0:
        raise ValueError(f"x must have at least one row, found shape {xa.shape}")
    if xa.shape[1] != widths[0]:
        raise ValueError(f"x must have {widths[0]} columns to match weights[0] of shape "
                         f"{weights[0].shape}, found shape {xa.shape}")
    data = [("x", xa)]
    if y is not None:
        ya = _targets(y, "y", loss, widths[-1])
        if ya.shape[0] != xa.shape[0]:
            raise ValueError(f"y must have one row per row of x ({xa.shape[0]}), "
                             f"found {ya.shape[0]} rows")
        data.append(("y", ya))

    if update:
        params = named_params(weights, biases)
        _check_no_overlap(params)
        check_apart(params, data)

    codes = _activation_codes(activation, len(weights) - 1)
    cast = [_finite_cast(d, name, dtype) for name, d in data]
    if y is not None:
        _check_target_values(cast[1], "y", loss, dtype, data[1][1].dtype)
    return Network(x=cast[0], y=cast[1] if y is not None else None, weights=list(weights),
                   biases=biases, dtype=dtype, widths=widths, activations=codes,
                   loss=LOSSES[loss])


def named_params(weights, biases, names=("weights", "biases")):
    """[(name, array)] of the weights and the biases given."""
    return ([(f"{names[0]}[{i}]", w) for i, w in enumerate(weights)]
            + [(f"{names[1]}[{i}]", b) for i, b in enumerate(biases or []) if b is not None])


def check_params_finite(weights, biases, hint=" (or pass check_finite=False)", stacked=False,
                        names=("weights", "biases"), where=""):
    """A ValueError naming the first non-finite parameter (and network: ``where``, or the
    first index when stacked)."""
    for name, p in named_params(weights, biases, names):
        if not np.isfinite(p).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(p))[0])
            where, index = (f"network {bad[0]}: ", bad[1:]) if stacked else (where, bad)
            raise ValueError(f"{where}{name} must be finite before training, found "
                             f"{p[bad]} at index {index}{hint}")


def check_task_seconds(value):
    """train_many's task size for a cluster: a finite number of seconds >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"task_seconds must be a number of seconds >= 0, found "
                        f"{type(value).__name__}")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"task_seconds must be a finite number >= 0, found {value!r}")


def check_flag(value, name):
    """A bool argument: True or False (NumPy's too), nothing that merely converts to one."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, found {type(value).__name__}")


def check_apart(params, data):
    """No parameter may share memory with data the kernels read while it trains."""
    for name, p in params:
        for data_name, d in data:
            if _share(p, d):
                raise ValueError(f"{name} shares memory with {data_name}; "
                                 f"training would change the data")


def _finite_cast(d, name, dtype):
    """d as a C-contiguous array of dtype, after checking every value is finite."""
    given = d
    with np.errstate(over="ignore"):  # a value beyond float32's range is reported below
        d = np.ascontiguousarray(d, dtype=dtype)
    # min and max see any NaN or Inf without an N-sized temporary
    if d.size and not (np.isfinite(d.min()) and np.isfinite(d.max())):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(d))[0])
        if np.isfinite(given[bad]):
            raise ValueError(f"{name} must be finite in the network's dtype {np.dtype(dtype)}, "
                             f"found {given[bad]} at index {bad}, beyond its largest value "
                             f"{float(np.finfo(dtype).max):.4g}")
        raise ValueError(f"{name} must be finite, found {d[bad]} at index {bad}")
    return d


def check_validation(validation, early_stopping, net, loss_name):
    """(x_val, y_val) cast like the training data, or None; and the patience (0: none)."""
    if early_stopping is not None:
        if isinstance(early_stopping, bool) or not isinstance(early_stopping, numbers.Integral):
            raise TypeError(f"early_stopping must be None or an int >= 1 (epochs without a "
                            f"better validation loss), found {type(early_stopping).__name__}")
        if early_stopping < 1:
            raise ValueError(f"early_stopping must be None or an int >= 1, found {early_stopping}")
        if validation is None:
            raise ValueError("early_stopping needs validation=(x_val, y_val) to watch, "
                             "found validation=None")
    if validation is None:
        return None, 0
    if not isinstance(validation, (tuple, list)) or len(validation) != 2:
        raise TypeError(f"validation must be a pair (x_val, y_val), found "
                        f"{_array_kind(validation) if not isinstance(validation, (tuple, list)) else f'a sequence of {len(validation)}'}")
    xv = _data(validation[0], "validation[0] (x_val)")
    if xv.shape[0] == 0 or xv.shape[1] != net.widths[0]:
        raise ValueError(f"validation[0] (x_val) must have at least one row and {net.widths[0]} "
                         f"columns, found shape {xv.shape}")
    yv = _targets(validation[1], "validation[1] (y_val)", loss_name, net.widths[-1])
    if yv.shape[0] != xv.shape[0]:
        raise ValueError(f"validation[1] (y_val) must have one row per row of x_val "
                         f"({xv.shape[0]}), found {yv.shape[0]} rows")
    given = yv.dtype
    check_apart(named_params(net.weights, net.biases), [("validation[0] (x_val)", xv),
                                                        ("validation[1] (y_val)", yv)])
    xv = _finite_cast(xv, "validation[0] (x_val)", net.dtype)
    yv = _finite_cast(yv, "validation[1] (y_val)", net.dtype)
    _check_target_values(yv, "validation[1] (y_val)", loss_name, net.dtype, given)
    return (xv, yv), int(early_stopping or 0)


def check_hooks(print_every, callback, callback_every, progress):
    """Validate the progress and callback arguments of train."""
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
    check_flag(progress, "progress")


def check_schedule(epochs, batch_size, shuffle, seed):
    """Validate the schedule; returns (epochs, batch_size or None)."""
    epochs = _count(epochs, "epochs")
    if batch_size is not None:
        batch_size = _count(batch_size, "batch_size")
    check_flag(shuffle, "shuffle")
    if seed is not None and (isinstance(seed, bool) or not isinstance(
            seed, (numbers.Integral, np.random.SeedSequence, np.random.Generator))):
        raise TypeError(f"seed must be None, an int, a SeedSequence or a Generator, "
                        f"found {type(seed).__name__}")
    if isinstance(seed, numbers.Integral) and seed < 0:
        raise ValueError(f"seed must be >= 0, found {seed}")
    return epochs, batch_size


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, found {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, found {value}")
    return int(value)


OUTPUTS = {"identity": 0, "softmax": 1, "sigmoid": 2}


def check_predict(x, weights, biases, activation, output="identity"):
    """Validate predict's arguments: the network and x, parameters only read; returns the
    network and the output code."""
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"output must be one of {_names(OUTPUTS)}, found {output!r}")
    return (check_network(x, None, weights, biases, activation, "sse", update=False,
                          targets=False), OUTPUTS[output])


def check_many(x, y, weights, biases, activation, loss, rows=None, update=True, targets=True):
    """Validate train_many's stacked networks; returns the list of per-network
    :class:`Network` (views into the caller's arrays, data cast once) and the rows.
    ``targets=False`` (y is None) and ``update=False`` serve ``predict_many``."""
    if not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"weights must be a non-empty list or tuple of 3-D arrays (networks, "
                        f"n_in, n_out), found {_array_kind(weights)}")
    count = None
    for i, w in enumerate(weights):
        if not isinstance(w, np.ndarray) or w.ndim != 3:
            raise ValueError(f"weights[{i}] must be a 3-D array (networks, n_in, n_out) for "
                             f"train_many, found {_array_kind(w)}")
        count = w.shape[0] if count is None else count
        if count == 0:
            raise ValueError(f"weights[{i}] must hold at least one network (its first axis), "
                             f"found shape {w.shape}")
        if w.shape[0] != count:
            raise ValueError(f"weights[{i}] must hold {count} networks (its first axis), found "
                             f"shape {w.shape}")
    if biases is not None:
        if not isinstance(biases, (list, tuple)):
            raise TypeError(f"biases must be None or a list or tuple of arrays, "
                            f"found {_array_kind(biases)}")
        for i, b in enumerate(biases):
            if not isinstance(b, np.ndarray) or b.ndim not in (2, 3) or b.shape[0] != count:
                raise ValueError(f"biases[{i}] must be an array ({count}, n) or ({count}, 1, n) "
                                 f"for train_many, found {_array_kind(b)}")
    if targets and y is None:
        raise TypeError("y must be an array of targets, (N, n_L), (N,) or one per network, "
                        "found None")
    xa, per_x = _stacked(x, "x", count, 2)
    ya, per_y = (None, False) if y is None else _stacked(y, "y", count, 1 if per_x else None)
    first = check_network(xa[0] if per_x else xa, None if y is None else ya[0] if per_y else ya,
                          [w[0] for w in weights], None if biases is None else [b[0] for b in biases],
                          activation, loss, update, targets)
    if update:
        _check_stacked_apart(weights, biases, xa, ya)
    data_x = _finite_cast(xa, "x", first.dtype) if per_x else first.x
    data_y = None
    if y is not None:
        data_y = first.y
        if per_y:
            data_y = _finite_cast(np.stack([_targets(ya[k], "y", loss, first.widths[-1])
                                            for k in range(count)]), "y", first.dtype)
            _check_target_values(data_y.reshape(-1, data_y.shape[-1]), "y", loss, first.dtype,
                                 ya.dtype)
    nets = []
    for k in range(count):
        nets.append(Network(
            x=data_x[k] if per_x else data_x, y=None if y is None else data_y[k] if per_y else data_y,
            weights=[w[k] for w in weights],
            biases=[None] * len(weights) if biases is None else [b[k] for b in biases],
            dtype=first.dtype, widths=first.widths, activations=first.activations,
            loss=first.loss))
    return nets, _check_rows(rows, count, first.x.shape[0] if not per_x else data_x.shape[1])


def _check_stacked_apart(weights, biases, xa, ya):
    """Network 0's arrays are checked as train's; now every network's, all K at once."""
    params = named_params(weights, biases)
    for name, p in params:
        _check_apart_inside(p, name)
    _check_no_overlap(params)
    check_apart(params, [("x", xa)] + ([] if ya is None else [("y", ya)]))


def _stacked(a, name, count, min_ndim):
    """(array, per_network): a shared array, or one per network on a first axis of count."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, found dtype {arr.dtype}")
    per = arr.ndim == 3 or (min_ndim == 1 and arr.ndim == 2)  # y (K, N): per-network labels
    if per and arr.shape[0] != count:
        raise ValueError(f"{name} per network must have {count} networks on its first axis, "
                         f"found shape {arr.shape}")
    return arr, per


def _check_rows(rows, count, n_rows):
    """rows: None, or one 1-D integer array of row indices per network (int64)."""
    if rows is None:
        return [None] * count
    if not isinstance(rows, (list, tuple, np.ndarray)) or len(rows) != count:
        raise ValueError(f"rows must be None or one array of row indices per network "
                         f"({count}), found {_array_kind(rows) if isinstance(rows, np.ndarray) else type(rows).__name__}")
    out = []
    for k, r in enumerate(rows):
        r = np.asarray(r)
        if r.ndim != 1 or r.size == 0 or r.dtype.kind not in "iu":
            raise ValueError(f"rows[{k}] must be a non-empty 1-D array of integer row indices, "
                             f"found {_array_kind(r)}")
        if r.min() < 0 or r.max() >= n_rows:
            raise ValueError(f"rows[{k}] must index the {n_rows} rows of x (0 .. {n_rows - 1}), "
                             f"found {int(r.min() if r.min() < 0 else r.max())}")
        out.append(r.astype(np.int64))
    return out
