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
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys

# Never 'nnan'/'ninf': those would let LLVM assume finiteness and hide divergence.
FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})

# For code whose rounding is part of the algorithm (the exp in vexp.py): LLVM may
# fuse a * b + c into an FMA, but never reorder or fold arithmetic.
FASTMATH_STRICT = frozenset({"contract"})

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
        # Numba's own load_overload first refreshes the whole target context: it
        # imports and installs every typing and lowering registry, which was 0.14 s of
        # the 0.20 s first call in a fresh process. Only compiling needs those, and a
        # compilation refreshes the context itself; cached machine code needs just
        # the runtime (NRT) it links against (tests/test_cache.py runs every entry
        # point from a warm cache).
        rtsys.initialize(target_context)
        try:
            with self._guard_against_spurious_io_errors():
                cres = self._load_overload(sig, target_context)
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


class InternalDispatcher(CPUDispatcher):
    """A kernel compiled without its Python wrapper: callable from compiled code only."""

    def __call__(self, *args, **kwargs):
        # Numba would jump to the missing wrapper (a segfault): refuse instead.
        raise TypeError(f"fastnn.kernels: {self.py_func.__qualname__} is internal to the "
                        f"compiled kernels (built without a Python wrapper); call it from "
                        f"@njit code, or call a public kernel")


def jit(fn=None, *, inline=False, internal=False, fastmath=FASTMATH):
    """``numba.njit`` with fastnn's options and a cache that cannot fail.

    ``inline=True`` inlines at Numba IR level (``inline="always"``): for tiny
    helpers in the per-sample hot loop, so reference counting of the views they
    return is optimised away instead of costing a runtime call each time. Every
    inlined call deep-copies the callee's IR (block by block, each copy with the
    whole variable scope), so keep inlined bodies small and their call sites few.

    ``internal=True`` skips the Python (and C) wrappers Numba generates for every
    compiled function: a private kernel only ever runs from other compiled code,
    and its wrappers were about a sixth of the first compile (measured 29 -> 24 s
    with the 18 small-layer pass variants built this way). Such a kernel refuses
    calls from Python (see InternalDispatcher).

    ``fastmath`` is ``FASTMATH`` or ``FASTMATH_STRICT``. A helper inlined with
    ``inline=True`` is compiled with the flags of the kernel it is inlined into.
    """
    if fn is None:
        return lambda f: jit(f, inline=inline, internal=internal, fastmath=fastmath)
    if fastmath not in (FASTMATH, FASTMATH_STRICT):
        raise ValueError("fastmath must be FASTMATH or FASTMATH_STRICT")
    options = dict(OPTIONS, fastmath=set(fastmath))
    if inline:
        options.update(inline="always")
    if internal:
        options.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
    dispatcher = numba.njit(**options)(fn)
    if internal and not numba.config.DISABLE_JIT:
        dispatcher.__class__ = InternalDispatcher
    if not numba.config.DISABLE_JIT:
        try:
            dispatcher._cache = TolerantCache(dispatcher.py_func)
        except Exception:  # no writable cache location at all: compile in memory
            pass
    return dispatcher
