"""The four seed workloads (issue 3), as data, and seeded arrays to train them.

Shared by ``python -m fastnn demo`` and the benchmarks::

    from fastnn._workloads import WORKLOADS, build
    p = build("mlp3_gd", np.float32)
    history = fastnn.train(p.x, p.y, p.weights, p.biases, **p.train_kwargs())

Every array comes from ``np.random.default_rng(workload.seed)`` drawn in
float64, then cast to the requested dtype, so float32 and float64 start from
the same initial point (up to rounding) and a given (name, dtype, seed) always
gives identical arrays.

Initial points (each checked to converge with both implementations and both
dtypes, and fastnn to agree with the NumPy reference):

* relu2: standard normal data and weights, as seeds 000/001/003; the SSE falls
  from about 3e7 to about 5e-7 in 500 epochs.
* sigmoid2: standard normal data, weights scaled by 0.1. With seed 002's
  unit-variance weights every sigmoid saturates, and this generator's draw
  diverges at lr 1e-4 (non-finite loss at epoch 101); from this init the SSE
  goes from about 2e3 to about 0.1 in 200 epochs, after a transient rise in the
  first epochs (lr 1e-4 is above the stable step along the output-mean
  direction until the hidden layer adapts; seed 002's own run does the same).
* mlp3_gd: seed 004's data, y = log(X @ beta + 20), and its standard normal
  weights and biases; the MSE goes from about 24 to about 0.012.
* mlp3_sgd: the same on 90 rows with zero biases, as seed 004's SGD cell,
  trained one row per step; the MSE goes from about 2.5 to about 8e-4.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One training configuration: network, data, schedule and initial point."""

    name: str
    seeds: str                  # the seed notebooks it comes from
    rows: int                   # N
    widths: tuple               # n_0 .. n_L (input, hidden..., output)
    activation: str
    loss: str
    lr: float
    epochs: int
    batch_size: int = None      # None: full batch
    biases: str = "none"        # "none", "randn" or "zeros"
    weight_scale: float = 1.0   # initial weights are weight_scale * standard normal
    data: str = "randn"         # "randn": x, y standard normal; "log": y = log(x @ beta + 20)
    seed: int = 0

    @property
    def shape(self):
        """'64x1000->100->10': rows x input -> hidden ... -> output."""
        return f"{self.rows}x" + "->".join(str(n) for n in self.widths)

    def train_kwargs(self, epochs=None):
        """Keyword arguments of ``fastnn.train`` / ``fastnn.reference.train``."""
        return dict(activation=self.activation, loss=self.loss, lr=self.lr,
                    epochs=self.epochs if epochs is None else epochs,
                    batch_size=self.batch_size)

    def build(self, dtype=np.float64, seed=None):
        """Seeded arrays for this workload; see :class:`Problem`."""
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, found {dtype}")
        rng = np.random.default_rng(self.seed if seed is None else seed)
        n_in, n_out = self.widths[0], self.widths[-1]
        x = rng.standard_normal((self.rows, n_in))
        if self.data == "log":
            beta = rng.standard_normal((n_in, n_out))
            y = np.log(x @ beta + 20.0)
        else:
            y = rng.standard_normal((self.rows, n_out))
        weights = [self.weight_scale * rng.standard_normal((a, b))
                   for a, b in zip(self.widths, self.widths[1:])]
        if self.biases == "randn":
            biases = [rng.standard_normal((1, b)) for b in self.widths[1:]]
        elif self.biases == "zeros":
            biases = [np.zeros((1, b)) for b in self.widths[1:]]
        else:
            biases = None
        cast = [a.astype(dtype) for a in [x, y] + weights + (biases or [])]
        n = len(weights)
        return Problem(self, dtype, cast[0], cast[1], cast[2:2 + n],
                       cast[2 + n:] if biases is not None else None)


@dataclass
class Problem:
    """A workload's arrays: data, and the initial weights and biases (never trained).

    Train on ``copy_params()`` to keep the initial point for the next run.
    """

    workload: Workload
    dtype: np.dtype
    x: np.ndarray
    y: np.ndarray
    weights: list
    biases: list = field(default=None)

    def copy_params(self):
        """(weights, biases): fresh copies of the initial point."""
        weights = [w.copy() for w in self.weights]
        biases = None if self.biases is None else [b.copy() for b in self.biases]
        return weights, biases

    def train_kwargs(self, epochs=None):
        return self.workload.train_kwargs(epochs)


WORKLOADS = {w.name: w for w in [
    Workload("relu2", seeds="000/001/003", rows=64, widths=(1000, 100, 10),
             activation="relu", loss="sse", lr=1e-6, epochs=500),
    Workload("sigmoid2", seeds="002", rows=64, widths=(1000, 1000, 10),
             activation="sigmoid", loss="sse", lr=1e-4, epochs=200, weight_scale=0.1),
    Workload("mlp3_gd", seeds="004", rows=900, widths=(5, 4, 4, 1),
             activation="relu", loss="mse", lr=0.1, epochs=501, biases="randn", data="log"),
    Workload("mlp3_sgd", seeds="004", rows=90, widths=(5, 4, 4, 1),
             activation="relu", loss="mse", lr=0.1, epochs=501, batch_size=1,
             biases="zeros", data="log"),
]}

#: workload names in the order the demo runs them
NAMES = tuple(WORKLOADS)


def build(name, dtype=np.float64, seed=None):
    """Seeded arrays for the workload ``name`` (one of :data:`NAMES`)."""
    try:
        workload = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"workload must be one of {', '.join(NAMES)}, found {name!r}") from None
    return workload.build(dtype, seed)
