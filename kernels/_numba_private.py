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
kernel's module internal to it, and renames them: every kernel runs its own copies,
the same machine code whether compiled or loaded, in any process. (The JIT
registers local symbols by name too: unrenamed, a caller compiled later bound its
weak symbol to another kernel's internal copy, whose calling convention LLVM may
have changed.)

Compiled-only kernels. Numba compiles every function into a library of its own:
optimized, turned into machine code, and given Python and C wrappers, though a
kernel called only from other kernels needs neither wrappers nor machine code: its
callers link in a copy of its optimized module. Such a kernel (``_jit.jit`` without
``python=True``) is compiled here without wrappers (Numba's ``no_cpython_wrapper``
and ``no_cfunc_wrapper`` options) and as a *link-only* library: its module is
optimized as before but never handed to the JIT engine, and its cache entry holds
that module (bitcode) instead of machine code. Three things follow. Its environment
(Numba's per-function global, read by its code at run time) then lives only in the
callers' machine code, so ``get_executable`` fills the environments every library
references, as loading from the cache always did. It has no address to call, so a
Python call goes to ``CompiledOnly``'s twin: the same function compiled once more,
under its own name, with a Python entry point. And a caller in a process where the
kernel came from the cache links the cached bitcode as it would the fresh module.

The Numba range this was written for is pinned in ``pyproject.toml``, and
``tests/test_cache.py`` checks both the internals used here and that a fresh
process loads every kernel with zero compilations.
"""

import hashlib
import os
import threading
import types as pytypes
import warnings

import numba
from llvmlite import binding as llvm
from numba import types
from numba.core.caching import FunctionCache
from numba._dynfunc import make_function
from numba.core.codegen import CPUCodeLibrary, JITCPUCodegen
from numba.core.cpu import CPUContext
from numba.core.environment import lookup_environment
from numba.core.itanium_mangler import mangle_identifier
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
    """Around a fastnn kernel's module passes: the callees linked into it become internal
    (its own copies, never another library's), and after the passes renamed (never found
    by another library: the JIT registers local symbols by name too, and LLVM may change
    an internal function's calling convention). Renamed only after the passes, since
    Numba's reference-count pruning finds ``NRT_incref`` by name. Other libraries are
    left as they are."""
    functions = list(library._final_module.functions)
    owned = set()
    if any(_KERNEL in f.name and not f.is_declaration and f.linkage == llvm.Linkage.external
           for f in functions):
        for f in functions:
            if not f.is_declaration and f.linkage == llvm.Linkage.linkonce_odr:
                f.linkage = llvm.Linkage.internal
                owned.add(f.name)
    _optimize_final_module(library)
    for f in library._final_module.functions:
        if f.name in owned and not f.is_declaration:
            f.name = f"{f.name}.own.{library.name}"


own_copies.original = _optimize_final_module


def missing_internals():
    """The Numba internals used here that the installed Numba lacks (tests/test_cache.py)."""
    from numba.core.base import BaseContext
    from numba.core.dispatcher import Dispatcher

    missing = [f"{owner.__name__}.{name}" for owner, name in (
        (FunctionCache, "_load_overload"), (FunctionCache, "_guard_against_spurious_io_errors"),
        (rtsys, "initialize"), (BaseContext, "make_array"),
        (CPUCodeLibrary, "_optimize_final_module"), (CPUCodeLibrary, "_get_module_for_linking"),
        (CPUCodeLibrary, "_finalize_dynamic_globals"),
        (CPUCodeLibrary, "_verify_declare_only_symbols"), (CPUCodeLibrary, "_ensure_finalized"),
        (llvm.Linkage, "linkonce_odr"), (CPUContext, "get_env_name"))
        if not hasattr(owner, name)]
    missing += [f"{owner.__name__}.{name}" for owner, name, _ in _PATCHES
                if not hasattr(owner, name)]
    if _prefix(sources_stamp) != "_ZN6fastnn7kernels14_numba_private13sources_stamp":
        missing.append("itanium_mangler.mangle_identifier")
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


_LINK_ONLY = set()  # mangled-name prefixes of the compiled-only kernels


def _prefix(py_func):
    """The mangled name of a function up to its ABI tags (``_ZN...`` without ``E``)."""
    return "_Z" + mangle_identifier(f"{py_func.__module__}.{py_func.__qualname__}")[:-1]


def link_only(library):
    """True for the library of a compiled-only kernel: one whose own (external) function
    is such a kernel. Decided once, when the library's module is complete."""
    known = getattr(library, "_fastnn_link_only", None)
    if known is None:
        known = any(f.name[len(p):len(p) + 1] in ("B", "E")  # ABI tags or the name's end
                    for f in library._final_module.functions
                    if not f.is_declaration and f.linkage == llvm.Linkage.external
                    for p in _LINK_ONLY if f.name.startswith(p))
        library._fastnn_link_only = known
    return known


def _finalize_final_module(library):
    """A link-only library is complete without machine code: not added to the JIT engine."""
    if not link_only(library):
        return _finalize_final_module.original(library)
    library._finalize_dynamic_globals()
    library._verify_declare_only_symbols()
    library._final_module._CPUCodeLibrary__library = library  # as Numba's own method does
    library._finalized = True


def _get_executable(context, library, fndesc, env):
    """A link-only library's function object has no address (and its environment is filled
    where its code lives, in its callers); any other library's environments are filled,
    its callees' included."""
    library._ensure_finalized()
    if not link_only(library):
        cfunc = _get_executable.original(context, library, fndesc, env)
        own = context.get_env_name(fndesc)
        for gv in library._final_module.global_variables:  # its callees' environments
            if gv.name.startswith("_ZN08NumbaEnv") and gv.name != own:
                found = lookup_environment(gv.name)
                if found is not None:
                    library.codegen.set_env(gv.name, found)
        return cfunc
    return make_function(fndesc.lookup_module(), fndesc.qualname.split(".")[-1],
                         f"compiled-only {fndesc.qualname!r}", 0, env, (library,))


def _serialize(library):
    """Cache entries: a link-only library's module as bitcode, others as Numba does."""
    if link_only(library):
        library._ensure_finalized()
        return (library.name, "bitcode", library._final_module.as_bitcode())
    return _serialize.original(library)


def _set_env(codegen, env_name, env):
    """Numba's ``set_env``, except for an environment no machine code holds (a link-only
    library loaded from the cache): nothing to fill."""
    if codegen._engine.get_global_value_address(env_name):
        _set_env.original(codegen, env_name, env)


_PATCHES = ((CPUCodeLibrary, "_finalize_final_module", _finalize_final_module),
            (CPUContext, "get_executable", _get_executable),
            (CPUCodeLibrary, "serialize_using_object_code", _serialize),
            (JITCPUCodegen, "set_env", _set_env))


class CompiledOnly(CPUDispatcher):
    """A compiled-only kernel (see the module docstring); from Python it runs its twin."""

    def __call__(self, *args, **kwargs):
        twin = self.__dict__.get("_fastnn_twin")
        if twin is None:
            with _TWIN_LOCK:  # threads making the first call share one twin (one compilation)
                twin = self.__dict__.get("_fastnn_twin")
                if twin is None:
                    twin = self._fastnn_twin = _python_twin(self)
        return twin(*args, **kwargs)


_TWIN_LOCK = threading.Lock()


def _python_twin(dispatcher):
    """The kernel compiled as an ordinary Numba function, named apart (its own cache files
    and symbols)."""
    f = dispatcher.py_func
    g = pytypes.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                             f.__closure__)
    g.__qualname__, g.__module__, g.__doc__ = f.__qualname__ + "_python", f.__module__, f.__doc__
    options = {k: v for k, v in dispatcher.targetoptions.items()
               if k not in ("no_cpython_wrapper", "no_cfunc_wrapper", "nopython")}
    return enable(numba.njit(**options)(g))


def compiled_only(dispatcher):
    """The dispatcher of a compiled-only kernel: link-only, and called from Python through
    its twin."""
    if type(dispatcher) is CPUDispatcher:
        dispatcher.__class__ = CompiledOnly
        _LINK_ONLY.add(_prefix(dispatcher.py_func))
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
    for _owner, _name, _patch in _PATCHES:
        _current = getattr(_owner, _name)  # another copy of fastnn may have patched it already
        _patch.original = getattr(_current, "original", _current)
        setattr(_owner, _name, _patch)

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
