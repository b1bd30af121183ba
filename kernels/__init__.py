"""fastnn.kernels: the compiled building blocks behind ``fastnn.train``.

Import as ``fastnn.kernels`` (this folder installs under the fastnn package).
Every function here is a Numba ``@njit`` dispatcher, callable from Python or
from your own ``@njit`` code, except the plain-Python layout helpers. Arrays
are feature-major: an activation has shape (units, batch). Outputs come first.

One operation, one implementation::

    activations.py  activation_forward(a, act), activation_backward(d, a, act),
                    softmax_forward(p, tmp, z)
    losses.py       loss_forward_backward(d, tmp, z, y, loss) -> float
    dense.py        dense_forward(a_out, a_in, w, b, act, blas)
                    dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep, blas)
    optim.py        optimizer_update(params, grads, state, rule, hyper, nesterov, t, n_weights,
                                     decay_scale)
    blas.py         gemm(c, a, b, trans_a, trans_b, alpha, beta)

The training loop and its paths (one compiled call runs a chunk of epochs)::

    network.py      the layer table and workspace; network_forward/backward, batch_step;
                    predict_rows(...), loss_and_grad(...)
    loop.py         run_epochs(sample, gram, generic, validate, ...): a chunk of epochs on
                    one path, network.batch_step (any batch size, loss and optimizer),
                    sample.py (batch_size=1, plain SGD) or gram.py (full-batch plain SGD
                    on wide data)

They trust their arguments, as BLAS does (``gemm`` alone checks its operands): develop
with ``NUMBA_BOUNDSCHECK=1`` and a ``NUMBA_CACHE_DIR`` of its own (the cache does not key
on the flag), which turns an access past an array into ``IndexError``.
``fastnn/_state.py`` (``Run.call``) shows how it is called. Only the three entry
points (``run_epochs``, ``predict_rows``, ``loss_and_grad``) are compiled as ordinary
Numba functions; every other kernel is compiled for compiled callers alone (yours
included), which link in its code. Called from Python, such a kernel runs a twin,
compiled on the first such call. Having no C entry point, they cannot be passed as
typed first-class functions (``types.FunctionType``); pass the dispatcher itself.
"""

from . import gram, loop, network, sample
from .activations import (IDENTITY, RELU, SIGMOID, TANH, activation_backward, activation_forward,
                          softmax_forward)
from .blas import gemm
from .dense import blas_pays, dense_backward, dense_forward
from .losses import MSE, SIGMOID_BCE, SOFTMAX_CE, SSE, loss_forward_backward
from .optim import ADAM, SGD, SK_ADAM, SK_SGD, optimizer_update

#: activation name -> integer code passed to the kernels
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}
#: loss name -> integer code passed to the kernels
LOSSES = {"sse": SSE, "mse": MSE, "softmax_ce": SOFTMAX_CE, "sigmoid_bce": SIGMOID_BCE}

__all__ = [
    "ACTIVATIONS", "LOSSES", "IDENTITY", "RELU", "SIGMOID", "TANH",
    "SSE", "MSE", "SOFTMAX_CE", "SIGMOID_BCE", "SGD", "ADAM", "SK_SGD", "SK_ADAM",
    "activation_forward", "activation_backward", "softmax_forward", "loss_forward_backward",
    "dense_forward", "dense_backward", "blas_pays", "optimizer_update", "gemm",
    "network", "loop", "sample", "gram",
]
