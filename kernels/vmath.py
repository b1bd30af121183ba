"""exp and tanh as straight-line float64 arithmetic, so that loops over them vectorize.

``np.exp`` and ``np.tanh`` in compiled code are a libm call per value; these
run four values per AVX2 instruction. Both are inlined at Numba's level, so
every function that calls them must be compiled with ``FASTMATH_STRICT``:
reassociation would fold their rounding steps away.

* ``exp64``: fdlibm's algorithm (the one most libms derive from): x = k ln2 + r
  with |r| <= ln2/2, a degree-5 rational approximation of exp(r), then 2**k
  through the exponent bits.
* ``tanh64``: Cephes' algorithm: x + x^3 P(x^2)/Q(x^2) for |x| < 0.625, else
  1 - 2 / (exp(2|x|) + 1) with the sign of x.

Accuracy against NumPy is measured in ``tests/test_activations.py``.
"""

from numba import config, types

from ._jit import FASTMATH_STRICT, jit

if config.DISABLE_JIT:
    import numpy as np

    def float_bits(x):
        """The IEEE-754 bits of the float64 ``x``, as an int64."""
        return np.float64(x).view(np.int64)

    def bits_float(i):
        """The float64 whose IEEE-754 bits are the int64 ``i``."""
        return np.int64(i).view(np.float64)

else:
    from numba.extending import intrinsic

    @intrinsic
    def float_bits(typingctx, x):
        """The IEEE-754 bits of the float64 ``x``, as an int64."""
        if x != types.float64:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.int64))
        return types.int64(types.float64), codegen

    @intrinsic
    def bits_float(typingctx, i):
        """The float64 whose IEEE-754 bits are the int64 ``i``."""
        if i != types.int64:
            return None

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))
        return types.float64(types.int64), codegen


LOG2E = 1.44269504088896338700e+00
LN2_HI = 6.93147180369123816490e-01  # ln2's leading bits: k * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer, kept in the low bits
E1 = 1.66666666666666019037e-01
E2 = -2.77777777770155933842e-03
E3 = 6.61375632143793436117e-05
E4 = -1.65339022054652515390e-06
E5 = 4.13813679705723846039e-08
TP0, TP1, TP2 = -9.64399179425052238628e-01, -9.92877231001918586564e+01, -1.61468768441708447952e+03
TQ0, TQ1, TQ2 = 1.12811678491632931402e+02, 2.23548839060100448583e+03, 4.84406305325125486048e+03


@jit(fastmath=FASTMATH_STRICT, inline=True)
def exp64(x):
    # exp(x) for a float64 x; inf, 0 and NaN as np.exp
    xc = x if x < 710.0 else 710.0  # beyond +-745 the result is inf or 0 anyway
    xc = xc if xc > -746.0 else -746.0
    kd = xc * LOG2E + ROUND
    k = kd - ROUND  # round(x / ln2), as a float
    hi = xc - k * LN2_HI
    lo = k * LN2_LO
    r = hi - lo
    r2 = r * r
    c = r - r2 * (E1 + r2 * (E2 + r2 * (E3 + r2 * (E4 + r2 * E5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)  # exp(r)
    ki = float_bits(kd) - float_bits(ROUND)  # k as an int64, no float -> int conversion
    h = ki >> 1  # 2**k as two normal factors: k ranges over [-1077, 1025]
    e = y * bits_float((h + 1023) << 52) * bits_float((ki - h + 1023) << 52)
    return e if x == x else x


@jit(fastmath=FASTMATH_STRICT, inline=True)
def tanh64(x):
    # tanh(x) for a float64 x; +-1 beyond |x| = 20 (tanh rounds to +-1 from 19.1), NaN as np.tanh
    ax = x if x >= 0.0 else -x
    e = exp64(2.0 * (ax if ax < 20.0 else 20.0))
    big = 1.0 - 2.0 / (e + 1.0)
    big = big if x >= 0.0 else -big
    s = x * x
    p = (TP0 * s + TP1) * s + TP2
    q = ((s + TQ0) * s + TQ1) * s + TQ2
    small = x + x * s * (p / q)
    t = small if ax < 0.625 else big
    return t if x == x and x != 0.0 else x  # NaN, and zeros with their sign
