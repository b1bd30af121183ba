"""Which BLAS library the kernels' gemm calls (plain Python: no Numba here).

NumPy's own, when it is the ILP64 OpenBLAS that NumPy's wheels bundle
(``scipy_dgemm_64_`` in ``numpy.libs`` or ``numpy/.dylibs``): then fastnn's products
run on the library of the NumPy loop it replaces. Anything else (a conda NumPy on
MKL, Accelerate, a source build), or ``FASTNN_BLAS=scipy``: SciPy's 32-bit-integer
BLAS from ``scipy.linalg.cython_blas`` (``blas.py``). The choice is part of the
cache key (``_numba_private``): compiled code passes 64- or 32-bit integers.

``SMALL_GEMM_MACS``: the largest product (M N K multiply-adds) that the kernels'
OpenBLAS runs through its small-matrix kernels, which skip packing: 100**3 on the x86
cores that have them (the permit in OpenBLAS's ``kernel/x86_64/*_small_kernel_permit_skylakex.c``,
which takes the transposed-first product only up to 1200 outputs), else 0 (other cores,
and SciPy's library, whose core fastnn does not ask).
"""

import ctypes
import glob
import os

NUMPY, SCIPY = "numpy-ilp64", "scipy-lp64"
_SYMBOLS = {"d": "scipy_dgemm_64_", "s": "scipy_sgemm_64_"}
_CORENAME = "scipy_openblas_get_corename64_"
# COOPERLAKE and SAPPHIRERAPIDS build on SKYLAKEX's kernel list; SkylakeX was measured
SMALL_KERNEL_CORES = ("SkylakeX", "CooperLake", "SapphireRapids")
SMALL_KERNEL_MACS = 100 ** 3


def numpy_gemm():
    """{"d": address, "s": address} of NumPy's ILP64 OpenBLAS ?gemm, or None."""
    library = numpy_openblas()
    return None if library is None else {
        k: ctypes.cast(getattr(library, name), ctypes.c_void_p).value
        for k, name in _SYMBOLS.items()}


def numpy_core():
    """The core NumPy's OpenBLAS chose for this CPU ("SkylakeX", "Haswell", ...), or None
    when the kernels do not call it or it does not say."""
    library = numpy_openblas()
    corename = None if library is None else getattr(library, _CORENAME, None)
    if corename is None:
        return None
    corename.restype = ctypes.c_char_p
    name = corename()
    return name.decode() if name else None


def numpy_openblas():
    """NumPy's ILP64 OpenBLAS (a ctypes library with both ?gemm symbols), or None."""
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
                if all(hasattr(library, name) for name in _SYMBOLS.values()):
                    return library
            except OSError:
                continue
    return None


GEMM = numpy_gemm()
KIND = NUMPY if GEMM is not None else SCIPY
CORE = numpy_core()
SMALL_GEMM_MACS = SMALL_KERNEL_MACS if CORE in SMALL_KERNEL_CORES else 0
