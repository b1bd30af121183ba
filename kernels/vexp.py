"""An exp that LLVM can vectorize, for the sigmoid over whole activation arrays.

``np.exp`` in compiled code is a call to libm per value (about 5-10 ns here);
this is straight-line arithmetic, so a loop over it runs 4 values per AVX2
instruction. It is fdlibm's algorithm (the one most libms derive from): reduce
``x = k ln2 + r`` with |r| <= ln2/2, a degree-5 rational approximation of exp(r)
good to under 1 ulp, then scale by 2**k through the exponent bits.

Callers must compile with ``FASTMATH_STRICT``: reassociation would fold the
rounding trick and the two-part ln2 away.
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
P1 = 1.66666666666666019037e-01
P2 = -2.77777777770155933842e-03
P3 = 6.61375632143793436117e-05
P4 = -1.65339022054652515390e-06
P5 = 4.13813679705723846039e-08


def _exp64(x):
    # exp(x) for a float64 x, within 1 ulp of the exact value (measured: 0.87 ulp at most);
    # inf, 0 and NaN as np.exp
    xc = x if x < 710.0 else 710.0  # beyond +-745 the result is inf or 0 anyway
    xc = xc if xc > -746.0 else -746.0
    kd = xc * LOG2E + ROUND
    k = kd - ROUND  # round(x / ln2), as a float
    hi = xc - k * LN2_HI
    lo = k * LN2_LO
    r = hi - lo
    r2 = r * r
    c = r - r2 * (P1 + r2 * (P2 + r2 * (P3 + r2 * (P4 + r2 * P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)  # exp(r)
    ki = float_bits(kd) - float_bits(ROUND)  # k as an int64, no float -> int conversion
    h = ki >> 1  # 2**k in two normal factors: k ranges over [-1077, 1025]
    e = y * bits_float((h + 1023) << 52) * bits_float((ki - h + 1023) << 52)
    return e if x == x else x


if config.DISABLE_JIT:
    def exp64(x):
        """exp(x); inf and 0 beyond the float64 range, as compiled code, without warnings."""
        with np.errstate(over="ignore", under="ignore"):
            return _exp64(x)
else:
    exp64 = jit(inline=True, fastmath=FASTMATH_STRICT)(_exp64)
