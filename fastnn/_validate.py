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
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is updated in place), "
                        f"found {type(arr).__name__}")
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, found {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but weights[0] has {dtype}; "
                        f"all weights and biases must share one dtype")
    if update and not arr.flags.writeable:
        raise ValueError(f"{name} is read-only, but fastnn updates it in place; "
                         f"pass a writeable array (for example {name.split('[')[0]}[i].copy())")


def _data(arr, name, dtype):
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, found dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), found shape {a.shape}")
    return a


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


def _check_no_overlap(arrays):
    for i, (name_a, a) in enumerate(arrays):
        for name_b, b in arrays[:i]:
            if a is b:
                raise ValueError(f"{name_a} and {name_b} are the same array; "
                                 f"each parameter needs its own array")
            if np.may_share_memory(a, b):
                try:
                    overlap = np.shares_memory(a, b, max_work=10**6)
                except np.exceptions.TooHardError:
                    overlap = True
                if overlap:
                    raise ValueError(f"{name_a} and {name_b} share memory; "
                                     f"each parameter needs its own array")


def check_network(x, y, weights, biases, activation, loss, update=True):
    """Validate a network and its data; returns a :class:`Network`.

    ``y=None`` and ``update=False`` serve ``predict``, which reads the
    parameters only (read-only arrays are fine there).
    """
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

    xa = _data(x, "x", dtype)
    if xa.shape[0] == 0:
        raise ValueError(f"x must have at least one row, found shape {xa.shape}")
    if xa.shape[1] != widths[0]:
        raise ValueError(f"x must have {widths[0]} columns to match weights[0] of shape "
                         f"{weights[0].shape}, found shape {xa.shape}")
    data = [("x", xa)]
    if y is not None:
        ya = _data(y, "y", dtype)
        if ya.shape[0] != xa.shape[0]:
            raise ValueError(f"y must have one row per row of x ({xa.shape[0]}), "
                             f"found {ya.shape[0]} rows")
        if ya.shape[1] != widths[-1]:
            raise ValueError(f"y must have {widths[-1]} columns to match weights[-1] of shape "
                             f"{weights[-1].shape}, found shape {ya.shape}")
        data.append(("y", ya))

    params = [(f"weights[{i}]", w) for i, w in enumerate(weights)]
    params += [(f"biases[{i}]", b) for i, b in enumerate(biases) if b is not None]
    if update:
        _check_no_overlap(params)
        for name, p in params:
            for data_name, d in data:
                if np.may_share_memory(p, d) and np.shares_memory(p, d, max_work=10**6):
                    raise ValueError(f"{name} shares memory with {data_name}; "
                                     f"training would change the data")

    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name, found {type(loss).__name__}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {_names(LOSSES)}, found {loss!r}")
    codes = _activation_codes(activation, len(weights) - 1)

    cast = []
    for name, d in data:
        d = np.ascontiguousarray(d, dtype=dtype)
        # min and max see any NaN or Inf without an N-sized temporary
        if not (np.isfinite(d.min()) and np.isfinite(d.max())):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(d))[0])
            raise ValueError(f"{name} must be finite, found {d[bad]} at index {bad}")
        cast.append(d)
    return Network(x=cast[0], y=cast[1] if y is not None else None, weights=list(weights),
                   biases=biases, dtype=dtype, widths=widths, activations=codes,
                   loss=LOSSES[loss])


def check_schedule(lr, epochs, batch_size, shuffle, seed):
    """Validate the optimisation settings; returns (lr, epochs, batch_size or None)."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr must be a real number, found {type(lr).__name__}")
    if not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be finite and > 0, found {lr!r}")
    epochs = _count(epochs, "epochs")
    if batch_size is not None:
        batch_size = _count(batch_size, "batch_size")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, found {type(shuffle).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(
            seed, (numbers.Integral, np.random.SeedSequence, np.random.Generator))):
        raise TypeError(f"seed must be None, an int, a SeedSequence or a Generator, "
                        f"found {type(seed).__name__}")
    if isinstance(seed, numbers.Integral) and seed < 0:
        raise ValueError(f"seed must be >= 0, found {seed}")
    return float(lr), epochs, batch_size


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, found {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, found {value}")
    return int(value)


def check_predict(x, weights, biases, activation):
    """Validate predict's arguments: the network and x, parameters only read."""
    return check_network(x, None, weights, biases, activation, "sse", update=False)
