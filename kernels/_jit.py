"""Every Numba option fastnn uses lives here (numba-stats ``_util._jit`` style).

All kernels are compiled with the same options:

* ``nogil=True``: training from several Python threads runs in parallel.
* ``error_model="numpy"``: division by zero gives inf/nan like NumPy, never raises.
* ``fastmath=FASTMATH``: only flags that keep NaN/Inf semantics, so divergence
  stays detectable. ``reassoc`` lets reductions vectorize; ``contract`` allows FMA.
* ``cache=True`` through :class:`TolerantCache`, which never lets a cache problem
  (unwritable directory, truncated or foreign file) become an exception.
"""

import hashlib
import os
import warnings

import numba
from numba.core.caching import FunctionCache

# Never 'nnan'/'ninf': those would let LLVM assume finiteness and hide divergence.
FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})

OPTIONS = dict(nogil=True, error_model="numpy", fastmath=set(FASTMATH))


def _sources_stamp():
    # Numba keys a cache entry on its own file only; a kernel inlines code from the
    # other files here, so any change to any of them must invalidate every entry.
    digest = hashlib.sha256()
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


class TolerantCache(FunctionCache):
    """A Numba on-disk cache that degrades to in-memory compilation.

    A cache file that cannot be read or written (read-only install, full disk,
    a file truncated by a crash, concurrent writers as in numba issue 4807)
    costs a recompilation and at most a warning, never an exception. A loaded
    entry whose signature is not the one asked for is discarded. Entries are
    also keyed on every kernel source file (see ``_sources_stamp``).
    """

    _stamp = None

    def __init__(self, py_func):
        super().__init__(py_func)
        if TolerantCache._stamp is None:
            TolerantCache._stamp = _sources_stamp()
        self._cache_file._source_stamp = (self._cache_file._source_stamp, TolerantCache._stamp)

    def load_overload(self, sig, target_context):
        try:
            cres = super().load_overload(sig, target_context)
        except Exception as exc:  # corrupt or truncated cache file
            warnings.warn(f"fastnn: ignoring unreadable Numba cache for "
                          f"{self._name} ({type(exc).__name__}: {exc}); recompiling",
                          RuntimeWarning, stacklevel=2)
            try:  # drop the unreadable index so that saving can write a good one
                os.unlink(self._cache_file._index_path)
            except OSError:
                pass
            return None
        if cres is not None and tuple(cres.signature.args) != tuple(sig):
            return None
        return cres

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as exc:  # unwritable location: keep the in-memory code
            warnings.warn(f"fastnn: could not write the Numba cache for "
                          f"{self._name} ({type(exc).__name__}: {exc})",
                          RuntimeWarning, stacklevel=2)


def jit(fn=None, *, inline=False):
    """``numba.njit`` with fastnn's options and a cache that cannot fail.

    ``inline=True`` inlines at Numba IR level (``inline="always"``): for tiny
    helpers in the per-sample hot loop, so reference counting of the views they
    return is optimised away instead of costing a runtime call each time.
    """
    if fn is None:
        return lambda f: jit(f, inline=inline)
    options = dict(OPTIONS, inline="always") if inline else OPTIONS
    dispatcher = numba.njit(**options)(fn)
    if not numba.config.DISABLE_JIT:
        try:
            dispatcher._cache = TolerantCache(dispatcher.py_func)
        except Exception:  # no writable cache location at all: compile in memory
            pass
    return dispatcher
