"""Row-major GEMM with alpha and beta, callable from compiled code.

NumPy's ``@`` always writes a fresh product (beta = 0). Training wants
``w <- w - lr * a @ d.T`` as a single call (alpha = -lr, beta = 1): no gradient
buffer and no separate update pass. The kernels call ``dgemm`` and ``sgemm`` of
NumPy's own OpenBLAS when NumPy bundles one (its wheels: 64-bit integers), else
SciPy's from ``scipy.linalg.cython_blas`` (32-bit integers, the library Numba's own
``np.dot`` uses); ``_blaslib`` decides. They are reached through two symbols
registered with LLVM at import, so cached machine code finds them again in a new
process.
"""

import numpy as np
from numba import config, types

from ._jit import jit


@jit(inline=True)
def check_operands(c, a, b, trans_a, trans_b):
    # what gemm hands BLAS as raw pointers, checked; compiled, the dtype and ndim tests fold
    # away (part of the types), and so does contiguity for arrays typed C-contiguous
    if c.ndim != 2 or a.ndim != 2 or b.ndim != 2:
        raise ValueError("gemm: c, a and b must be 2-D arrays")
    if not (c.dtype == np.dtype(np.float64) or c.dtype == np.dtype(np.float32)) \
            or not (a.dtype == c.dtype and b.dtype == c.dtype):
        raise TypeError("gemm: c, a and b must all be float64 or all float32")
    if not (_contiguous(c) and _contiguous(a) and _contiguous(b)):
        raise ValueError("gemm: c, a and b must be C-contiguous (row-major, unit stride); "
                         "found a strided, transposed or Fortran-order array")
    rows = a.shape[1] if trans_a else a.shape[0]
    inner = a.shape[0] if trans_a else a.shape[1]
    b_inner, cols = (b.shape[1], b.shape[0]) if trans_b else (b.shape[0], b.shape[1])
    if rows != c.shape[0] or cols != c.shape[1] or b_inner != inner:
        raise ValueError("gemm: shapes must be c (M, N), op(a) (M, K), op(b) (K, N); "
                         "found others")


@jit(inline=True)
def _contiguous(x):
    # C-contiguous, or empty (Numba's flag is False for an empty strided view; NumPy's True)
    return x.size == 0 or x.flags.c_contiguous


if config.DISABLE_JIT:
    # Interpreted kernels (coverage runs): the same contract in plain NumPy.
    def gemm(c, a, b, trans_a, trans_b, alpha, beta):
        """c (M, N) = alpha * op(a) @ op(b) + beta * c; op transposes when asked."""
        check_operands(c, a, b, trans_a, trans_b)
        prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if beta == 0.0:
            c[...] = alpha * prod
        else:
            c[...] = alpha * prod + beta * c

else:
    import ctypes
    import importlib.machinery
    import importlib.util
    import os
    import re
    import sys

    import numpy as np
    from llvmlite import binding
    from llvmlite import ir as llvm_ir
    from numba.extending import intrinsic

    from . import _blaslib

    _MODULE = "scipy.linalg.cython_blas"
    # Fortran ?gemm: everything by pointer, 32-bit integers (LP64 BLAS).
    _SIGNATURE = ("void (char *, char *, int *, int *, int *, {t} *, {t} *, int *, {t} *, int *, "
                  "{t} *, {t} *, int *)")
    _INT_MAX = 2**31 - 1
    _N, _T = 78, 84  # ord("N"), ord("T"): integer constants compile faster than ord of a str

    def _cython_blas():
        """SciPy's cython_blas module, loaded without running scipy/linalg/__init__.py.

        ``import scipy.linalg.cython_blas`` first imports the scipy.linalg package,
        most of SciPy's linear algebra: 0.19 s, a quarter of ``import fastnn``.
        fastnn needs two function pointers from this one extension module, so it
        loads the file directly and then takes it out of sys.modules: a later
        ``import scipy.linalg`` gets this same module and binds it to its package
        as usual. Anything unexpected falls back to the ordinary import.
        """
        if _MODULE in sys.modules:
            return sys.modules[_MODULE]
        try:
            import scipy
        except ImportError as exc:
            raise ImportError("fastnn needs SciPy: its kernels call SciPy's BLAS "
                              "(pip install scipy)") from exc
        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.isfile(path):
                break
        else:
            path = None
        try:
            spec = importlib.util.spec_from_file_location(_MODULE, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except Exception:  # noqa: BLE001 - any surprise: the ordinary import below
            module = None
        finally:
            sys.modules.pop(_MODULE, None)  # Cython registers itself while loading
        if module is None:
            import scipy.linalg.cython_blas as module
        return module

    # Private prototypes: setting restype on ctypes.pythonapi's shared entries would
    # change them for every other user in the process.
    _capsule_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(
        ("PyCapsule_GetName", ctypes.pythonapi))
    _capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi))

    def _function_address(module, name, scalar):
        """The address of cython_blas's ``name``, after checking its C signature."""
        capsule = getattr(module, "__pyx_capi__", {}).get(name)
        if capsule is None:
            raise ImportError(f"fastnn: SciPy's {_MODULE} does not export {name}")
        signature = _capsule_name(capsule)
        # Cython spells the scalar type as a module typedef, e.g. __pyx_t_..._cython_blas_d.
        found = re.sub(r"__pyx_t_\w*cython_blas_([a-z])\b", r"\1", signature.decode())
        if found != _SIGNATURE.format(t=scalar):
            raise ImportError(f"fastnn: SciPy's {_MODULE}.{name} has the C signature "
                              f"{found!r}; fastnn calls it as "
                              f"{_SIGNATURE.format(t=scalar)!r} (32-bit integer BLAS)")
        return _capsule_pointer(capsule, signature)

    def _gemm_addresses():
        """{"d": address, "s": address} of the ?gemm routines _blaslib chose."""
        if _blaslib.GEMM is not None:
            return _blaslib.GEMM
        module = _cython_blas()
        return {s: _function_address(module, s + "gemm", s) for s in ("d", "s")}

    # Integers as the library takes them (_blaslib.KIND is part of the cache key).
    _int = np.int64 if _blaslib.KIND == _blaslib.NUMPY else np.int32
    for _scalar, _address in _gemm_addresses().items():
        binding.add_symbol(f"fastnn_{_scalar}gemm", _address)
    del _scalar, _address

    _gemm_type = types.void(*(types.voidptr,) * 13)
    _dgemm = types.ExternalFunction("fastnn_dgemm", _gemm_type)
    _sgemm = types.ExternalFunction("fastnn_sgemm", _gemm_type)

    @intrinsic
    def _address_of(typingctx, value):
        """A pointer to a stack copy of ``value`` (Fortran BLAS takes every argument by pointer)."""
        def codegen(context, builder, sig, args):
            with builder.goto_entry_block():  # one slot per call site: no stack growth in loops
                slot = builder.alloca(args[0].type)
            builder.store(args[0], slot)
            return builder.bitcast(slot, llvm_ir.IntType(8).as_pointer())
        return types.voidptr(value), codegen

    @jit
    def gemm(c, a, b, trans_a, trans_b, alpha, beta):
        """c (M, N) = alpha * op(a) @ op(b) + beta * c; op transposes when asked.

        All arrays 2-D, C-contiguous, and all float64 or all float32, with shapes that
        match (else TypeError / ValueError); alpha and beta are cast to the dtype.
        """
        check_operands(c, a, b, trans_a, trans_b)
        m, n = c.shape
        k = a.shape[0] if trans_a else a.shape[1]
        if m == 0 or n == 0:
            return
        if k == 0:  # BLAS may skip beta * c when k == 0; do it explicitly
            for i in range(m):
                for j in range(n):
                    c[i, j] = 0.0 if beta == 0.0 else beta * c[i, j]
            return
        if m > _INT_MAX or n > _INT_MAX or k > _INT_MAX or a.shape[1] > _INT_MAX \
                or b.shape[1] > _INT_MAX:
            raise ValueError("gemm: a dimension exceeds 2**31 - 1 (32-bit integer BLAS)")
        # BLAS is column-major: a row-major c is c.T there, so compute
        # c.T = op(b).T @ op(a).T by swapping the operands.
        args = (_address_of(np.uint8(_T if trans_b else _N)),
                _address_of(np.uint8(_T if trans_a else _N)),
                _address_of(_int(n)), _address_of(_int(m)), _address_of(_int(k)),
                _address_of(c.dtype.type(alpha)), b.ctypes, _address_of(_int(b.shape[1])),
                a.ctypes, _address_of(_int(a.shape[1])), _address_of(c.dtype.type(beta)),
                c.ctypes, _address_of(_int(n)))
        if c.itemsize == 8:
            _dgemm(*args)
        else:
            _sgemm(*args)
