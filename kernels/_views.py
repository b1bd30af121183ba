"""Cheap 2-D views into the flat parameter and scratch buffers.

``buf[off:off + n*m].reshape((n, m))`` costs a call into Numba's reshape helper
each time; per-sample SGD makes ~20 such views per step, which was most of its
run time. :func:`block` builds the same view directly.

:func:`opaque` hides a value from the optimiser, and :func:`unliteral` a
constant from Numba's typing (see their docstrings).
"""

from llvmlite import ir
from numba import config, types

from ._jit import jit

if config.DISABLE_JIT:
    def opaque(n):
        """``n``, unchanged."""
        return n

    def unliteral(value):
        """``value``, unchanged."""
        return value

    def block(buf, off, n, m):
        """(n, m) C-contiguous view of the 1-D ``buf`` starting at ``off``."""
        if off < 0 or off + n * m > buf.shape[0]:
            raise IndexError("block out of range")
        return buf[off:off + n * m].reshape((n, m))

else:
    from numba.extending import intrinsic
    from numba.np.arrayobj import make_array, populate_array

    @intrinsic
    def _view2d(typingctx, buf, off, n, m):
        # A view without its own reference count: only valid while buf is alive,
        # which holds for every use inside one kernel call.
        retty = types.Array(buf.dtype, 2, "C")

        def codegen(context, builder, sig, args):
            src = make_array(sig.args[0])(context, builder, args[0])
            off_, n_, m_ = (context.cast(builder, v, t, types.intp)
                            for v, t in zip(args[1:], sig.args[1:]))
            itemsize = context.get_constant(
                types.intp, context.get_abi_sizeof(context.get_data_type(buf.dtype)))
            out = make_array(retty)(context, builder)
            populate_array(out, data=builder.gep(src.data, [off_]), shape=[n_, m_],
                           strides=[builder.mul(m_, itemsize), itemsize],
                           itemsize=itemsize, meminfo=None)
            return out._getvalue()

        return retty(buf, off, n, m), codegen

    @intrinsic
    def _opaque(typingctx, n):
        def codegen(context, builder, sig, args):
            # an empty inline asm that "may change" n: LLVM cannot constant-fold through it
            fnty = ir.FunctionType(args[0].type, [args[0].type])
            return builder.asm(fnty, "", "=r,0", [args[0]], False)
        return types.unliteral(n)(n), codegen  # a plain int, never a literal

    @jit(inline=True)
    def opaque(n):
        """``n`` (an integer), unchanged, but unknown to LLVM's optimiser.

        An in-place ``a[t] = 0 if a[t] <= 0 else a[t]`` lets LLVM drop the store of
        the unchanged value and vectorize the rest as masked stores, which are slow
        on AMD CPUs (measured 5x slower than a plain pass). Storing ``a[t] * one``
        with an opaque ``one`` keeps a plain store; the product is exact.
        """
        return _opaque(n)

    @intrinsic
    def unliteral(typingctx, value):
        """``value``, typed as its plain type (bool, int64) rather than as a literal.

        Numba compiles a callee once per literal argument: ``f(x, True)`` and
        ``f(x, False)`` are two compilations of ``f``. Flags passed through this
        share one (measured: 6 s of the first compile for the small-layer loops).
        """
        def codegen(context, builder, sig, args):
            return context.cast(builder, args[0], sig.args[0], sig.return_type)
        return types.unliteral(value)(value), codegen

    @jit(inline=True)
    def block(buf, off, n, m):
        """(n, m) C-contiguous view of the 1-D ``buf`` starting at ``off``."""
        if off < 0 or off + n * m > buf.shape[0]:
            raise IndexError("block out of range")
        return _view2d(buf, off, n, m)
