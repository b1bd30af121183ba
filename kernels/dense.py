"""One dense layer: forward and backward, through BLAS or through loops for small layers.

Layout is feature-major: an activation has shape (units, batch), so the batch is
the contiguous axis and the loops for small layers vectorize along it even when
a layer has four units. Weights keep the user's (n_in, n_out) shape.

``blas`` says which way a layer goes (BLAS, or the loops of ``small.py``). The
caller decides it once per network (``fastnn``'s plan, from ``blas_pays``); both
ways compute the same products.
"""

from ._jit import jit, plain
from .activations import RELU, activation_backward, activation_forward
from .blas import gemm
from .small import combine_rows, outer_rows


def blas_pays(n_in, n_out, m):
    """True when BLAS beats the small-layer loops for an (n_in, n_out) layer on m rows.

    From a sweep of one layer's forward and backward, loops against BLAS, over widths
    4-128 and 1-512 rows, checked on the benchmark grid (docs/design.md): BLAS's fixed
    cost per call loses on few products, and from 16 rows the loops keep a layer with
    a side under 8 (under 16 from 64 rows) in registers.
    """
    p = n_in * n_out
    if m < 16:
        return p > 64
    if m < 64:
        return p > 64 and min(n_in, n_out) >= 8
    return p >= 1024 and min(n_in, n_out) >= 16


@jit(inline=True)
def dense_forward(a_out, a_in, w, b, act, blas):
    """One dense layer forward: a_out (n_out, m) = act(w.T @ a_in + b[:, None]).

    Parameters
    ----------
    a_out : ndarray (n_out, m)
        Receives the layer's activation.
    a_in : ndarray (n_in, m)
        The layer below's activation (the batch along the contiguous axis).
    w : ndarray (n_in, n_out)
        The user's weight layout.
    b : ndarray (n_out,), or (0,) for no bias
    act : int
        See ``activation_forward``.
    blas : bool
        True: BLAS gemm; False: the loops of ``small.py`` (layers of a few units).
    """
    if blas:
        has_b = b.shape[0] > 0
        n_out, m = a_out.shape
        for j in range(n_out):  # bias pre-filled, then beta = 1 adds the product
            for t in range(m):
                a_out[j, t] = b[j] if has_b else 0.0
        gemm(a_out, w, a_in, plain(True), plain(False), 1.0, 1.0)
    else:  # relu is applied in the loop
        combine_rows(a_out, a_in, w, plain(True), b, act == RELU)
        if act == RELU:
            return
    activation_forward(a_out, act)


@jit(inline=True)
def dense_backward(d_in, gw, gb, w, d_out, a_in, act_in, scale, keep, blas):
    """One dense layer backward, with the update fused in when asked.

    d_in (n_in, m) = (w @ d_out) * act_in'(a_in), skipped when d_in has no rows;
    gw (n_in, n_out) = keep * gw + scale * a_in @ d_out.T; gb (n_out,) = keep * gb +
    scale * (d_out summed over the batch), skipped when gb has no elements.

    gw and gb may be w and b themselves (scale = -lr, keep = 1: the SGD step); d_in is
    formed from w before it changes. keep = 0 never reads gw or gb.

    Parameters
    ----------
    d_in, gw, gb, w, d_out, a_in
        As above; d_out is d loss / d z of this layer, a_in the layer below's output.
    act_in : int
        The activation of the layer below (for its derivative).
    scale, keep : float
    blas : bool
        See ``dense_forward``.
    """
    if d_in.shape[0] > 0:
        if blas:
            gemm(d_in, w, d_out, plain(False), plain(False), 1.0, 0.0)
        else:
            combine_rows(d_in, d_out, w, plain(False), w[0, :0], plain(False))
        activation_backward(d_in, a_in, act_in)
    if blas:
        n_out, m = d_out.shape
        for j in range(gb.shape[0]):
            s = 0.0
            for t in range(m):
                s += d_out[j, t]
            gb[j] = scale * s if keep == 0.0 else keep * gb[j] + scale * s
        gemm(gw, a_in, d_out, plain(False), plain(True), scale, keep)
    else:  # the bias sums too
        outer_rows(gw, gb, a_in, d_out, scale, keep)
