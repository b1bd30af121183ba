"""Every Numba option fastnn uses, in one place.

* ``nogil=True``: kernels release the GIL, so networks train in parallel threads.
* ``error_model="numpy"``: division by zero gives inf/nan as in NumPy, never raises.
* ``fastmath``: only flags that keep NaN and Inf, so divergence stays detectable.
  ``reassoc`` lets reductions vectorize; ``contract`` allows FMA. Code whose
  rounding is part of its algorithm (``vmath.py``) takes ``FASTMATH_STRICT``; the
  update rules (``optim.py``) take ``FASTMATH_NONE``: reassociated, Adam's
  ``b2 v + (1 - b2) g^2`` was rewritten into a cancelling form (~450 eps off).
  Fastmath code rounds as its surrounding module was optimized, so every kernel
  runs its own copies of its callees (``_numba_private.own_copies``): compiled and
  cached code then compute the same bits.
* ``cache=True``, through ``_numba_private.enable``: compiled code is kept on disk,
  and a cache problem never becomes an exception.
"""

import numba
from numba import types
from numba.extending import intrinsic

from . import _numba_private

# Never 'nnan' / 'ninf': they would let LLVM assume finiteness and hide divergence.
FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})
# May fuse a * b + c into an FMA, but never reorder or fold arithmetic.
FASTMATH_STRICT = frozenset({"contract"})
# IEEE arithmetic as written, in the order written.
FASTMATH_NONE = frozenset()


def jit(fn=None, *, fastmath=FASTMATH, inline=False, python=False):
    """``numba.njit`` with fastnn's options and a cache that cannot fail.

    ``inline=True`` inlines a small scalar helper at Numba's level, where LLVM
    would not (``tanh64`` is too big for its inliner, and a call per element
    stops a loop from vectorizing). An inlined helper takes the fastmath flags
    of the function it is inlined into.

    ``python=True`` marks the entry points fastnn calls from Python (``run_epochs``,
    ``predict_rows``, ``loss_and_grad``): compiled as Numba compiles any function.
    Every other kernel is compiled-only (``_numba_private``): no Python wrappers and
    no machine code of its own, since its callers link in and optimize its code (see
    docs/design.md for what that saves at compile time). Called from Python, such a
    kernel runs a twin compiled on the first such call.
    """
    if fn is None:
        return lambda f: jit(f, fastmath=fastmath, inline=inline, python=python)
    if fastmath not in (FASTMATH, FASTMATH_STRICT, FASTMATH_NONE):
        raise ValueError("fastmath must be FASTMATH, FASTMATH_STRICT or FASTMATH_NONE")
    options = dict(nogil=True, error_model="numpy", fastmath=set(fastmath) or False)
    if inline:  # compiled on its own only when called from Python (tests): keep the wrappers
        options["inline"] = "always"
    elif not python:
        options.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
        return _numba_private.enable(_numba_private.compiled_only(numba.njit(**options)(fn)))
    return _numba_private.enable(numba.njit(**options)(fn))


if numba.config.DISABLE_JIT:
    def plain(value):
        """``value`` (interpreted kernels have no literal types)."""
        return value
else:
    @intrinsic
    def plain(typingctx, value):
        """``value``, typed as a plain bool or int rather than as a literal.

        From compiled code, Numba compiles a callee once per literal argument:
        ``f(x, True)`` and ``f(x, False)`` are two compilations of ``f``. A flag
        passed as ``plain(True)`` shares one.
        """
        def codegen(context, builder, sig, args):
            return context.cast(builder, args[0], sig.args[0], sig.return_type)
        return types.unliteral(value)(value), codegen
