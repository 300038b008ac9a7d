"""The one place that holds the Numba JIT options used by every compiled kernel.

Every kernel of the numba backend is decorated with `jit`, so the options
below are written once and no decorator repeats them. None is compiled with
``parallel=True``: the engine runs its threads itself (``numba_sync.py``).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numba
from numba.core import caching, codegen, compiler, config
from numba.core.compiler_lock import global_compiler_lock
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.core.runtime import nrt
from numba.core.types.function_type import CompileResultWAP
from numba.experimental import function_type  # noqa: F401  (typeof of a function value)

#: LLVM fast-math flags: all of ``fastmath=True`` except ``nnan`` and ``ninf``.
#:
#: ``reassoc``  lets LLVM reorder sums so that dot products and row sums
#:              vectorise (the summation order then differs from NumPy's; the
#:              parity tolerances in ``tests/tolerances.py`` allow for that).
#: ``contract`` fuses ``a * b + c`` into one FMA instruction.
#: ``nsz``      ignores the sign of zero (``relu`` may return -0.0 for -0.0).
#: ``arcp``     allows ``x / s`` as ``x * (1 / s)`` (softmax normalisation).
#:
#: Left out on purpose:
#: ``nnan``, ``ninf``  with them LLVM may assume no NaN/Inf exists, fold
#:              ``isfinite(loss)`` to True and ``x * 0`` to 0, so a diverging
#:              run would not stop and a saturated softmax could misbehave.
#: ``afn``      approximate exp/log buy nothing measurable here (no SVML), and
#:              exact libm calls keep saturated sigmoid/softmax losses equal to
#:              the reference's.
FASTMATH = frozenset({"reassoc", "contract", "nsz", "arcp"})

#: For the few helpers whose sums must stay in the order written (see `jit`).
FASTMATH_IN_ORDER = FASTMATH - {"reassoc"}

#: Options shared by every kernel.
#:
#: ``cache=True``          a second process loads machine code from
#:                         ``__pycache__`` instead of compiling again.
#: ``error_model="numpy"`` division by zero gives inf/nan like NumPy instead of
#:                         raising, which also removes the zero checks that
#:                         would stop loops from vectorising.
#: ``nogil=True``          compiled code releases the GIL.
OPTIONS = {
    "nogil": True,
    "cache": True,
    "error_model": "numpy",
    "fastmath": set(FASTMATH),
}

# --- the disk cache must notice a change to any kernel module --------------------
#
# Numba keys a cached function on the modification time and size of its own
# source file only. The engine's functions call functions of other modules
# (numba_engine -> numba_phases -> numba_affine ...), whose machine code is
# compiled into their callers: after an edit to numba_affine.py alone, a cached
# train_steps would run the old arithmetic. So every fastnn kernel is stamped
# with all kernel modules' stamps together.

_KERNELS_DIR = Path(__file__).resolve().parent


def _kernel_sources_stamp() -> tuple:
    """(name, mtime_ns, size) of every module of ``kernels/``: changes when any of them does."""
    return tuple((path.name, path.stat().st_mtime_ns, path.stat().st_size)
                 for path in sorted(_KERNELS_DIR.glob("*.py")))


@functools.lru_cache(maxsize=None)
def _stamp_of_the_sources_imported() -> tuple:
    """`_kernel_sources_stamp` when the kernels were imported, taken once for all of them.

    Numba takes each function's stamp as it creates the function, and code
    compiled later in the process comes from the source imported then.
    """
    return _kernel_sources_stamp()


class _AllKernelSourcesLocator(caching._CacheLocator):
    """Numba's usual cache locator for a kernel, with a stamp covering all kernel modules."""

    def __init__(self, usual):
        self._usual = usual

    def ensure_cache_path(self):
        self._usual.ensure_cache_path()

    def get_cache_path(self):
        return self._usual.get_cache_path()

    def get_source_stamp(self):
        return self._usual.get_source_stamp(), _stamp_of_the_sources_imported()

    def get_disambiguator(self):
        return self._usual.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _KERNELS_DIR:
            return None
        for usual in caching.CacheImpl._locator_classes:
            if usual is not cls:
                locator = usual.from_function(py_func, py_file)
                if locator is not None:
                    return cls(locator)
        return None


if _AllKernelSourcesLocator not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes.insert(0, _AllKernelSourcesLocator)


# The engine passes its units as function values (`first_class_function`), a
# feature Numba calls experimental and warns about on every caller it compiles.
# The parity and reproducibility tests cover what the engine uses of it.
warnings.filterwarnings("ignore", message="First-class function type feature is experimental",
                        category=NumbaExperimentalFeatureWarning)

#: Every dispatcher made by `jit`, so `compile_stats` can report on all of them.
DISPATCHERS = []

def jit(func=None, *, internal=False, first_class=False, reassociate=True, refcounting=None):
    """Compile ``func`` with `OPTIONS`.

    No kernel but a unit gets a C wrapper (`numba.cfunc`'s kind): Python
    calls the others through their Python wrapper, compiled code calls them
    directly, and the wrapper cost compile time (train_steps' was 5% of its
    machine code).

    ``internal=True`` is for a small helper that only compiled code calls:
    it gets no wrapper for calls from Python (such wrappers unbox every
    argument and cost compile time), and its callers link its code in. It
    is compiled to LLVM IR only, which its callers optimise with their own,
    never to machine code of its own (`_LinkedOnlyLibrary`), and it is not
    cached: its callers' cached machine code holds it.

    ``first_class=True`` is for one of the engine's units: compiled on its
    own for a signature given up front (`first_class_function`) and passed
    to the compiled code that calls it as a function value, so a caller is
    compiled without it. Numba otherwise links a callee's code into every
    caller and LLVM optimises and generates it again there: through the
    engine's four levels of calls, that was most of a cold start.

    ``reassociate=False`` compiles without ``reassoc`` (`FASTMATH_IN_ORDER`),
    for a helper that keeps one running sum per output unit in named
    variables: with ``reassoc`` LLVM vectorises the loop over the inputs
    instead, assembling each vector from scattered loads (measured 2x
    slower); without it, the SLP vectoriser packs the sums into registers.
    The flags stay on the helper's instructions where a caller inlines it.

    ``refcounting=False`` (the default for ``internal`` and ``first_class``)
    compiles without Numba's reference counting (the private option
    ``_nrt=False``), for functions that only borrow the arrays they get:
    they allocate none (Numba refuses to compile an allocation without it)
    and return none. Every array such a function receives, takes from a
    tuple or slices otherwise costs an atomic increment and decrement:
    about 280 of each per row at batch 1 (counted with gdb), 16% of the
    epoch's samples in a profile, and with two threads on the same arrays
    their counters' cache line moves between the cores. The epoch loop and
    the prediction driver pass ``refcounting=False`` too: Python holds their
    arguments for the whole call.

    Usable bare (``@jit``) or with options (``@jit(internal=True)``).
    """
    if func is None:
        return lambda f: jit(f, internal=internal, first_class=first_class,
                             reassociate=reassociate, refcounting=refcounting)
    wrappers = {}
    if internal or first_class:
        wrappers["no_cpython_wrapper"] = True
    if not first_class:  # only a function value is called through its C wrapper
        wrappers["no_cfunc_wrapper"] = True
    options = dict(OPTIONS, fastmath=set(FASTMATH if reassociate else FASTMATH_IN_ORDER))
    if refcounting is None:
        refcounting = not (internal or first_class)
    if not refcounting:
        options["_nrt"] = False
    if internal:
        options.update(cache=False, pipeline_class=_LinkedOnlyCompiler)
    dispatcher = numba.njit(**options, **wrappers)(func)
    dispatcher.compile = _slp_vectorising(dispatcher.compile)
    if options["cache"]:
        dispatcher._cache.load_overload = _loading_without_refresh(dispatcher._cache)
    DISPATCHERS.append(dispatcher)
    return dispatcher


def _slp_vectorising(compile):
    """``compile`` run with LLVM's SLP vectoriser on, for this compile only.

    The SLP vectoriser packs independent scalar operations on neighbouring
    data into vector instructions: the narrow first layer's sixteen running
    sums (``numba_affine.narrow_affine_row``) become two 8-lane FMAs per
    nonzero pixel instead of sixteen scalar ones (measured 2.4x faster). Numba
    turns it off by default since LLVM miscompiled some code with it (Numba PR
    #8852, 2023); fastnn's parity tests check every kernel it compiles this
    way. It is switched on around fastnn's own compiles only, under Numba's
    compiler lock, so other Numba code in the process compiles as usual. Numba
    calls ``dispatcher.compile`` for every new signature, from Python or from
    a compiled caller. A kernel loaded from the disk cache was compiled this
    way: the setting is not part of the cache key, so it must not vary.
    """
    @functools.wraps(compile)
    def compile_with_slp(signature):
        with global_compiler_lock:
            saved = config.SLP_VECTORIZE
            config.SLP_VECTORIZE = 1
            try:
                return compile(signature)
            finally:
                config.SLP_VECTORIZE = saved
    return compile_with_slp


def _loading_without_refresh(cache):
    """``cache.load_overload`` without its refresh of the whole compiler.

    Before it looks in the disk cache, Numba's `load_overload` refreshes the
    target context: it imports and registers the implementation of every
    Python and NumPy feature Numba can compile (``numba.np.arraymath``,
    ``numba.np.random``, typed containers ...), 0.2-0.25 s of a warm
    ``fastnn train``'s start-up on the README's machine, though cached
    machine code needs none of it. What loading does need is kept: the
    runtime's symbols (`nrt.rtsys.initialize`, which the refresh would have
    run first) and the type of a function value (imported above). A cache miss
    compiles, and Numba's compiler refreshes the context itself first.
    """
    def load_overload(signature, target_context):
        nrt.rtsys.initialize(target_context)
        with cache._guard_against_spurious_io_errors():
            return cache._load_overload(signature, target_context)
        return None  # the `with` swallowed an I/O error: compile instead, as Numba does

    return load_overload


class _LinkedOnlyLibrary(codegen.JITCodeLibrary):
    """A helper's code: LLVM IR for its callers to link in, never machine code.

    Numba optimises every compiled function as a whole module and turns it
    into machine code at once, helpers too, though their callers link in
    the helper's IR, optimise it again with their own and generate their
    own machine code from it. In a float32 training compile that was 1.3 s
    of CPU for the helpers' module optimisation and 1.4 s for machine code
    nothing ran, of ~15 s. This library keeps Numba's per-function
    optimisation of the helper's IR and its linking, skips the module
    optimisation (each caller's covers the helper's code once inlined) and
    is never handed to the JIT engine, so nothing generates its machine
    code. The units' machine code is not the same as when helpers came
    optimised (measured: no slower on C1-C6, the parity tests pass
    unchanged). It has no address to call from Python (an internal helper has no
    Python wrapper anyway), and no global for its environment: the engine
    holds none, so setting it is skipped (`_NoEnvironment`); no kernel's
    optimised code reads an environment (checked in their IR: Numba's
    serves Python objects, and the kernels make none).
    """

    def _optimize_final_module(self):
        pass

    def _finalize_final_module(self):
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True

    @property
    def codegen(self):
        return _NoEnvironment(self._codegen)


class _NoEnvironment:
    """``codegen`` as `_LinkedOnlyLibrary` shows it: setting an environment does nothing."""

    def __init__(self, codegen_):
        self._codegen = codegen_

    def set_env(self, env_name, env):
        pass

    def __getattr__(self, name):
        return getattr(self._codegen, name)


class _LinkedOnlyCompiler(compiler.Compiler):
    """Numba's usual compiler, building the function into a `_LinkedOnlyLibrary`."""

    def compile_extra(self, func):
        if self.state.library is None:
            self.state.library = _LinkedOnlyLibrary(self.state.targetctx.codegen(),
                                                    func.__qualname__)
        return super().compile_extra(func)


def first_class_function(dispatcher, argument_types) -> CompileResultWAP:
    """``dispatcher`` compiled (or loaded from the disk cache) for ``argument_types``.

    Returns a value compiled code can take as an argument and call; its
    Numba type is the function's exact signature, so a caller compiled for
    it is cached like any other signature.
    """
    argument_types = tuple(argument_types)
    dispatcher.compile(argument_types)
    return CompileResultWAP(dispatcher.overloads[argument_types])


def compile_stats():
    """``(n_compiled, n_loaded)``: signatures compiled and loaded from the disk cache.

    Counted over every kernel made by `jit`, since the process started.
    """
    compiled = sum(sum(d.stats.cache_misses.values()) for d in DISPATCHERS)
    loaded = sum(sum(d.stats.cache_hits.values()) for d in DISPATCHERS)
    return compiled, loaded


def is_cached(dispatcher, dtype_name=None) -> bool:
    """Whether the disk cache holds fresh code of ``dispatcher`` for this CPU.

    Fresh: compiled from the kernels' current source (see the locator
    above). With ``dtype_name``, for a signature taking arrays of that dtype
    (as arguments or in tuples). Reads the cache's index only; nothing is
    loaded.
    """
    index = dispatcher._cache._cache_file._load_index()
    here = dispatcher.targetctx.codegen().magic_tuple()
    return any(key[1] == here and (dtype_name is None or dtype_name in _array_dtypes(key[0]))
               for key in index)


def _array_dtypes(argument_types) -> set:
    """The names of the dtypes of the arrays among ``argument_types``, in tuples too."""
    found = set()
    for arg in argument_types:
        if isinstance(arg, numba.types.Array):
            found.add(str(arg.dtype))
        elif isinstance(arg, numba.types.BaseTuple):
            found |= _array_dtypes(arg.types)
    return found
