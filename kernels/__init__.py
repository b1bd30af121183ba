"""fastnn.kernels: the compiled building blocks behind ``fastnn.train``.

Import as ``fastnn.kernels`` (this folder installs under the fastnn package).
Every function is a Numba ``@njit`` dispatcher, callable from Python or from
your own ``@njit`` code, except the plain-Python size and path helpers
(``train_paths``, ``gemm_only``, ``workspace_size``, ``gram_size``, ``gram_state``,
``team_parts``, ``team_workspace``, ``team_grads_size``). Arrays are feature-major:
an activation has shape (units, batch). Outputs come first in every signature.

Layer kernels (``layers.py``)::

    dense_forward(a_out, a_in, w, b, act)
    dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep)
    activation_forward(a, act) / activation_backward(d, a, act)
    loss_forward_backward(d, pred, y, loss) -> float

Whole loops (``loop.py``)::

    train_loop(losses, params, work, net, cfg, lr, x, y, order,
               sample=True, batched=True, small=True, gram=True) -> int
    train_paths(widths, batch, n_rows, in_order=True) -> flags for train_loop
    predict_loop(out, params, work, net, x, small=True)
    gemm_only(widths, batch, n_rows) -> bool: small=None suffices
    loss_and_grad(grads, params, work, net, cfg, x, y) -> float
    workspace_size(widths, batch) / gram_size(widths, batch, n_rows, in_order) -> int
    gram_state(work, widths, batch) -> view: the Gram path's carried state

Full batch split over two threads (``team.py``; ``fastnn.train`` runs the threads)::

    train_team(losses, params, work, net, cfg, lr, x, y, team, grads, part_loss, sync) -> int
    team_parts(widths, batch, n_rows, in_order=True) -> rows per part, or ()
    team_workspace(widths, rows) / team_grads_size(n_params) -> int
"""

from . import team
from .blas import gemm
from .layers import (IDENTITY, MSE, RELU, SIGMOID, SSE, TANH, activation_backward,
                     activation_forward, dense_backward, dense_forward,
                     loss_forward_backward)
from .loop import (ACT, B_OFF, BATCH, CHECK, CHECK_EACH_EPOCH, CHECK_LOSS, CHECK_NONE, GRAM,
                   GRAM_CONTINUE, GRAM_OFF, GRAM_START, LOSS, N_IN, N_OUT, PARAMS_NOT_FINITE,
                   W_OFF, all_finite, gemm_only, gram_size, gram_state, load_batch, loss_and_grad,
                   network_backward, network_forward, predict_loop, train_loop, train_paths,
                   workspace_size)
from .team import team_grads_size, team_parts, team_workspace, train_team

#: activation name -> integer code passed to the kernels
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}
#: loss name -> integer code passed to the kernels
LOSSES = {"sse": SSE, "mse": MSE}

__all__ = [
    "ACTIVATIONS", "LOSSES", "IDENTITY", "RELU", "SIGMOID", "TANH", "SSE", "MSE",
    "activation_forward", "activation_backward", "dense_forward", "dense_backward",
    "loss_forward_backward", "gemm", "load_batch", "network_forward", "network_backward",
    "train_loop", "train_paths", "gemm_only", "predict_loop", "loss_and_grad", "all_finite",
    "workspace_size", "gram_size", "gram_state",
    "train_team", "team_parts", "team_workspace", "team_grads_size", "team",
    "N_IN", "N_OUT", "ACT", "W_OFF", "B_OFF", "LOSS", "BATCH", "CHECK",
    "CHECK_NONE", "CHECK_LOSS", "CHECK_EACH_EPOCH", "PARAMS_NOT_FINITE",
    "GRAM", "GRAM_OFF", "GRAM_START", "GRAM_CONTINUE",
]
