"""A run compiles the parts of the engine it calls, and nothing else.

``numba_engine.units_called`` says which units an epoch calls; the others
are passed as stand-ins that do nothing, so they never compile. The parity
tests train through those stand-ins at every batch size (a stand-in called
by mistake would leave parameters un-updated and fail them); these tests
pin down the choice itself and the compiling around it.
"""

import numpy as np
import pytest

from kernels import numba_backend as comp
from kernels import numba_compile
from kernels._jit import compile_stats
from kernels.common import RELU, SOFTMAX, allocate_workspace
from kernels.numba_engine import units_called

PHASE_1 = {"first_layer_block", "forward_block", "deltas_block"}
BATCH_PHASES = {"gradient_block", "update_block"}


def small_task(sizes, n, seed):
    """``(x, y, weights, biases)``: n sparse float32 rows, one-hot targets, a random net."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, sizes[0])).astype(np.float32)
    x[x < 0.6] = 0
    y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], n)]
    weights = tuple(rng.standard_normal((k, m)).astype(np.float32)
                    for k, m in zip(sizes, sizes[1:]))
    biases = tuple(np.zeros(m, np.float32) for m in sizes[1:])
    return x, y, weights, biases


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Every part compiled (or loaded) once per session, as in the parity tests."""
    return comp.compile_all()


@pytest.mark.parametrize("batch_size, n_rows, called", [
    (64, None, PHASE_1 | BATCH_PHASES),
    (1, None, PHASE_1 | {"gradient_update_row"}),
    (64, 129, PHASE_1 | BATCH_PHASES | {"gradient_update_row"}),  # the last batch is one row
    (64, 128, PHASE_1 | BATCH_PHASES),
    (5, 1, PHASE_1 | {"gradient_update_row"}),   # the only batch is one row
    (200, 200, PHASE_1 | BATCH_PHASES),
])
def test_the_units_an_epoch_calls(batch_size, n_rows, called):
    assert units_called(batch_size, n_rows) == called


def test_a_run_of_batch_1_does_not_compile_the_batch_phases():
    parts = set(comp._parts_for(1, True, 128))
    assert {"gradient_block_unused", "update_block_unused"} <= parts
    assert not {"gradient_block", "narrow_gradient_block", "update_block"} & parts
    assert {"forward_block", "deltas_block", "gradient_update_row", "train_steps",
            "forward_rows", "prepare_inputs"} <= parts


def test_evaluating_compiles_the_forward_pass_only():
    assert set(comp._parts_for(64, False, 128)) == {
        "first_layer_block", "forward_block", "forward_rows", "prepare_inputs"}


@pytest.mark.parametrize("width, narrow", [(1, True), (16, True), (17, False), (128, False),
                                           (None, False)])
def test_a_first_layer_of_at_most_16_units_compiles_only_the_narrow_variants(width, narrow):
    training = set(comp._parts_for(64, True, width))
    forward = set(comp._parts_for(64, False, width))
    variants = {"first_layer_block", "gradient_block"}
    if narrow:
        assert {f"narrow_{name}" for name in variants} <= training
        assert not variants & (training | forward)
        assert "narrow_first_layer_block" in forward
    else:
        assert variants <= training
        assert not {f"narrow_{name}" for name in variants} & (training | forward)
        assert "first_layer_block" in forward


@pytest.mark.parametrize("width", [16, 40])
def test_an_epoch_takes_the_variants_for_its_first_layers_width(width, monkeypatch):
    """Those `warmup` compiles for that width (`_parts_for`)."""
    from kernels import numba_engine

    sizes = (30, width, 3)
    x, y, weights, biases = small_task(sizes, 40, seed=width)
    unit = numba_engine.engine_unit
    chosen = []
    monkeypatch.setattr(numba_engine, "engine_unit", lambda name, *args, **options: (
        chosen.append((name, options.get("narrow"))) or unit(name, *args, **options)))
    comp.train_epoch(weights, biases, x, y, np.arange(40), 8, 0.1, RELU, SOFTMAX,
                     allocate_workspace(sizes, 8, np.float32))
    assert ("first_layer_block", width <= 16) in chosen
    assert ("gradient_block", width <= 16) in chosen


@pytest.mark.parametrize("batch_size", [1, 7, 64, 150])
@pytest.mark.parametrize("threads", [1, 2])
def test_training_after_compile_all_compiles_nothing(batch_size, threads):
    """`train_epoch` calls the drivers with the signatures `compile_parts` compiles."""
    from fastnn.threads import available_threads, limit_threads

    sizes = (20, 8, 3)
    x, y, weights, biases = small_task(sizes, 150, seed=batch_size)
    before = compile_stats()
    with limit_threads(min(threads, available_threads())):
        comp.train_epoch(weights, biases, x, y, np.arange(150), batch_size, 0.1, RELU, SOFTMAX,
                         allocate_workspace(sizes, batch_size, np.float32))
    assert compile_stats() == before


def test_parts_are_split_so_that_two_processes_finish_together():
    parts = numba_compile.training_parts(units_called(64, None), 128)
    here, elsewhere = numba_compile.split_parts(parts)
    assert sorted(here + elsewhere) == sorted(parts)
    cost = numba_compile.COMPILE_SECONDS.get
    load_here = sum(cost(p, numba_compile.STAND_IN_SECONDS) for p in here)
    load_elsewhere = numba_compile.HELPER_START_SECONDS + sum(
        cost(p, numba_compile.STAND_IN_SECONDS) for p in elsewhere)
    assert abs(load_here - load_elsewhere) <= max(numba_compile.COMPILE_SECONDS.values())


def test_a_few_small_parts_are_not_worth_a_second_process():
    parts = ("gradient_update_row", "update_block_unused")
    assert numba_compile.split_parts(parts) == (parts, ())


def test_the_second_process_compiles_these_kernels_whatever_the_working_directory(
        tmp_path, monkeypatch):
    """A ``kernels`` package in the directory fastnn runs from is not the one compiled."""
    impostor = tmp_path / "kernels"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    helper = numba_compile._compile_elsewhere(np.dtype(np.float32), [])
    assert helper.wait(timeout=120) == 0


def test_nothing_to_compile_is_estimated_at_zero():
    assert comp.compile_estimate(np.float32, 64) == 0.0  # compiled by the fixture
    assert comp.compile_estimate(np.float64, 1, training=False) == 0.0


def test_the_estimate_is_the_longer_of_the_two_processes(monkeypatch):
    monkeypatch.setattr(numba_compile, "is_cached", lambda dtype, parts: False)
    monkeypatch.setattr(numba_compile, "_loaded", set())
    monkeypatch.setattr(numba_compile, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(numba_compile, "HELPER_START_SECONDS", 0.5)
    monkeypatch.setattr(numba_compile, "COMPILE_SECONDS",
                        {"gradient_block": 3.5, "deltas_block": 2.1, "train_steps": 2.0})
    parts = ("gradient_block", "deltas_block", "train_steps")
    # here gradient_block; elsewhere, half a second later, the other two
    assert numba_compile.estimate_seconds(np.float32, parts) == pytest.approx(0.5 + 2.1 + 2.0)
    monkeypatch.setattr(numba_compile, "_usable_cpus", lambda: 1)
    assert numba_compile.estimate_seconds(np.float32, parts) == pytest.approx(7.6)


def test_the_notice_expects_this_machines_pace(monkeypatch):
    """An estimate of 8 s (the backend's, at the pace its costs were measured)."""
    from fastnn import backend_setup, info

    monkeypatch.setattr(info, "last_compiles", lambda: {})
    assert backend_setup.expected_compile_seconds(8.0, "float32") == (
        pytest.approx(8.0 * backend_setup.TYPICAL_PACE))
    noted = {"float32": {"seconds": 5.0, "estimate": 10.0, "numba": "0"}}  # twice as fast
    monkeypatch.setattr(info, "last_compiles", lambda: noted)
    assert backend_setup.expected_compile_seconds(8.0, "float32") == pytest.approx(4.0)
    older = {"float32": {"seconds": 11.0, "numba": "0"}}  # noted before estimates were
    monkeypatch.setattr(info, "last_compiles", lambda: older)
    assert backend_setup.expected_compile_seconds(8.0, "float32") == (
        pytest.approx(8.0 * backend_setup.TYPICAL_PACE))
