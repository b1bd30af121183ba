"""Row-major GEMM with alpha and beta, callable from compiled code.

NumPy's ``@`` always writes a fresh product (beta = 0). Training wants
``w <- w - lr * a @ d.T`` as a single call (alpha = -lr, beta = 1): no gradient
buffer and no separate update pass. Numba already links SciPy's BLAS through its
helper ``numba_xxgemm`` (resolved by symbol name, so cached code stays valid in
a new process); this module only exposes alpha and beta.
"""

from numba import config, types

from ._jit import jit

if config.DISABLE_JIT:
    # Interpreted kernels (coverage runs): the same contract in plain NumPy.
    def gemm(c, a, b, trans_a, trans_b, alpha, beta):
        """c (M, N) = alpha * op(a) @ op(b) + beta * c; op transposes when asked."""
        prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if beta == 0.0:
            c[...] = alpha * prod
        else:
            c[...] = alpha * prod + beta * c

else:
    from numba.np.linalg import ensure_blas

    from numba.core import cgutils
    from numba.extending import intrinsic

    ensure_blas()  # fails early, with a clear message, if SciPy is missing
    _xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
        types.char, types.char, types.char,          # kind, transa, transb
        types.intp, types.intp, types.intp,          # m, n, k
        types.voidptr, types.voidptr, types.intp,    # alpha, a, lda
        types.voidptr, types.intp,                   # b, ldb
        types.voidptr, types.voidptr, types.intp))   # beta, c, ldc

    @intrinsic
    def _address_of(typingctx, value):
        """A pointer to a stack copy of ``value`` (BLAS takes alpha and beta by pointer)."""
        def codegen(context, builder, sig, args):
            slot = cgutils.alloca_once_value(builder, args[0])  # entry block: no stack growth in loops
            return builder.bitcast(slot, cgutils.voidptr_t)
        return types.voidptr(value), codegen

    @jit
    def gemm(c, a, b, trans_a, trans_b, alpha, beta):
        """c (M, N) = alpha * op(a) @ op(b) + beta * c; op transposes when asked.

        All arrays C-contiguous and of one dtype; alpha and beta are cast to it.
        """
        m, n = c.shape
        k = a.shape[0] if trans_a else a.shape[1]
        if m == 0 or n == 0:
            return
        if k == 0:  # BLAS may skip beta * c when k == 0; do it explicitly
            for i in range(m):
                for j in range(n):
                    c[i, j] = 0.0 if beta == 0.0 else beta * c[i, j]
            return
        kind = ord("d") if c.itemsize == 8 else ord("s")
        # BLAS is column-major: a row-major c is c.T there, so compute
        # c.T = op(b).T @ op(a).T by swapping the operands.
        status = _xxgemm(kind, ord("T") if trans_b else ord("N"),
                         ord("T") if trans_a else ord("N"), n, m, k,
                         _address_of(c.dtype.type(alpha)), b.ctypes, b.shape[1],
                         a.ctypes, a.shape[1], _address_of(c.dtype.type(beta)), c.ctypes, n)
        if status != 0:
            raise RuntimeError("BLAS gemm failed")
