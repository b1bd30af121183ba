"""Which BLAS library the kernels' gemm calls (plain Python: no Numba here).

NumPy's own, when it is the ILP64 OpenBLAS that NumPy's wheels bundle
(``scipy_dgemm_64_`` in ``numpy.libs`` or ``numpy/.dylibs``): then fastnn's products
run on the library of the NumPy loop it replaces. Anything else (a conda NumPy on
MKL, Accelerate, a source build), or ``FASTNN_BLAS=scipy``: SciPy's 32-bit-integer
BLAS from ``scipy.linalg.cython_blas`` (``blas.py``). The choice is part of the
cache key (``_numba_private``): compiled code passes 64- or 32-bit integers.
"""

import ctypes
import glob
import os

NUMPY, SCIPY = "numpy-ilp64", "scipy-lp64"
_SYMBOLS = {"d": "scipy_dgemm_64_", "s": "scipy_sgemm_64_"}


def numpy_gemm():
    """{"d": address, "s": address} of NumPy's ILP64 OpenBLAS ?gemm, or None."""
    choice = os.environ.get("FASTNN_BLAS", "").strip().lower()
    if choice not in ("", "numpy", "scipy"):
        raise ValueError(f"the environment variable FASTNN_BLAS must be 'numpy' or 'scipy' "
                         f"(or unset), found {os.environ['FASTNN_BLAS']!r}")
    if choice == "scipy":
        return None
    import numpy
    package = os.path.dirname(numpy.__file__)
    for folder in (os.path.join(os.path.dirname(package), "numpy.libs"),
                   os.path.join(package, ".dylibs")):
        for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*"))):
            try:
                library = ctypes.CDLL(path)  # NumPy loaded it already: the same handle
                return {k: ctypes.cast(getattr(library, name), ctypes.c_void_p).value
                        for k, name in _SYMBOLS.items()}
            except (OSError, AttributeError):
                continue
    return None


GEMM = numpy_gemm()
KIND = NUMPY if GEMM is not None else SCIPY
