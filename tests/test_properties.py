"""Property-based tests of the kernels: random shapes and values, saturated inputs.

For each kernel, hypothesis draws shapes and values (zeros included, since the
Numba backend treats zero inputs specially) and checks what must hold for any
input: outputs stay finite and in range, the reference matches its formula,
and the Numba twin agrees with the reference within ``tests/tolerances.py``.
Numba is a hard dependency: if its backend does not import, these tests fail.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kernels import numba_backend as comp
from kernels import numpy_backend as ref
from kernels.common import RELU, SIGMOID, SOFTMAX, allocate_workspace

from .tolerances import epoch_tol, kernel_tol

PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = st.sampled_from([np.float32, np.float64])
FINFO_MAX = {np.float32: float(np.finfo(np.float32).max), np.float64: float(np.finfo(np.float64).max)}


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """JIT-compile (or load) the Numba kernels before the first example is timed."""
    comp.warmup()


def values(dtype, shape, bound, zeros=True):
    """Finite values in [-bound, bound] of ``dtype`` (exact zeros likely if ``zeros``)."""
    width = 32 if dtype == np.float32 else 64
    bound = float(dtype(min(bound, FINFO_MAX[dtype])))  # representable in dtype
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    if zeros:
        elements = st.just(0.0) | elements
    return arrays(dtype, shape, elements=elements)


@st.composite
def affine_case(draw, bound=1e3):
    dtype = draw(DTYPES)
    n, k, m = draw(st.integers(1, 9)), draw(st.integers(1, 40)), draw(st.integers(1, 12))
    x = draw(values(dtype, (n, k), bound))
    w = draw(values(dtype, (k, m), bound, zeros=False))
    b = draw(values(dtype, (m,), bound, zeros=False))
    return dtype, x, w, b


@st.composite
def logits(draw, bound, max_cols=12):
    """(z, one-hot y) with z of any magnitude up to ``bound``: saturated when large."""
    dtype = draw(DTYPES)
    n, m = draw(st.integers(1, 9)), draw(st.integers(1, max_cols))
    z = draw(values(dtype, (n, m), bound))
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, m - 1)))
    return dtype, z, np.eye(m, dtype=dtype)[labels]


def close_relative_to(comp_, ref_, scale, dtype):
    """|comp - ref| <= rtol * scale + atol, with ``scale`` the sum of magnitudes that
    produced each element (a dot product of large terms may cancel)."""
    tol = kernel_tol(dtype)
    assert comp_.dtype == dtype
    assert np.all(np.abs(comp_.astype(np.float64) - ref_) <= tol["rtol"] * scale + tol["atol"])


# --- affine layer -------------------------------------------------------------------

@PROPERTY
@given(affine_case())
def test_affine_forward_is_x_w_plus_b_in_both_backends(case):
    dtype, x, w, b = case
    out = np.empty((x.shape[0], w.shape[1]), dtype)
    ref.affine_forward(x, w, b, out)
    exact = x.astype(np.float64) @ w.astype(np.float64) + b
    scale = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)) + np.abs(b)
    assert np.isfinite(out).all()
    close_relative_to(out, exact, scale, dtype)
    fast = np.empty_like(out)
    comp.affine_forward(x, w, b, fast)
    close_relative_to(fast, out.astype(np.float64), scale, dtype)


@PROPERTY
@given(affine_case(), st.data())
def test_affine_backward_agrees(case, data):
    dtype, x, w, _ = case
    delta = data.draw(values(dtype, (x.shape[0], w.shape[1]), 1e3))
    x64, d64, w64 = (a.astype(np.float64) for a in (x, delta, w))
    grad_w, grad_b = np.empty_like(w), np.empty(w.shape[1], dtype)
    grad_x = np.empty_like(x)
    ref.affine_backward_params(x, delta, grad_w, grad_b)
    ref.affine_backward_input(delta, w, grad_x)
    comp_w, comp_b, comp_x = np.empty_like(grad_w), np.empty_like(grad_b), np.empty_like(grad_x)
    comp.affine_backward_params(x, delta, comp_w, comp_b)
    comp.affine_backward_input(delta, w, comp_x)
    close_relative_to(comp_w, grad_w.astype(np.float64), np.abs(x64).T @ np.abs(d64), dtype)
    close_relative_to(comp_b, grad_b.astype(np.float64), np.abs(d64).sum(0), dtype)
    close_relative_to(comp_x, grad_x.astype(np.float64), np.abs(d64) @ np.abs(w64).T, dtype)


# --- activations: any finite input, however large --------------------------------------

@PROPERTY
@given(logits(bound=float("inf")), st.sampled_from(["sigmoid", "relu", "softmax"]))
def test_activations_stay_finite_and_in_range_and_agree(case, name):
    dtype, z, _ = case
    out = np.empty_like(z)
    with np.errstate(over="ignore"):  # z - max(z) may overflow to -inf: exp gives 0, fine
        getattr(ref, name)(z, out)
    assert np.isfinite(out).all()
    if name == "relu":
        np.testing.assert_array_equal(out, np.maximum(z, 0))
    else:
        assert ((out >= 0) & (out <= 1)).all()
    if name == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1, rtol=0, atol=20 * np.finfo(dtype).eps * z.shape[1])
    fast = np.empty_like(z)
    getattr(comp, name)(z, fast)
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, out, **kernel_tol(dtype))


@PROPERTY
@given(logits(bound=1e4), st.sampled_from(["sigmoid", "relu"]))
def test_backward_steps_agree(case, name):
    dtype, z, grad = case
    forward = np.empty_like(z)
    getattr(ref, name)(z, forward)
    first = forward if name == "sigmoid" else z
    ref_, comp_ = np.empty_like(z), np.empty_like(z)
    getattr(ref, f"{name}_backward")(first, grad, ref_)
    getattr(comp, f"{name}_backward")(first, grad, comp_)
    assert np.isfinite(ref_).all() and np.isfinite(comp_).all()
    np.testing.assert_allclose(comp_, ref_, **kernel_tol(dtype))


# --- losses: finite, non-negative, equal in both backends, even when saturated ----------------

@PROPERTY
@given(logits(bound=1e30))
def test_softmax_cross_entropy_is_finite_and_agrees(case):
    dtype, z, y = case
    loss = ref.softmax_cross_entropy(z, y)
    assert np.isfinite(loss) and loss >= 0
    fast = comp.softmax_cross_entropy(z, y)
    assert np.isfinite(fast)
    # The Numba kernel computes the same ``(z - max) - log(total)`` per row, but
    # its fast-math ``reassoc`` flag lets LLVM evaluate it as ``z - (max + log(total))``,
    # which rounds to the precision of the largest logit: up to an ulp of max|z| per
    # row (e.g. 3e-5 for z = [512, 512] in float32). Allow exactly that much more.
    rounding = z.shape[0] * np.spacing(np.abs(z).max().astype(dtype))
    tol = kernel_tol(dtype)
    assert abs(fast - loss) <= tol["rtol"] * abs(loss) + tol["atol"] + 2 * rounding


@PROPERTY
@given(logits(bound=1e30, max_cols=1))
def test_sigmoid_cross_entropy_is_finite_and_agrees(case):
    dtype, z, _ = case
    y = (z <= 0).astype(dtype)  # the wrong side: the saturated, large-loss case
    loss = ref.sigmoid_cross_entropy(z, y)
    assert np.isfinite(loss) and loss >= 0
    fast = comp.sigmoid_cross_entropy(z, y)
    assert np.isfinite(fast)
    np.testing.assert_allclose(fast, loss, **kernel_tol(dtype))


@PROPERTY
@given(logits(bound=float("inf")), st.floats(1e-6, 1.0))
def test_output_delta_and_count_correct_agree(case, scale):
    dtype, z, y = case
    probs = np.empty_like(z)
    with np.errstate(over="ignore"):
        ref.softmax(z, probs)
    ref_, comp_ = np.empty_like(z), np.empty_like(z)
    ref.output_delta(probs, y, scale, ref_)
    comp.output_delta(probs, y, scale, comp_)
    assert np.isfinite(comp_).all() and (np.abs(ref_) <= scale * (1 + 1e-6)).all()
    np.testing.assert_allclose(comp_, ref_, **kernel_tol(dtype))
    assert comp.count_correct(probs, y) == ref.count_correct(probs, y)


@PROPERTY
@given(DTYPES.flatmap(lambda d: st.tuples(st.just(d), values(d, (7, 5), 1e3),
                                          values(d, (7, 5), 1e3))),
       st.floats(1e-4, 10.0))
def test_sgd_update_agrees(case, lr):
    """Within a few roundings of the operands.

    ``param - lr * grad`` may cancel (882 - 884.8 = -2.8): the compiled kernel
    fuses the multiply and subtract into one FMA (one rounding fewer), so the
    two differ by up to a rounding of ``lr * grad``, which is large relative
    to a small result but not to the operands.
    """
    dtype, param, grad = case
    ref_, comp_ = param.copy(), param.copy()
    ref.sgd_update(ref_, grad, lr)
    comp.sgd_update(comp_, grad, lr)
    scale = np.abs(param).astype(np.float64) + abs(lr) * np.abs(grad).astype(np.float64)
    bound = 4 * np.finfo(dtype).eps * scale + np.finfo(dtype).tiny
    assert (np.abs(comp_.astype(np.float64) - ref_) <= bound).all()


# --- a whole training call -------------------------------------------------------------------

@st.composite
def training_case(draw):
    dtype = draw(DTYPES)
    n_in = draw(st.integers(1, 24))
    hidden_sizes = draw(st.lists(st.integers(1, 8), min_size=0, max_size=2))
    n_out = draw(st.sampled_from([1, 2, 3, 10]))
    sizes = (n_in, *hidden_sizes, n_out)
    n = draw(st.integers(1, 24))
    batch = draw(st.integers(1, n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_in))
    x[rng.random((n, n_in)) < 0.6] = 0  # MNIST-like: mostly exact zeros
    scale = draw(st.sampled_from([0.1, 1.0, 30.0]))  # 30: saturated units
    weights = tuple((scale * rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
                    for a, b in zip(sizes[:-1], sizes[1:]))
    biases = tuple(rng.standard_normal(b).astype(dtype) for b in sizes[1:])
    if n_out == 1:
        y = rng.integers(0, 2, (n, 1)).astype(dtype)
    else:
        y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n)]
    order = rng.permutation(n).astype(np.int64)
    hidden = draw(st.sampled_from([SIGMOID, RELU]))
    lr = draw(st.sampled_from([0.01, 0.1, 0.5]))
    return sizes, x.astype(dtype), y, weights, biases, order, batch, lr, hidden, dtype


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(training_case())
def test_train_epoch_agrees_and_stays_finite(case):
    sizes, x, y, weights, biases, order, batch, lr, hidden, dtype = case
    output = SIGMOID if sizes[-1] == 1 else SOFTMAX
    results = {}
    for name, backend in (("ref", ref), ("comp", comp)):
        w = tuple(a.copy() for a in weights)
        b = tuple(a.copy() for a in biases)
        ws = allocate_workspace(sizes, batch, dtype)
        loss, correct, steps = backend.train_epoch(w, b, x, y, order, batch, lr, hidden,
                                                   output, ws)
        results[name] = (w, b, loss, correct, steps)
    ref_w, ref_b, ref_loss, ref_correct, ref_steps = results["ref"]
    comp_w, comp_b, comp_loss, comp_correct, comp_steps = results["comp"]
    expected_steps = -(-order.shape[0] // batch)
    assume(ref_steps == expected_steps)  # a diverged draw is test_parity's business
    assert comp_steps == ref_steps
    assert np.isfinite(ref_loss) and np.isfinite(comp_loss)
    for a, c in zip(ref_w + ref_b, comp_w + comp_b):
        assert np.isfinite(a).all() and np.isfinite(c).all()
        np.testing.assert_allclose(c, a, **epoch_tol(dtype))
    np.testing.assert_allclose(comp_loss, ref_loss, **epoch_tol(dtype))
    # Rounding may tip a prediction that is too close to call, and nothing else.
    too_close = near_ties(weights, biases, x, y, order, batch, lr, hidden, output)
    assert abs(comp_correct - ref_correct) <= too_close


def near_ties(weights, biases, x, y, order, batch, lr, hidden, output) -> int:
    """Rows whose prediction, as the reference makes it before each step, is a near tie.

    The reference is replayed one step at a time. A prediction is a near tie when
    the logits that decide it (the top two, or the one logit of a sigmoid output
    against 0) are closer than the rounding differences between the backends can
    be: 100 times the epoch tolerance times the sum of the magnitudes that make up those logits.
    """
    dtype = x.dtype
    tie = 100 * epoch_tol(dtype)["rtol"]
    weights, biases = tuple(a.copy() for a in weights), tuple(a.copy() for a in biases)
    sizes = (x.shape[1], *(w.shape[1] for w in weights))
    ws = allocate_workspace(sizes, batch, dtype)
    count = 0
    for start in range(0, order.shape[0], batch):
        rows = order[start:start + batch]
        zs = [np.empty((rows.shape[0], w.shape[1]), dtype) for w in weights]
        acts = [np.empty_like(z) for z in zs]
        ref.forward(weights, biases, x[rows], hidden, output, zs, acts)
        last_input = acts[-2] if len(acts) > 1 else x[rows]
        scale = np.abs(last_input.astype(np.float64)) @ np.abs(weights[-1]) + np.abs(biases[-1])
        logits = zs[-1].astype(np.float64)
        if logits.shape[1] == 1:
            count += int(np.sum(np.abs(logits[:, 0]) <= tie * scale[:, 0]))
        else:
            top = np.argsort(logits, axis=1)[:, -2:]
            pick = np.arange(len(rows))[:, None]
            margin = logits[pick, top[:, 1:]] - logits[pick, top[:, :1]]
            count += int(np.sum(margin <= tie * (scale[pick, top].sum(axis=1, keepdims=True))))
        ref.train_epoch(weights, biases, x, y, rows, batch, lr, hidden, output, ws)
    return count
