"""kernels.gemm, the BLAS library it calls, and how fastnn reaches SciPy's BLAS without
importing scipy.linalg.

``kernels/_blaslib.py`` chooses NumPy's own OpenBLAS when NumPy's wheel bundles one
(64-bit integers), else SciPy's (``FASTNN_BLAS=scipy`` forces it). For SciPy's,
``kernels/blas.py`` loads ``scipy.linalg.cython_blas`` straight from its file
(``import scipy.linalg`` is 0.19 s of start-up), registers ``dgemm``/``sgemm``
with LLVM under fastnn's own symbol names, checks their C signatures, and takes
the module back out of ``sys.modules`` so that a later ``import scipy.linalg``
binds it as usual. These tests run that in fresh interpreters, in both import
orders and through the fallback.

Tolerance of the gemm test: as in test_kernels.py, 4 (K + 1) eps |A||B| per
element (another summation order plus FMA), far below one wrong term.
"""

import ctypes
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from fastnn import kernels as K

COMPILED = not numba.config.DISABLE_JIT


def run_fresh(*parts, blas="scipy"):
    """Run the code parts (each dedented) in a fresh interpreter outside the
    repository, with FASTNN_BLAS=blas (None: unset); return its stdout."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONSTARTUP", "FASTNN_BLAS")}
    if blas is not None:
        env["FASTNN_BLAS"] = blas
    result = subprocess.run([sys.executable, "-c", code], cwd="/tmp", env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (37, 9, 64), (4, 3, 0), (0, 3, 4)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.25, 1.0), (2.0, -0.5)])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, shape, alpha, beta):
    m, n, k = shape
    rng = np.random.default_rng(7)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    expected = alpha * (op_a.astype(np.float64) @ op_b) + beta * c.astype(np.float64)
    bound = (4 * (k + 1) * np.finfo(dtype).eps
             * (abs(alpha) * (np.abs(op_a).astype(np.float64) @ np.abs(op_b)) + abs(beta * c))
             + np.finfo(dtype).tiny)
    K.gemm(c, a, b, trans_a, trans_b, alpha, beta)
    assert c.dtype == dtype
    assert np.all(np.abs(c - expected) <= bound)


def _gemm_operands(m=3, n=4, k=5, dtype=np.float64):
    return np.zeros((m, n), dtype), np.ones((m, k), dtype), np.ones((k, n), dtype)


def _replace(c=None, a=None, b=None, trans_a=False):
    """The valid operands with some replaced: (c, a, b, trans_a)."""
    valid = _gemm_operands()
    return (valid[0] if c is None else c, valid[1] if a is None else a,
            valid[2] if b is None else b, trans_a)


ONE_DTYPE, CONTIGUOUS, SHAPES = "float64 or all float32", "C-contiguous", "shapes must be"
MISREAD = {  # case: (operands, error, message)
    "a float32": (lambda: _replace(a=np.ones((3, 5), np.float32)), TypeError, ONE_DTYPE),
    "b float32": (lambda: _replace(b=np.ones((5, 4), np.float32)), TypeError, ONE_DTYPE),
    "a int64": (lambda: _replace(a=np.ones((3, 5), np.int64)), TypeError, ONE_DTYPE),
    "all int64": (lambda: _gemm_operands(dtype=np.int64) + (False,), TypeError, ONE_DTYPE),
    "a strided": (lambda: _replace(a=np.ones((3, 10))[:, ::2]), ValueError, CONTIGUOUS),
    "c strided": (lambda: _replace(c=np.zeros((3, 8))[:, ::2]), ValueError, CONTIGUOUS),
    "a Fortran order": (lambda: _replace(a=np.ones((3, 5), order="F")), ValueError, CONTIGUOUS),
    "a 3-D": (lambda: _replace(a=np.ones((3, 5, 2))), ValueError, "2-D"),
    "a rows": (lambda: _replace(a=np.ones((2, 5))), ValueError, SHAPES),
    "b rows": (lambda: _replace(b=np.ones((6, 4))), ValueError, SHAPES),
    "b columns": (lambda: _replace(b=np.ones((5, 3))), ValueError, SHAPES),
    "a transposed": (lambda: _replace(trans_a=True), ValueError, SHAPES),  # op(a) is (5, 3)
}


@pytest.mark.parametrize("case", list(MISREAD))
def test_gemm_rejects_operands_it_would_misread(case):
    # gemm hands BLAS raw pointers and sizes: operands that do not fit are refused before
    # any is read or written (a float32 a against a float64 c read past a's buffer)
    make, error, match = MISREAD[case]
    c, a, b, trans_a = make()
    before = c.copy()
    with pytest.raises(error, match=match):
        K.gemm(c, a, b, trans_a, False, 1.0, 0.0)
    np.testing.assert_array_equal(c, before)


def test_gemm_takes_empty_views_from_compiled_code():
    # a K = 0 slice made in compiled code is typed as any layout and, being empty, is
    # not flagged C-contiguous there: gemm still takes it (c = beta c)
    @numba.njit
    def user(c, a, b, k):
        K.gemm(c, a[:, :k], b[:k, :], False, False, 1.0, 0.5)
    c, a, b = _gemm_operands()
    c[:] = 2.0
    user(c, a, b, 0)
    np.testing.assert_array_equal(c, 1.0)
    user(c, a, b, 5)
    np.testing.assert_array_equal(c, 5.5)


GEMM_CHECK = """
import numpy as np
from fastnn import kernels as K
for dtype in (np.float64, np.float32):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    b = np.arange(12, dtype=dtype).reshape(3, 4)
    c = np.ones((2, 4), dtype)
    K.gemm(c, a, b, False, False, 2.0, 1.0)
    assert np.array_equal(c, 2 * (a @ b) + 1), (dtype, c)
"""


@pytest.mark.skipif(not COMPILED, reason="compiled kernels only")
def test_import_leaves_scipy_linalg_alone_and_it_still_imports():
    # gemm compiled and cached first: a compilation refreshes Numba's registries, which
    # import scipy.linalg themselves (numba.np.linalg), whatever fastnn does
    run_fresh(GEMM_CHECK)
    out = run_fresh("""
        import sys
        import fastnn
        assert "scipy.linalg" not in sys.modules
        assert "scipy.linalg.cython_blas" not in sys.modules
        """, GEMM_CHECK, """
        assert "scipy.linalg" not in sys.modules
        import scipy.linalg
        import scipy.linalg.cython_blas as blas
        assert scipy.linalg.cython_blas is blas is sys.modules["scipy.linalg.cython_blas"]
        assert "dgemm" in blas.__pyx_capi__
        x = np.array([[2.0, 1.0], [1.0, 3.0]])
        assert np.allclose(scipy.linalg.solve(x, [1.0, 2.0]), np.linalg.solve(x, [1.0, 2.0]))
        """, GEMM_CHECK, """
        print("ok")
        """)
    assert out.strip() == "ok"


@pytest.mark.skipif(not COMPILED, reason="compiled kernels only")
def test_scipy_linalg_imported_first():
    out = run_fresh("""
        import sys
        import scipy.linalg
        blas = sys.modules["scipy.linalg.cython_blas"]
        import fastnn
        assert sys.modules["scipy.linalg.cython_blas"] is blas is scipy.linalg.cython_blas
        """, GEMM_CHECK, """
        print("ok")
        """)
    assert out.strip() == "ok"


@pytest.mark.skipif(not COMPILED, reason="compiled kernels only")
def test_falls_back_to_the_plain_import():
    # The direct load fails (no spec from the file): fastnn imports scipy.linalg's
    # module the ordinary way. Python's own finders do not use importlib.util's name.
    out = run_fresh("""
        import importlib.util, sys
        importlib.util.spec_from_file_location = lambda *args, **kwargs: None
        import fastnn
        assert "scipy.linalg" in sys.modules
        import scipy.linalg
        assert scipy.linalg.cython_blas is sys.modules["scipy.linalg.cython_blas"]
        """, GEMM_CHECK, """
        print("ok")
        """)
    assert out.strip() == "ok"


@pytest.mark.skipif(not COMPILED, reason="compiled kernels only")
def test_numpy_blas_by_default_and_scipy_blas_on_request():
    # With NumPy's wheels, gemm calls NumPy's bundled OpenBLAS (64-bit integers);
    # FASTNN_BLAS=scipy takes SciPy's. Both compute the same training within rounding
    # (another BLAS build may sum in another order; here they agree bitwise, and a 1-ulp
    # change of the initial weights moves the reference's weight sum by 5e-15 relative).
    from fastnn.kernels import _blaslib
    if _blaslib.numpy_gemm() is None:
        pytest.skip("this NumPy bundles no ILP64 OpenBLAS: SciPy's is the only choice")
    train = """
        import numpy as np, fastnn
        from fastnn.kernels import _blaslib
        rng = np.random.default_rng(3)
        x, y = rng.standard_normal((300, 64)), rng.standard_normal((300, 64))
        w = [rng.standard_normal((64, 64)) / 8 for _ in range(2)]  # BLAS-sized layers
        h = fastnn.train(x, y, w, lr=1e-4, epochs=3, batch_size=100)
        print(_blaslib.KIND, repr(float(h[-1])), repr(float(w[0].sum())))
        """
    lines = {}
    for blas in (None, "scipy"):
        out = run_fresh(GEMM_CHECK, train, """
            from llvmlite import binding
            if _blaslib.KIND == "numpy-ilp64":  # the symbols the kernels call are NumPy's
                assert binding.address_of_symbol("fastnn_dgemm") == _blaslib.GEMM["d"]
                assert binding.address_of_symbol("fastnn_sgemm") == _blaslib.GEMM["s"]
            """, blas=blas)
        kind, loss, wsum = out.split()
        lines[blas] = (kind, float(loss), float(wsum))
    assert lines[None][0] == "numpy-ilp64" and lines["scipy"][0] == "scipy-lp64"
    np.testing.assert_allclose(lines[None][1:], lines["scipy"][1:], rtol=1e-12)


def test_bad_fastnn_blas_is_refused(monkeypatch):
    from fastnn.kernels import _blaslib
    monkeypatch.setenv("FASTNN_BLAS", "mkl")
    with pytest.raises(ValueError, match="FASTNN_BLAS must be 'numpy' or 'scipy'.*'mkl'"):
        _blaslib.numpy_gemm()


def test_the_core_is_the_one_openblas_reports(monkeypatch):
    # the core (which decides the small-kernel chunks) is read from the library the kernels
    # call, and agrees with threadpoolctl's reading of that same file; FASTNN_BLAS=scipy
    # leaves it unknown, so no chunks for small kernels
    from threadpoolctl import threadpool_info
    from fastnn.kernels import _blaslib
    if _blaslib.numpy_gemm() is None:
        pytest.skip("this NumPy bundles no ILP64 OpenBLAS")
    library = [i for i in threadpool_info()
               if os.path.basename(i["filepath"]).startswith("libscipy_openblas64_")]
    if not library:
        pytest.skip("this threadpoolctl does not know scipy-openblas (before 3.5)")
    assert len(library) == 1 and library[0]["architecture"]
    assert _blaslib.CORE == _blaslib.numpy_core() == library[0]["architecture"]
    assert _blaslib.SMALL_GEMM_MACS == (_blaslib.SMALL_KERNEL_MACS
                                        if _blaslib.CORE in _blaslib.SMALL_KERNEL_CORES else 0)
    monkeypatch.setenv("FASTNN_BLAS", "scipy")
    assert _blaslib.numpy_core() is None


def _capsule(name):
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p,
                                                   ctypes.c_void_p]
    return new(0x1000, name, None)  # never called: only the name is read


@pytest.mark.skipif(not COMPILED, reason="compiled kernels only")
def test_blas_signature_is_checked():
    from fastnn.kernels import blas

    class Module:
        pass

    td = b"__pyx_t_5scipy_6linalg_11cython_blas_d"
    good = (b"void (char *, char *, int *, int *, int *, %s *, %s *, int *, %s *, int *, "
            b"%s *, %s *, int *)" % ((td,) * 5))
    bad = good.replace(b"int *, int *, int *", b"long *, long *, long *", 1)  # ILP64
    module = Module()
    module.__pyx_capi__ = {"dgemm": _capsule(good), "sgemm": _capsule(bad)}
    assert blas._function_address(module, "dgemm", "d") == 0x1000
    with pytest.raises(ImportError, match=r"sgemm has the C signature .*long \*.*32-bit"):
        blas._function_address(module, "sgemm", "s")
    with pytest.raises(ImportError, match="signature"):  # a float routine where a double one is due
        blas._function_address(module, "dgemm", "s")
