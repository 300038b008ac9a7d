"""The JIT options of kernels/_jit.py: what the engine compiles with, and what it leaves alone.

Checked on the dispatchers' options and on stand-in compiles: nothing here
compiles a kernel.
"""

import numba
from numba.core import config
from numba.core.caching import NullCache

from kernels import _jit, numba_affine, numba_elementwise, numba_engine, numba_phases

ENGINE = (*numba_engine.UNIT_FUNCTIONS, numba_engine.train_steps, numba_engine.forward_rows)
HELPERS = (numba_affine.narrow_affine_row, numba_affine.sparse_affine_row, numba_affine.matmul,
           numba_phases.narrow_first_layer_gradient, numba_elementwise.activate_row)
PUBLIC_KERNELS = (numba_affine.affine_forward, numba_elementwise.sigmoid,
                  numba_elementwise.softmax_cross_entropy, numba_elementwise.sgd_update)


def test_the_engine_and_its_helpers_compile_without_reference_counting():
    for dispatcher in ENGINE + HELPERS:
        assert dispatcher.targetoptions["_nrt"] is False, dispatcher.py_func.__qualname__


def test_kernels_called_with_arrays_from_python_keep_reference_counting():
    for dispatcher in PUBLIC_KERNELS:
        assert dispatcher.targetoptions.get("_nrt", True) is not False, \
            dispatcher.py_func.__qualname__


def test_only_the_narrow_helpers_and_exp_compute_in_the_order_written():
    in_order = {numba_affine.narrow_affine_row, numba_phases.narrow_first_layer_gradient,
                numba_elementwise.exp_nonpositive_f32}
    for dispatcher in _jit.DISPATCHERS:
        flags = set(dispatcher.targetoptions["fastmath"])
        expected = _jit.FASTMATH_IN_ORDER if dispatcher in in_order else _jit.FASTMATH
        assert flags == set(expected), dispatcher.py_func.__qualname__


def test_helpers_compile_to_ir_for_their_callers_and_are_not_cached():
    for dispatcher in HELPERS:
        assert dispatcher._compiler.pipeline_class is _jit._LinkedOnlyCompiler
        assert isinstance(dispatcher._cache, NullCache), dispatcher.py_func.__qualname__
    for dispatcher in ENGINE:
        assert not isinstance(dispatcher._cache, NullCache), dispatcher.py_func.__qualname__


def test_a_caller_runs_a_helper_that_has_no_machine_code_of_its_own():
    @_jit.jit(internal=True)
    def twice(v):
        return 2.0 * v

    @numba.njit
    def twice_plus_one(v):
        return twice(v) + 1.0

    try:
        assert twice_plus_one(3.0) == 7.0
        (compiled,) = twice.overloads.values()
        assert isinstance(compiled.library, _jit._LinkedOnlyLibrary)
    finally:
        _jit.DISPATCHERS.remove(twice)


def test_slp_vectorising_is_switched_on_for_a_fastnn_compile_only():
    seen = []
    before = config.SLP_VECTORIZE

    def compile_(signature):
        seen.append(config.SLP_VECTORIZE)
        return signature

    assert _jit._slp_vectorising(compile_)("sig") == "sig"
    assert seen == [1]
    assert config.SLP_VECTORIZE == before


def test_slp_setting_is_restored_when_a_compile_fails():
    before = config.SLP_VECTORIZE

    def failing(signature):
        raise TypeError("no such signature")

    try:
        _jit._slp_vectorising(failing)("sig")
    except TypeError:
        pass
    assert config.SLP_VECTORIZE == before


def test_every_fastnn_dispatcher_compiles_through_the_slp_scope():
    for dispatcher in _jit.DISPATCHERS:
        compile_ = dispatcher.compile
        assert compile_.__code__ is _jit._slp_vectorising(print).__code__, \
            dispatcher.py_func.__qualname__
        assert compile_.__wrapped__ == type(dispatcher).compile.__get__(dispatcher)
