"""exp and tanh as straight-line float64 arithmetic, so that loops over them vectorize.

``np.exp`` and ``np.tanh`` in compiled code are a libm call per value; these
run four values per AVX2 instruction, with no division in ``exp64`` and one in
``tanh64`` (division is the slowest vector instruction). Both are inlined at
Numba's level, so every function that calls them must be compiled with
``FASTMATH_STRICT``: reassociation would fold their rounding steps away.

* Both reduce the argument as fdlibm does: x = k ln2 + r with |r| <= ln2/2, then
  e**r - 1 = r + r^2 P(r) with a degree-9 polynomial P, and 2**k through the
  exponent bits.
* ``exp64``: (1 + (e**r - 1)) 2**k.
* ``tanh64``: with e = e**(2|x|) - 1 formed as 2**k (e**r - 1) + (2**k - 1),
  tanh(|x|) = e / (e + 2), which keeps full relative accuracy near 0; then the sign of x.

Accuracy: exp64 within 1.06 ulp of exact values, tanh64 within 2.5 (so tanh64 is not
monotone to the last bit); the tests assert 4 ulp against NumPy and Python's libm
(``tests/test_kernels.py``, with the measurements). docs/design.md has the speed.
"""

import math

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
# P(r) = (e**r - 1 - r) / r**2 on |r| <= ln2 / 2: its Taylor series economized to degree 9
# (tests/test_kernels.py derives these in exact arithmetic)
P0, P1, P2, P3, P4 = (0.5000000000000001, 0.1666666666666667, 0.04166666666662416,
                      0.008333333333326141, 0.0013888888917198588)
P5, P6, P7, P8, P9 = (0.00019841269874802173, 2.480152131987891e-05, 2.7557255423879104e-06,
                      2.7620076916475885e-07, 2.510520706495097e-08)


@jit(fastmath=FASTMATH_STRICT, inline=True)
def reduce_ln2(x):
    # (r, k) with x = k ln2 + r, |r| <= ln2 / 2, k an int64; for |x| < 746
    kd = x * LOG2E + ROUND
    k = kd - ROUND  # round(x / ln2), as a float
    r = (x - k * LN2_HI) - k * LN2_LO
    return r, float_bits(kd) - float_bits(ROUND)  # k as an int64, no float -> int conversion


@jit(fastmath=FASTMATH_STRICT, inline=True)
def expm1_reduced(r):
    # e**r - 1 for |r| <= ln2 / 2, as r + r^2 P(r): no cancellation near 0, and no division
    p = P9
    p = p * r + P8
    p = p * r + P7
    p = p * r + P6
    p = p * r + P5
    p = p * r + P4
    p = p * r + P3
    p = p * r + P2
    p = p * r + P1
    p = p * r + P0
    return r + (r * r) * p


@jit(fastmath=FASTMATH_STRICT, inline=True)
def exp64(x):
    # exp(x) for a float64 x; inf, 0 and NaN as np.exp
    xc = x if x < 710.0 else 710.0  # beyond +-745 the result is inf or 0 anyway
    xc = xc if xc > -746.0 else -746.0
    r, k = reduce_ln2(xc)
    h = k >> 1  # 2**k as two normal factors: k ranges over [-1076, 1024]
    e = (1.0 + expm1_reduced(r)) * bits_float((h + 1023) << 52) * bits_float((k - h + 1023) << 52)
    return e if x == x else x


@jit(fastmath=FASTMATH_STRICT, inline=True)
def tanh64(x):
    # tanh(x) for a float64 x; +-1 from |x| = 20 (tanh rounds to +-1 from 19.1), NaN as np.tanh
    u = 2.0 * abs(x)
    u = 40.0 if u > 40.0 else u  # NaN stays NaN
    r, k = reduce_ln2(u)
    s = bits_float((k + 1023) << 52)  # 2**k, k in [0, 58]
    e = s * expm1_reduced(r) + (s - 1.0)  # e**u - 1, accurate near u = 0
    return math.copysign(e / (e + 2.0), x)  # tanh(|x|) = (e**u - 1) / (e**u + 1)
