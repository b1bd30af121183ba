"""One small training call per fastnn code path, for compile and first-call benchmarks.

Imported by the fresh processes of ``bench_startup.py`` (and by ``busy.py``),
so it loads nothing but NumPy and fastnn. Each path compiles on its own: a
process compiles only the paths its calls take (``kernels/loop.py``).

* ``generic``: mlp3_gd's shape (900x5 -> 4 -> 4 -> 1, full batch, biases, MSE):
  ``network.batch_step``, the path of any batch size, loss and optimizer;
* ``sample``: mlp3_sgd (batch_size=1, every width <= 8, plain SGD): ``sample.py``;
* ``gram``: relu2 (a full batch of 64 rows x 1000 features, in order): ``gram.py``.
"""

import time

import fastnn
from fastnn import _workloads

PATHS = {"generic": "mlp3_gd", "sample": "mlp3_sgd", "gram": "relu2"}
EPOCHS = 3  # short: the first call's extra cost is not lost in the call itself


def make(path, dtype="float64", epochs=EPOCHS):
    """A function that trains fresh copies of the path's workload and returns the seconds."""
    p = _workloads.build(PATHS[path], dtype)
    kw = p.train_kwargs(epochs)

    def call():
        ws, bs = p.copy_params()
        t0 = time.perf_counter()
        fastnn.train(p.x, p.y, ws, bs, **kw)
        return time.perf_counter() - t0
    return call
