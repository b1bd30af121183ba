"""Update rules: one pass over the flat parameters, in place, with the optimizer's state.

``hyper`` (float64) holds LR, MOMENTUM, DECAY (weights), BIAS_DECAY, BETA1, BETA2, EPS.
The weights come first in the flat buffer (``n_weights`` elements), then the biases.
``state`` is (2, P): the momentum buffer, or Adam's first and second moments.
g is the gradient plus decay * p; t the step number, from 1.

    SGD      torch.optim.SGD, dampening 0: b = g at t = 1, then b = mu b + g;
             p -= lr (g + mu b) with Nesterov, p -= lr b without (p -= lr g for mu = 0)
    ADAM     torch.optim.Adam: m += (g - m)(1 - beta1), v = beta2 v + (1 - beta2) g^2,
             p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    SK_SGD   scikit-learn's SGD: v = mu v - lr g; p += mu v - lr g with Nesterov, else p += v
    SK_ADAM  scikit-learn's Adam: m, v as ADAM (plain products),
             p += -lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)
"""

import numpy as np

from ._jit import FASTMATH_NONE, jit

SGD, ADAM, SK_SGD, SK_ADAM = 0, 1, 2, 3
LR, MOMENTUM, DECAY, BIAS_DECAY, BETA1, BETA2, EPS = range(7)
HYPER_SIZE = 7


@jit(fastmath=FASTMATH_NONE)  # IEEE as written: see _jit.py
def optimizer_update(params, grads, state, rule, hyper, nesterov, t, n_weights, decay_scale):
    """One optimizer step on the flat parameters, in place (formulas: the module docstring).

    Parameters
    ----------
    params, grads : ndarray (P,)
        Weights first (``params[:n_weights]``), then biases.
    state : ndarray (2, P)
        The momentum buffer, or Adam's first and second moments (unused by plain SGD).
    rule : int
        SGD, ADAM, SK_SGD or SK_ADAM.
    hyper : ndarray float64
        LR, MOMENTUM, DECAY, BIAS_DECAY, BETA1, BETA2, EPS at those indexes.
    nesterov : bool
    t : float
        This step's number, from 1 (Adam's bias correction, SGD's first momentum step).
    n_weights : int
    decay_scale : float
        Multiplies both decays (1 / batch rows for scikit-learn's alpha / n_samples).
    """
    f = params.dtype.type
    lr, mu, b1, b2, eps = (f(hyper[LR]), f(hyper[MOMENTUM]), f(hyper[BETA1]), f(hyper[BETA2]),
                           f(hyper[EPS]))
    one = f(1)
    c1, c2 = f(1.0 - hyper[BETA1] ** t), f(1.0 - hyper[BETA2] ** t)
    step, root_c2 = lr / c1, np.sqrt(c2)
    sk_lr = f(hyper[LR] * np.sqrt(1.0 - hyper[BETA2] ** t) / (1.0 - hyper[BETA1] ** t))
    buf, sq = state[0], state[1]
    for part in range(2):
        lo, hi = (0, n_weights) if part == 0 else (n_weights, params.shape[0])
        wd = f(hyper[DECAY if part == 0 else BIAS_DECAY] * decay_scale)
        for i in range(lo, hi):
            p = params[i]
            g = grads[i] + wd * p if wd != 0 else grads[i]
            if rule == SGD:
                if mu == 0:
                    params[i] = p - lr * g
                else:
                    b = g if t == 1 else mu * buf[i] + g
                    buf[i] = b
                    params[i] = p - lr * (g + mu * b if nesterov else b)
            elif rule == ADAM:
                m = buf[i] + (g - buf[i]) * (one - b1)
                v = b2 * sq[i] + (one - b2) * g * g
                buf[i], sq[i] = m, v
                params[i] = p - step * (m / (np.sqrt(v) / root_c2 + eps))
            elif rule == SK_SGD:
                v = mu * buf[i] - lr * g
                buf[i] = v
                params[i] = p + (mu * v - lr * g if nesterov else v)
            else:
                m = b1 * buf[i] + (one - b1) * g
                v = b2 * sq[i] + (one - b2) * (g * g)
                buf[i], sq[i] = m, v
                params[i] = p + -sk_lr * m / (np.sqrt(v) + eps)
