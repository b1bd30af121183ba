"""The one place fastnn touches Numba internals: its on-disk cache, linking, and views.

Views. A view made by slicing and reshaping a buffer holds a reference to it:
an atomic increment and decrement per view, several per layer and step, which
were most of a small network's step. ``pointer`` gives the address of an
element, and ``numba.carray`` builds a view on it with no reference (valid while
the buffer lives: within one kernel call).

The cache. Numba's public ``cache=True`` falls short in three ways, each handled here:

1. A kernel's cache entry is keyed on its own source file only, but the kernels
   call each other across files, and a cached kernel holds its callees' machine
   code. Every entry is therefore also keyed on all kernel sources, and on the
   integer width of the BLAS library gemm calls (``_blaslib``).
2. An unwritable location, or a truncated or corrupt cache file, raises inside
   Numba (at import or at the first call). Here it costs a recompilation and a
   warning, never an exception.
3. Loading an entry first refreshes Numba's typing and lowering registries,
   which only compiling needs; that was most of the first call in a fresh process.

Linking. Numba links a copy of every callee into its caller's module as a weak
(``linkonce_odr``) symbol, and the JIT binds a weak symbol to the first definition
it has seen. In a process that compiles, that is the callee's own library; in a
process that loads from the cache, the copy inside the cached caller. Fastmath
code is optimized once more in the caller's module, so the two copies can round
differently: freshly compiled and cached code gave results one ulp apart, which a
chaotic run amplifies. ``own_copies`` makes the copies linked into a fastnn
kernel's module internal to it: every kernel runs its own copies, the same
machine code whether compiled or loaded, in any process.

Wrapper-less kernels. A kernel called from compiled code alone is compiled without
Numba's Python wrappers (``_jit.jit``); called from Python, Numba would jump to the
entry point it does not have, a crash. ``compiled_only`` turns that call into a
TypeError.

The Numba range this was written for is pinned in ``pyproject.toml``, and
``tests/test_cache.py`` checks both the internals used here and that a fresh
process loads every kernel with zero compilations.
"""

import hashlib
import os
import warnings

import numba
from llvmlite import binding as llvm
from numba import types
from numba.core.caching import FunctionCache
from numba.core.codegen import CPUCodeLibrary
from numba.core.registry import CPUDispatcher
from numba.core.runtime import rtsys
from numba.extending import intrinsic



def sources_stamp():
    """SHA-256 over every kernel source file and the BLAS interface the kernels call."""
    from ._blaslib import KIND
    digest = hashlib.sha256(KIND.encode())
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


_STAMP = sources_stamp()


class TolerantCache(FunctionCache):
    """Numba's per-function cache, keyed on all kernel sources, that never raises."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file._source_stamp = (self._cache_file._source_stamp, _STAMP)

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)  # cached code needs the runtime, not the registries
        try:
            with self._guard_against_spurious_io_errors():
                cres = self._load_overload(sig, target_context)
        except Exception as exc:  # noqa: BLE001 - a corrupt or truncated file
            warnings.warn(f"fastnn: ignoring an unreadable Numba cache entry for {self._name} "
                          f"({type(exc).__name__}: {exc}); recompiling", RuntimeWarning,
                          stacklevel=2)
            try:  # drop the bad index so that saving can write a good one
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
        except Exception as exc:  # noqa: BLE001 - an unwritable location
            warnings.warn(f"fastnn: could not write the Numba cache for {self._name} "
                          f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)


_KERNEL = "6fastnn7kernels"  # in the mangled name of every fastnn kernel
# Numba's own method (another copy of fastnn in this process may have replaced it already)
_optimize_final_module = getattr(CPUCodeLibrary, "_optimize_final_module", None)
_optimize_final_module = getattr(_optimize_final_module, "original", _optimize_final_module)


def own_copies(library):
    """Before a fastnn kernel's module passes: the callees linked into it become internal
    (its own copies, never another library's). Other libraries are left as they are."""
    functions = list(library._final_module.functions)
    if any(_KERNEL in f.name and not f.is_declaration and f.linkage == llvm.Linkage.external
           for f in functions):
        for f in functions:
            if not f.is_declaration and f.linkage == llvm.Linkage.linkonce_odr:
                f.linkage = llvm.Linkage.internal
    _optimize_final_module(library)


own_copies.original = _optimize_final_module


def missing_internals():
    """The Numba internals used here that the installed Numba lacks (tests/test_cache.py)."""
    from numba.core.base import BaseContext
    from numba.core.dispatcher import Dispatcher

    missing = [f"{owner.__name__}.{name}" for owner, name in (
        (FunctionCache, "_load_overload"), (FunctionCache, "_guard_against_spurious_io_errors"),
        (rtsys, "initialize"), (BaseContext, "make_array"),
        (CPUCodeLibrary, "_optimize_final_module"), (CPUCodeLibrary, "_get_module_for_linking"),
        (llvm.Linkage, "linkonce_odr")) if not hasattr(owner, name)]
    probe = numba.njit(cache=True)(sources_stamp)  # a function with a source file
    if not isinstance(getattr(probe, "_cache", None), FunctionCache):
        missing.append("Dispatcher._cache")
    else:
        for name in ("_source_stamp", "_index_path"):
            if not hasattr(probe._cache._cache_file, name):
                missing.append(f"IndexDataCacheFile.{name}")
    if not issubclass(type(probe), Dispatcher):
        missing.append("Dispatcher")
    return missing


class CompiledOnly(CPUDispatcher):
    """A kernel without a Python entry point (see the module docstring)."""

    def __call__(self, *args, **kwargs):
        raise TypeError(f"fastnn.kernels: {self.py_func.__qualname__} is called from compiled "
                        f"code only (it is compiled without a Python entry point); from Python, "
                        f"call the functions fastnn.kernels exports")


def compiled_only(dispatcher):
    """The dispatcher, its calls from Python made a TypeError instead of a crash."""
    if type(dispatcher) is CPUDispatcher:
        dispatcher.__class__ = CompiledOnly
    return dispatcher


_warned = []


def enable(dispatcher):
    """Give a dispatcher the tolerant on-disk cache (compiled in memory if none is usable)."""
    if numba.config.DISABLE_JIT:
        return dispatcher
    try:
        dispatcher._cache = TolerantCache(dispatcher.py_func)
    except RuntimeError:  # no writable cache location at all
        if not _warned:
            _warned.append(True)
            warnings.warn("fastnn: no writable Numba cache location (set NUMBA_CACHE_DIR); "
                          "the kernels are compiled in every process", RuntimeWarning,
                          stacklevel=3)
    return dispatcher


if not numba.config.DISABLE_JIT and _optimize_final_module is not None:
    CPUCodeLibrary._optimize_final_module = own_copies

if numba.config.DISABLE_JIT:
    pointer = pointer64 = None

    def bare(a):
        """``a`` itself (interpreted kernels count no references)."""
        return a
else:
    @intrinsic
    def pointer(typingctx, arr, off):
        """A typed pointer to element ``off`` of the 1-D array ``arr`` (for ``numba.carray``)."""
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            return builder.gep(data, [args[1]])
        return types.CPointer(arr.dtype)(arr, off), codegen

    @intrinsic
    def pointer64(typingctx, arr, off):
        """A float64 pointer to element ``off`` of the 1-D array ``arr`` (a float64 view of
        float32 scratch: ``off`` must be 8-byte aligned)."""
        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            to = context.get_value_type(types.CPointer(types.float64))
            return builder.bitcast(builder.gep(data, [args[1]]), to)
        return types.CPointer(types.float64)(arr, off), codegen

    @numba.njit(inline="always")
    def bare(a):
        # a view of the whole C-contiguous array a without a reference count: arrays passed in
        # from Python carry one, and every helper they pass through would update it
        return numba.carray(pointer(a.reshape(-1), 0), a.shape)
