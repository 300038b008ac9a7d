"""The Numba backend computes what the NumPy reference computes.

Each test runs a kernel of ``kernels.numpy_backend`` (``ref_``, the
specification) and its twin in ``kernels.numba_backend`` (``comp_``) on the
same random inputs and asserts they agree within the tolerances of
``tests/tolerances.py``. Inputs are small random arrays, about 70% zeros like
MNIST pixels (the Numba backend skips zero inputs), in float32 and float64,
with row counts that include a single row and sizes that are not multiples
of the SIMD width.
"""

import inspect
import zlib

import numba
import numpy as np
import pytest

from kernels import numba_backend as comp
from kernels import numpy_backend as ref
from kernels.common import RELU, SIGMOID, SOFTMAX, allocate_workspace
from kernels.numba_affine import NARROW_LANES

from .tolerances import epoch_tol, kernel_tol

DTYPES = [np.float32, np.float64]
# (n, k, m): samples, inputs, outputs.
SHAPES = [(1, 5, 10), (3, 33, 5), (17, 10, 33), (64, 33, 10)]


@pytest.fixture(scope="session", autouse=True)
def compiled():
    """Compile (or load from the disk cache) every Numba kernel once per session."""
    return comp.compile_all()


def rng_for(*key):
    """A generator seeded by the test's name and parameters (same in every run)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def sparse_inputs(rng, n, k, dtype):
    """Values in [0, 1) with about 70% exact zeros."""
    x = rng.random((n, k))
    x[rng.random((n, k)) < 0.7] = 0
    return x.astype(dtype)


def normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def one_hot(rng, n, m, dtype):
    return np.eye(m, dtype=dtype)[rng.integers(0, m, n)]


def assert_close(comp_, ref_, tol):
    assert comp_.dtype == ref_.dtype
    np.testing.assert_allclose(comp_, ref_, **tol)


# --- affine layer ---------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,m", SHAPES)
def test_affine_forward(n, k, m, dtype):
    rng = rng_for("affine_forward", n, k, m, dtype)
    x, w, b = sparse_inputs(rng, n, k, dtype), normal(rng, (k, m), dtype), normal(rng, m, dtype)
    ref_, comp_ = np.empty((n, m), dtype), np.full((n, m), np.nan, dtype)
    ref.affine_forward(x, w, b, ref_)
    comp.affine_forward(x, w, b, comp_)
    assert_close(comp_, ref_, kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,m", SHAPES)
def test_affine_backward_params(n, k, m, dtype):
    rng = rng_for("affine_backward_params", n, k, m, dtype)
    x, delta = sparse_inputs(rng, n, k, dtype), normal(rng, (n, m), dtype)
    ref_w, ref_b = np.empty((k, m), dtype), np.empty(m, dtype)
    comp_w, comp_b = np.full((k, m), np.nan, dtype), np.full(m, np.nan, dtype)
    ref.affine_backward_params(x, delta, ref_w, ref_b)
    comp.affine_backward_params(x, delta, comp_w, comp_b)
    assert_close(comp_w, ref_w, kernel_tol(dtype))
    assert_close(comp_b, ref_b, kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_inputs_times_inf_give_nan_as_in_the_reference(dtype):
    """Skipping zero inputs is exact only for finite factors: 0 * inf is nan."""
    rng = rng_for("0*inf", dtype)
    x, w, b = sparse_inputs(rng, 6, 8, dtype), normal(rng, (8, 3), dtype), normal(rng, 3, dtype)
    x[:, 2] = 0
    w[2, 1] = np.inf
    ref_, comp_ = np.empty((6, 3), dtype), np.empty((6, 3), dtype)
    with np.errstate(invalid="ignore"):
        ref.affine_forward(x, w, b, ref_)
    comp.affine_forward(x, w, b, comp_)
    assert np.isnan(ref_[:, 1]).all()
    np.testing.assert_allclose(comp_, ref_, equal_nan=True, **kernel_tol(dtype))
    delta = normal(rng, (6, 3), dtype)
    delta[0, 0] = np.inf
    ref_w, ref_b, comp_w, comp_b = np.empty((8, 3), dtype), np.empty(3, dtype), np.empty((8, 3), dtype), np.empty(3, dtype)
    with np.errstate(invalid="ignore"):
        ref.affine_backward_params(x, delta, ref_w, ref_b)
    comp.affine_backward_params(x, delta, comp_w, comp_b)
    assert np.isnan(ref_w[2, 0])
    np.testing.assert_allclose(comp_w, ref_w, equal_nan=True, **kernel_tol(dtype))
    np.testing.assert_allclose(comp_b, ref_b, equal_nan=True, **kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,m", SHAPES)
def test_affine_backward_input(n, k, m, dtype):
    rng = rng_for("affine_backward_input", n, k, m, dtype)
    delta, w = normal(rng, (n, m), dtype), normal(rng, (k, m), dtype)
    ref_, comp_ = np.empty((n, k), dtype), np.full((n, k), np.nan, dtype)
    ref.affine_backward_input(delta, w, ref_)
    comp.affine_backward_input(delta, w, comp_)
    assert_close(comp_, ref_, kernel_tol(dtype))


# --- activations ------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 10), (3, 5), (17, 33), (64, 10)])
@pytest.mark.parametrize("name", ["sigmoid", "relu", "softmax"])
def test_activation(name, n, m, dtype):
    z = normal(rng_for(name, n, m, dtype), (n, m), dtype, scale=3)
    ref_, comp_ = np.empty_like(z), np.full_like(z, np.nan)
    getattr(ref, name)(z, ref_)
    getattr(comp, name)(z, comp_)
    assert_close(comp_, ref_, kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 10), (17, 33)])
def test_sigmoid_backward(n, m, dtype):
    rng = rng_for("sigmoid_backward", n, m, dtype)
    a, grad_a = rng.random((n, m)).astype(dtype), normal(rng, (n, m), dtype)
    ref_, comp_ = np.empty_like(a), np.full_like(a, np.nan)
    ref.sigmoid_backward(a, grad_a, ref_)
    comp.sigmoid_backward(a, grad_a, comp_)
    assert_close(comp_, ref_, kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 10), (17, 33)])
def test_relu_backward(n, m, dtype):
    rng = rng_for("relu_backward", n, m, dtype)
    z, grad_a = normal(rng, (n, m), dtype), normal(rng, (n, m), dtype)
    ref_, comp_ = np.empty_like(z), np.full_like(z, np.nan)
    ref.relu_backward(z, grad_a, ref_)
    comp.relu_backward(z, grad_a, comp_)
    assert_close(comp_, ref_, kernel_tol(dtype))


def test_backward_steps_work_in_place():
    """train_epoch multiplies a delta buffer by the derivative in place."""
    rng = rng_for("in place")
    a, z, grad = rng.random((5, 7)), normal(rng, (5, 7), np.float64), normal(rng, (5, 7), np.float64)
    for backward, first in (("sigmoid_backward", a), ("relu_backward", z)):
        ref_, comp_ = grad.copy(), grad.copy()
        getattr(ref, backward)(first, ref_, ref_)
        getattr(comp, backward)(first, comp_, comp_)
        assert_close(comp_, ref_, kernel_tol(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_activations_and_losses_stay_finite(dtype):
    """|z| in the hundreds: exp(|z|) overflows, the stable forms must not."""
    z = np.array([[-700.0, 0.0, 300.0], [250.0, -250.0, 90.0], [-80.0, -90.0, -800.0]])
    z = z.astype(dtype)
    y = np.eye(3, dtype=dtype)[[1, 1, 0]]
    for name in ("sigmoid", "softmax"):
        ref_, comp_ = np.empty_like(z), np.empty_like(z)
        getattr(ref, name)(z, ref_)
        getattr(comp, name)(z, comp_)
        assert np.isfinite(comp_).all() and np.isfinite(ref_).all()
        assert_close(comp_, ref_, kernel_tol(dtype))
    ref_loss, comp_loss = ref.softmax_cross_entropy(z, y), comp.softmax_cross_entropy(z, y)
    assert np.isfinite(comp_loss)
    np.testing.assert_allclose(comp_loss, ref_loss, **kernel_tol(dtype))
    ref_loss = ref.sigmoid_cross_entropy(z[:, :1], y[:, :1])
    comp_loss = comp.sigmoid_cross_entropy(z[:, :1], y[:, :1])
    assert np.isfinite(comp_loss)
    np.testing.assert_allclose(comp_loss, ref_loss, **kernel_tol(dtype))


# --- losses ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 10), (3, 5), (64, 10)])
def test_softmax_cross_entropy(n, m, dtype):
    rng = rng_for("softmax_cross_entropy", n, m, dtype)
    z, y = normal(rng, (n, m), dtype, scale=4), one_hot(rng, n, m, dtype)
    comp_ = comp.softmax_cross_entropy(z, y)
    assert isinstance(comp_, float)
    np.testing.assert_allclose(comp_, ref.softmax_cross_entropy(z, y), **kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 64])
def test_sigmoid_cross_entropy(n, dtype):
    rng = rng_for("sigmoid_cross_entropy", n, dtype)
    z, y = normal(rng, (n, 1), dtype, scale=4), rng.integers(0, 2, (n, 1)).astype(dtype)
    comp_ = comp.sigmoid_cross_entropy(z, y)
    assert isinstance(comp_, float)
    np.testing.assert_allclose(comp_, ref.sigmoid_cross_entropy(z, y), **kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 10), (17, 1), (64, 10)])
def test_output_delta(n, m, dtype):
    rng = rng_for("output_delta", n, m, dtype)
    probs, y = rng.random((n, m)).astype(dtype), one_hot(rng, n, m, dtype)
    ref_, comp_ = np.empty_like(probs), np.full_like(probs, np.nan)
    ref.output_delta(probs, y, 1.0 / n, ref_)
    comp.output_delta(probs, y, 1.0 / n, comp_)
    assert_close(comp_, ref_, kernel_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(1, 10), (17, 1), (64, 10), (64, 1)])
def test_count_correct(n, m, dtype):
    rng = rng_for("count_correct", n, m, dtype)
    probs = rng.random((n, m)).astype(dtype)
    y = one_hot(rng, n, m, dtype) if m > 1 else rng.integers(0, 2, (n, 1)).astype(dtype)
    comp_ = comp.count_correct(probs, y)
    assert isinstance(comp_, int)
    assert comp_ == ref.count_correct(probs, y)


def test_count_correct_breaks_ties_like_argmax():
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert comp.count_correct(probs, y) == ref.count_correct(probs, y) == 1


# --- update -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(33,), (17, 10)])
def test_sgd_update(shape, dtype):
    rng = rng_for("sgd_update", shape, dtype)
    param, grad = normal(rng, shape, dtype), normal(rng, shape, dtype)
    ref_, comp_ = param.copy(), param.copy()
    ref.sgd_update(ref_, grad, 0.3)
    comp.sgd_update(comp_, grad, 0.3)
    assert_close(comp_, ref_, kernel_tol(dtype))


# --- composed: forward pass and epochs -------------------------------------------------

def network(rng, sizes, dtype):
    weights = tuple(normal(rng, (k, m), dtype, scale=1 / np.sqrt(k)) for k, m in zip(sizes, sizes[1:]))
    biases = tuple(normal(rng, m, dtype, scale=0.1) for m in sizes[1:])
    return weights, biases


def copies(arrays):
    return tuple(a.copy() for a in arrays)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(33, 10), (33, 17, 5, 10), (20, 9, 7, 5, 1)])
@pytest.mark.parametrize("hidden", [SIGMOID, RELU])
def test_forward(sizes, hidden, dtype, first_layer):
    rng = rng_for("forward", sizes, hidden, dtype)
    weights, biases = network(rng, sizes, dtype)
    x = sparse_inputs(rng, 40, sizes[0], dtype)
    output = SOFTMAX if sizes[-1] > 1 else SIGMOID
    outs = [[np.full((40, m), np.nan, dtype) for m in sizes[1:]] for _ in range(4)]
    ref.forward(weights, biases, x, hidden, output, outs[0], outs[1])
    comp.forward(weights, biases, x, hidden, output, outs[2], outs[3])
    for ref_, comp_ in zip(outs[0] + outs[1], outs[2] + outs[3]):
        assert_close(comp_, ref_, kernel_tol(dtype))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [SIGMOID, RELU])
def test_forward_over_threads(hidden, dtype, first_layer):
    """From PARALLEL_MIN_BATCH rows on, the forward pass is split over threads."""
    n = 3 * comp.PARALLEL_MIN_BATCH + 5
    assert comp._blocks_for(n) >= 2
    rng = rng_for("forward threads", hidden, dtype)
    sizes = (33, first_layer, 10)
    weights, biases = network(rng, sizes, dtype)
    x = sparse_inputs(rng, n, sizes[0], dtype)
    outs = [[np.full((n, m), np.nan, dtype) for m in sizes[1:]] for _ in range(4)]
    ref.forward(weights, biases, x, hidden, SOFTMAX, outs[0], outs[1])
    comp.forward(weights, biases, x, hidden, SOFTMAX, outs[2], outs[3])
    for ref_, comp_ in zip(outs[0] + outs[1], outs[2] + outs[3]):
        assert_close(comp_, ref_, kernel_tol(dtype))


@pytest.mark.parametrize("batch_size", [1, 8])
def test_a_finite_loss_with_an_infinite_first_layer_delta_updates_every_input(batch_size,
                                                                              driver):
    """The dense fallback of the first-layer gradient.

    Dead first-layer ReLUs (a1 = 0) keep the logits and the loss finite, while
    second-layer weights near the float64 maximum make ``delta2 @ w2.T``
    overflow: the first-layer delta is ``inf * 0 = nan``. The reference then
    computes ``0 * nan = nan`` for the zero inputs too; so must the engine,
    which normally reads nonzero inputs only.
    """
    rng = rng_for("dense fallback", batch_size)
    sizes = (12, 4, 3, 3)
    x = sparse_inputs(rng, 8, sizes[0], np.float64)
    x[:, :3] = 0  # inputs that are zero in every row: only the fallback reaches them
    y = one_hot(rng, 8, sizes[-1], np.float64)
    weights = (-np.abs(normal(rng, (12, 4), np.float64)), np.full((4, 3), 1.7e308),
               normal(rng, (3, 3), np.float64, scale=100.0))
    biases = (np.full(4, -1.0), np.ones(3), np.zeros(3))
    args = (x, y, np.arange(8), batch_size, 0.1, RELU, SOFTMAX)
    with np.errstate(all="ignore"):
        ref_run = run_epoch(ref, weights, biases, *args)
    comp_run = run_epoch(comp, weights, biases, *args)
    assert ref_run[0][2] >= 1  # a step was taken with a finite loss
    assert np.isnan(ref_run[1][0]).all()  # every input's weights, zero inputs too
    assert_same_epoch(ref_run, comp_run, np.float64)


def run_epoch(backend, weights, biases, x, y, order, batch_size, lr, hidden, output):
    """One epoch from copies of the parameters: (result, weights, biases).

    The inputs go through the backend's ``prepare_inputs``, as in ``fit``.
    """
    weights, biases = copies(weights), copies(biases)
    sizes = (x.shape[1],) + tuple(b.shape[0] for b in biases)
    ws = allocate_workspace(sizes, min(batch_size, len(order)), x.dtype)
    inputs = backend.prepare_inputs(x)
    result = backend.train_epoch(weights, biases, inputs, y, order, batch_size, lr, hidden, output,
                                 ws)
    return result, weights, biases


def assert_same_epoch(ref_run, comp_run, dtype):
    (ref_loss, ref_correct, ref_steps), ref_w, ref_b = ref_run
    (comp_loss, comp_correct, comp_steps), comp_w, comp_b = comp_run
    assert comp_steps == ref_steps
    assert comp_correct == ref_correct
    np.testing.assert_allclose(comp_loss, ref_loss, **epoch_tol(dtype))
    for comp_, ref_ in zip(comp_w + comp_b, ref_w + ref_b):
        assert_close(comp_, ref_, epoch_tol(dtype))


TASKS = {
    # name: (layer sizes, output activation); the first hidden layer's width is
    # the `first_layer` fixture's where a test takes it.
    "softmax-10": ((30, 12, 10), SOFTMAX),
    "sigmoid-1": ((30, 12, 1), SIGMOID),
}
# name: (rows, batch size); 43 rows in batches of 16 end ragged.
# name -> (rows, batch size); a last batch of one row takes the batch-1 path.
MODES = {"batch-1": (12, 1), "mini-batch-ragged": (43, 16), "last-batch-one-row": (49, 16),
         "full-batch": (43, 43)}

# The engine's three ways through the first layer: name -> (its width, the
# SPARSE_MIN_WIDTH that sends that width there).
FIRST_LAYERS = {
    "narrow-first-layer": (12, comp.SPARSE_MIN_WIDTH),  # <= NARROW_LANES: 16-lane kernels
    "sparse-first-layer": (20, 1),                      # the wide loops over nonzero inputs
    "dense-first-layer": (20, 2**62),                   # dense rows through BLAS
}


@pytest.fixture(params=list(FIRST_LAYERS))
def first_layer(request, monkeypatch):
    """The first hidden layer's width, with the engine set to take one of its three paths.

    Normally the width picks the path (`NARROW_LANES`, SPARSE_MIN_WIDTH): at
    most 16 units the narrow kernels, from 32 the wide sparse ones, between
    them dense rows; here SPARSE_MIN_WIDTH is moved so that small networks
    take the other two.
    """
    width, sparse_min_width = FIRST_LAYERS[request.param]
    monkeypatch.setattr(comp, "SPARSE_MIN_WIDTH", sparse_min_width)
    assert comp._sparse_first([np.zeros((1, width))]) == (request.param != "dense-first-layer")
    assert (width <= NARROW_LANES) == (request.param == "narrow-first-layer")
    return width


@pytest.fixture(params=["one-thread", "threaded"])
def driver(request, monkeypatch, first_layer):
    """Run train_epoch through its one-thread loop, or its threaded loop at any batch size.

    The threaded loop splits each batch over Numba's threads; it is normally
    used from PARALLEL_MIN_BATCH rows on, here for every batch.
    """
    if request.param == "threaded":
        if numba.config.NUMBA_NUM_THREADS < 2:
            pytest.skip("needs 2 Numba threads")
        monkeypatch.setattr(comp, "PARALLEL_MIN_BATCH", 1)
        assert comp._blocks_for(2) >= 2  # every batch of 2 rows or more is split
    else:
        monkeypatch.setattr(comp, "PARALLEL_MIN_BATCH", 2**62)
        assert comp._blocks_for(10**9) == 1
    return request.param


def task_data(rng, task, n, dtype, width=None):
    """Layer sizes, output activation, inputs and targets of a task of n rows.

    ``width`` replaces the first hidden layer's.
    """
    sizes, output = TASKS[task]
    if width is not None:
        sizes = (sizes[0], width) + sizes[2:]
    x = sparse_inputs(rng, n, sizes[0], dtype)
    if output == SOFTMAX:
        y = one_hot(rng, n, sizes[-1], dtype)
    else:
        y = rng.integers(0, 2, (n, 1)).astype(dtype)
    return sizes, output, x, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hidden", [SIGMOID, RELU], ids=["sigmoid", "relu"])
@pytest.mark.parametrize("task", TASKS)
def test_train_epoch(task, hidden, mode, dtype, driver, first_layer):
    rng = rng_for("train_epoch", task, hidden, mode, dtype)
    n, batch_size = MODES[mode]
    sizes, output, x, y = task_data(rng, task, n, dtype, first_layer)
    weights, biases = network(rng, sizes, dtype)
    order = rng.permutation(n)
    args = (x, y, order, batch_size, 0.2, hidden, output)
    ref_run = run_epoch(ref, weights, biases, *args)
    comp_run = run_epoch(comp, weights, biases, *args)
    assert ref_run[0][2] == -(-n // batch_size)  # every batch was a step
    assert_same_epoch(ref_run, comp_run, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [(30, 10), (30, 9, 8, 7, 10)], ids=["1-layer", "4-layer"])
def test_train_epoch_other_depths(sizes, dtype, driver):
    rng = rng_for("depths", sizes, dtype)
    x, y = sparse_inputs(rng, 40, sizes[0], dtype), one_hot(rng, 40, sizes[-1], dtype)
    weights, biases = network(rng, sizes, dtype)
    args = (x, y, rng.permutation(40), 16, 0.2, RELU, SOFTMAX)
    assert_same_epoch(run_epoch(ref, weights, biases, *args),
                      run_epoch(comp, weights, biases, *args), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 5, NARROW_LANES])
def test_narrow_first_layers_of_every_width(width, dtype, driver):
    """First layers of 1 to 16 units: the 16-lane kernels read past row j's m weights.

    Eighteen inputs, the last of them nonzero in every row, so that the entries
    whose 16 lanes would pass the end of w (or of the deltas) take the plain loops.
    """
    rng = rng_for("narrow", width, dtype)
    sizes = (18, width, 3)
    x, y = sparse_inputs(rng, 40, sizes[0], dtype), one_hot(rng, 40, sizes[-1], dtype)
    x[:, -1] = rng.random(40) + 0.5
    weights, biases = network(rng, sizes, dtype)
    for batch_size in (16, 40):
        args = (x, y, rng.permutation(40), batch_size, 0.2, SIGMOID, SOFTMAX)
        assert_same_epoch(run_epoch(ref, weights, biases, *args),
                          run_epoch(comp, weights, biases, *args), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delta", ["finite", "inf"])
def test_parameter_gradients(delta, dtype, first_layer):
    """With an inf in the first layer's delta, zero inputs count: ``0 * inf = nan`` as NumPy."""
    rng = rng_for("parameter_gradients", first_layer, dtype)
    sizes = (30, first_layer, 7, 10)
    n = 25
    x = sparse_inputs(rng, n, sizes[0], dtype)
    acts = [normal(rng, (n, m), dtype) for m in sizes[1:]]
    deltas = [normal(rng, (n, m), dtype) for m in sizes[1:]]
    if delta == "inf":
        deltas[0][3, 2] = np.inf
    grads = []
    for backend in (ref, comp):
        grad_w = [np.full((k, m), np.nan, dtype) for k, m in zip(sizes, sizes[1:])]
        grad_b = [np.full(m, np.nan, dtype) for m in sizes[1:]]
        with np.errstate(invalid="ignore"):  # the reference's 0 * inf
            backend.parameter_gradients(x, acts, deltas, grad_w, grad_b)
        grads.append(grad_w + grad_b)
    for ref_, comp_ in zip(*grads):
        assert_close(comp_, ref_, kernel_tol(dtype))


def test_train_epoch_order_may_repeat_and_skip_rows():
    """``order`` picks rows: some twice, some never."""
    rng = rng_for("order")
    sizes, output, x, y = task_data(rng, "softmax-10", 20, np.float64)
    weights, biases = network(rng, sizes, np.float64)
    order = np.array([3, 3, 0, 19, 7, 7, 7, 1])
    args = (x, y, order, 3, 0.5, SIGMOID, output)
    assert_same_epoch(run_epoch(ref, weights, biases, *args),
                      run_epoch(comp, weights, biases, *args), np.float64)


def test_big_batches_are_walked_in_tiles(monkeypatch, driver, first_layer):
    """A batch bigger than TILE_ROWS (the full data set) sums over several tiles."""
    monkeypatch.setattr(comp, "TILE_ROWS", 5)
    rng = rng_for("tiles")
    sizes, output, x, y = task_data(rng, "softmax-10", 43, np.float64, first_layer)
    weights, biases = network(rng, sizes, np.float64)
    for batch_size in (43, 17):
        args = (x, y, rng.permutation(43), batch_size, 0.3, RELU, output)
        assert_same_epoch(run_epoch(ref, weights, biases, *args),
                          run_epoch(comp, weights, biases, *args), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_full_batch_keeps_its_inputs_sorted_by_column(monkeypatch, driver, first_layer, dtype):
    """From the second epoch of one order on, a full batch's tiles keep their sort by
    column, and every epoch steps exactly as one that sorts anew; other inputs or
    another order are sorted anew, and kept from their own second epoch on."""
    monkeypatch.setattr(comp, "TILE_ROWS", 5)
    rng = rng_for("kept columns", dtype)
    sizes, output, x, y = task_data(rng, "softmax-10", 43, dtype, first_layer)
    weights, biases = network(rng, sizes, dtype)
    inputs, same_inputs_again = comp.prepare_inputs(x), comp.prepare_inputs(x)
    subset = rng.permutation(43)[:30]
    calls = [(inputs, rng.permutation(43)) for _ in range(3)] + [
        (same_inputs_again, rng.permutation(43)), (same_inputs_again, rng.permutation(43)),
        (same_inputs_again, subset), (same_inputs_again, subset[::-1])]
    sorts_kept = [False, True, True, False, True, False, True]
    sparse_wide = first_layer > NARROW_LANES and comp._sparse_first([np.zeros((1, first_layer))])
    kept_ws = allocate_workspace(sizes, 43, dtype)
    kept, fresh = (copies(weights), copies(biases)), (copies(weights), copies(biases))
    arrays = []
    for (prepared, order), sort_kept in zip(calls, sorts_kept):
        args = (prepared, y, order, 43, 0.3, RELU, output)
        kept_run = comp.train_epoch(*kept, *args, kept_ws)
        fresh_run = comp.train_epoch(*fresh, *args, allocate_workspace(sizes, 43, dtype))
        assert kept_run == fresh_run
        for kept_, fresh_ in zip(kept[0] + kept[1], fresh[0] + fresh[1]):
            np.testing.assert_array_equal(kept_, fresh_)
        sorted_columns = kept_ws.kept.get("sorted_columns")
        if not sparse_wide:  # only the wide sparse first layer sorts
            assert sorted_columns is None
            continue
        assert np.array_equal(sorted_columns.order, np.sort(order))
        assert (sorted_columns.arrays is not None) == sort_kept
        if sort_kept:
            assert sorted_columns.arrays.sorted_slots.all()  # every tile's every block
        arrays.append(sorted_columns.arrays)
    if sparse_wide:  # the third epoch read the second's sort; other inputs made their own
        assert arrays[2] is arrays[1] and arrays[4] is not arrays[1]


def test_later_steps_read_the_kept_sort(monkeypatch):
    """The kept entries are what the steps after the one that sorted them multiply."""
    monkeypatch.setattr(comp, "SPARSE_MIN_WIDTH", 1)
    monkeypatch.setattr(comp, "TILE_ROWS", 5)
    rng = rng_for("read kept columns")
    sizes, output, x, y = task_data(rng, "softmax-10", 43, np.float64, 20)
    weights, biases = network(rng, sizes, np.float64)
    inputs = comp.prepare_inputs(x)
    ws = allocate_workspace(sizes, 43, np.float64)
    for _ in range(2):
        comp.train_epoch(weights, biases, inputs, y, np.arange(43), 43, 0.3, RELU, output, ws)
    ws.kept["sorted_columns"].arrays.csc_values[:] = 0  # as if no input were nonzero
    before = weights[0].copy()
    comp.train_epoch(weights, biases, inputs, y, np.arange(43), 43, 0.3, RELU, output, ws)
    np.testing.assert_array_equal(weights[0], before)


def test_mini_batches_keep_no_sorted_inputs(monkeypatch):
    """Batches of other rows at every step sort into scratch: nothing is kept."""
    monkeypatch.setattr(comp, "SPARSE_MIN_WIDTH", 1)
    rng = rng_for("no kept columns")
    sizes, output, x, y = task_data(rng, "softmax-10", 43, np.float64, 20)
    weights, biases = network(rng, sizes, np.float64)
    ws = allocate_workspace(sizes, 16, np.float64)
    inputs = comp.prepare_inputs(x)
    for _ in range(2):
        comp.train_epoch(weights, biases, inputs, y, rng.permutation(43), 16, 0.3, RELU, output,
                         ws)
    assert ws.kept == {}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 16])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("power", [0.5, 1.0], ids=["lr=sqrt(max)", "lr=max"])
def test_divergence_stops_at_the_same_step(power, task, batch_size, dtype, driver,
                                           first_layer):
    """A huge learning rate: both stop before updating at the same non-finite batch.

    With lr = the dtype's largest value a step makes weights infinite at
    once; then the reference's ``0 * inf = nan`` must happen in the Numba
    backend too, even though it normally skips zero inputs.
    """
    rng = rng_for("diverge", power, task, batch_size, dtype)
    n = 64
    sizes, output, x, y = task_data(rng, task, n, dtype, first_layer)
    x *= 100
    weights, biases = network(rng, sizes, dtype)
    lr = float(np.finfo(dtype).max) ** power
    args = (x, y, rng.permutation(n), batch_size, lr, RELU, output)
    ref_run = run_epoch(ref, weights, biases, *args)
    comp_run = run_epoch(comp, weights, biases, *args)
    steps = ref_run[0][2]
    assert 0 < steps < -(-n // batch_size)  # it did diverge, after a step
    assert comp_run[0][2] == steps
    assert comp_run[0][1] == ref_run[0][1]
    np.testing.assert_allclose(comp_run[0][0], ref_run[0][0], **epoch_tol(dtype))
    # Stopped before updating: the parameters are exactly those after the good
    # steps. (Compared with themselves, not with the reference's: after a step
    # with such an lr, rounding differences are multiplied by the lr.)
    x, y, order = args[:3]
    good_run = run_epoch(comp, weights, biases, x, y, order[:steps * batch_size], *args[3:])
    assert good_run[0][1:] == (comp_run[0][1], steps)
    for comp_, good in zip(comp_run[1] + comp_run[2], good_run[1] + good_run[2]):
        np.testing.assert_array_equal(comp_, good)


# --- prepared inputs ---------------------------------------------------------------------

def dense_from(prepared, shape, dtype):
    """The dense array a `PreparedInputs` describes, rebuilt from its CSR arrays only."""
    dense = np.zeros(shape, dtype)
    for r in range(shape[0]):
        lo, hi = prepared.indptr[r], prepared.indptr[r + 1]
        dense[r, prepared.indices[lo:hi]] = prepared.values[lo:hi]
    return dense


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F"])
def test_prepare_inputs_round_trips(layout, dtype):
    """The sparse rows hold exactly the nonzero entries: the dense array comes back.

    Rows of all zeros (first, middle and last) and a row without any zero
    included; NaN and negative values are nonzero entries like any other.
    """
    rng = rng_for("prepare_inputs", layout, dtype)
    x = sparse_inputs(rng, 9, 37, dtype)
    x[0] = x[4] = x[8] = 0
    x[6] = rng.random(37) + 0.5
    x[2, 5], x[3, 0], x[3, 36] = np.nan, -2.5, 7.0
    x = np.asarray(x, order=layout)
    assert ref.prepare_inputs(x) is x  # the reference needs nothing
    prepared = comp.prepare_inputs(x)
    assert prepared.indptr.dtype == np.int64 and prepared.indptr.shape == (10,)
    assert prepared.indices.dtype == np.int32 and prepared.values.dtype == dtype
    assert prepared.indptr[0] == 0 and prepared.indptr[-1] == np.count_nonzero(x)
    assert list(np.diff(prepared.indptr)[[0, 4, 6, 8]]) == [0, 0, 37, 0]
    for r in range(9):
        assert (np.diff(prepared.indices[prepared.indptr[r]:prepared.indptr[r + 1]]) > 0).all()
    assert (prepared.values != 0).all()
    np.testing.assert_array_equal(dense_from(prepared, x.shape, dtype), x)
    assert prepared.x.flags.c_contiguous
    np.testing.assert_array_equal(prepared.x, x)
    assert comp.prepare_inputs(prepared) is prepared


@pytest.mark.parametrize("n,k", [(0, 5), (4, 6), (3, 1)])
def test_prepare_inputs_of_all_zeros_and_empty_inputs(n, k):
    x = np.zeros((n, k), np.float32)
    prepared = comp.prepare_inputs(x)
    assert list(prepared.indptr) == [0] * (n + 1)
    assert prepared.indices.shape == prepared.values.shape == (0,)
    np.testing.assert_array_equal(dense_from(prepared, x.shape, np.float32), x)


def test_train_epoch_takes_plain_or_prepared_inputs_alike(driver, first_layer):
    """A plain array given to the numba train_epoch is prepared there: the same result."""
    rng = rng_for("plain or prepared")
    sizes, output, x, y = task_data(rng, "softmax-10", 43, np.float32, first_layer)
    weights, biases = network(rng, sizes, np.float32)
    order = rng.permutation(43)
    runs = []
    for inputs in (x, comp.prepare_inputs(x)):
        w, b = copies(weights), copies(biases)
        ws = allocate_workspace(sizes, 16, np.float32)
        result = comp.train_epoch(w, b, inputs, y, order, 16, 0.2, RELU, output, ws)
        runs.append((result, w, b))
    assert runs[0][0] == runs[1][0]
    for plain, prepared in zip(runs[0][1] + runs[0][2], runs[1][1] + runs[1][2]):
        np.testing.assert_array_equal(plain, prepared)


def test_train_epoch_refuses_inputs_not_laid_out_by_prepare_inputs():
    rng = rng_for("bad prepared")
    sizes, output, x, y = task_data(rng, "softmax-10", 8, np.float32)
    weights, biases = network(rng, sizes, np.float32)
    prepared = comp.prepare_inputs(x)
    ws = allocate_workspace(sizes, 4, np.float32)
    for bad in (prepared._replace(indices=prepared.indices.astype(np.int64)),
                prepared._replace(values=prepared.values.astype(np.float64)),
                prepared._replace(indptr=prepared.indptr[:-1])):
        with pytest.raises(ValueError, match="prepare_inputs"):
            comp.train_epoch(copies(weights), copies(biases), bad, y, np.arange(8), 4, 0.1,
                             RELU, output, ws)


def test_float32_stays_float32():
    rng = rng_for("float32")
    sizes, output, x, y = task_data(rng, "softmax-10", 20, np.float32)
    weights, biases = network(rng, sizes, np.float32)
    (loss, _, _), w, b = run_epoch(comp, weights, biases, x, y, np.arange(20), 4, 0.1, RELU, output)
    assert isinstance(loss, float)
    assert all(a.dtype == np.float32 for a in w + b)


def test_parameters_of_another_dtype_are_refused():
    rng = rng_for("dtype mix")
    sizes, output, x, y = task_data(rng, "softmax-10", 8, np.float32)
    weights, biases = network(rng, sizes, np.float64)
    with pytest.raises(ValueError, match="float32"):
        run_epoch(comp, weights, biases, x, y, np.arange(8), 4, 0.1, RELU, output)
    weights, biases = network(rng, sizes, np.float32)
    with pytest.raises(ValueError, match="float32"):
        run_epoch(comp, weights, biases, x, y.astype(np.float64), np.arange(8), 4, 0.1, RELU,
                  output)


def test_warmup_reports_compile_work(compiled):
    assert compiled.seconds >= 0
    assert comp.is_compiled()
    again = comp.warmup()
    assert (again.compiled, again.loaded) == (0, 0)  # everything is in memory now


def test_the_backends_are_twins():
    """Every public name of the Numba backend exists in the reference, taking the same parameters."""
    for name in comp.__all__:
        if name == "NAME":
            continue
        twin = getattr(ref, name, None)
        assert twin is not None, f"numpy_backend has no {name}"
        assert (inspect.signature(getattr(comp, name)).parameters
                == inspect.signature(twin).parameters), name


def test_float32_sigmoid_is_within_a_few_ulp_of_the_logistic_function():
    """The float32 sigmoid computes exp in its own vector instructions (see
    ``numba_elementwise.exp_nonpositive_f32``): close to the exact value over
    the whole range, saturated ends and NaN included."""
    z = np.concatenate([np.linspace(-120, 120, 2_000_001, dtype=np.float32),
                        np.float32([0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf, np.nan])])
    out = np.empty_like(z)
    comp.sigmoid(z, out)
    exact = 1 / (1 + np.exp(-z.astype(np.float64)))
    tiny = np.finfo(np.float32).tiny  # below it the result is 0 (exp flushed)
    normal = np.isfinite(z) & (exact >= tiny)
    ulps = np.abs(out[normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulps.max() <= 3
    assert np.abs(out[~normal & np.isfinite(z)]).max() < tiny
    np.testing.assert_array_equal(out[-3:-1], [1, 0])
    assert np.isnan(out[-1])
