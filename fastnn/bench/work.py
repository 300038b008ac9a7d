"""How much arithmetic an epoch is, and what the timings make of it.

Two measures of work, both counting a multiply-add as 2 FLOPs:

* dense work: every product of every layer as a dense GEMM — per sample and
  layer k -> m, 2km forward, 2km for the weight gradient and 2km for the
  input gradient, which the first layer never needs (no implementation
  computes it). What numpy, PyTorch and JAX actually execute.
* useful work: the same, except that the first layer's products are counted
  only over nonzero inputs (about 19% of MNIST's pixels): a product with a
  zero pixel changes nothing. What numba, which skips zero inputs, executes.

Biases, activations, the loss and the update are left out (O(m), not O(km)).
"""

from __future__ import annotations


def _inner_layers_flops(sizes) -> int:
    """Per-sample FLOPs of every layer after the first: forward, weight and input gradient."""
    return sum(6 * k * m for k, m in zip(sizes[1:-1], sizes[2:]))


def dense_flops(sizes, n_samples: int) -> int:
    """Dense multiply-add FLOPs of one epoch of forward + backward passes.

    For 784-128-64-10 and 60,000 samples this is 27.3 GFLOP.
    """
    return (4 * sizes[0] * sizes[1] + _inner_layers_flops(sizes)) * int(n_samples)


def useful_flops(sizes, n_samples: int, nonzero_inputs: int) -> int:
    """`dense_flops` with the first layer's products only over the epoch's nonzero inputs.

    ``nonzero_inputs`` is the number of nonzero entries in the epoch's rows
    (``sizes[0] * n_samples`` for dense inputs, which gives `dense_flops`).
    """
    return 4 * sizes[1] * int(nonzero_inputs) + _inner_layers_flops(sizes) * int(n_samples)


def derive(records, peak_gflops) -> None:
    """Add GFLOP/s and fractions of the GEMM peak (dense and useful work) and numba ratios.

    Each record gets ``gflops`` / ``peak_fraction`` (dense work / min time),
    ``useful_gflops`` / ``useful_peak_fraction`` (useful work / min time),
    ``numba_ratio_min`` / ``numba_ratio_median`` (numba's time ÷ this one's:
    below 1, numba is faster) and their inverses ``numba_speedup_min`` /
    ``numba_speedup_median`` (this time ÷ numba's).
    """
    numba = {(rec["config"], tuple(rec["layers"]), rec["batch_size"]): rec
             for rec in records if rec["impl"] == "numba"}
    for rec in records:
        rec["gflops"] = rec["gflop_per_epoch"] / rec["min_s"]
        rec["gflops_median"] = rec["gflop_per_epoch"] / rec["median_s"]
        rec["useful_gflops"] = rec["useful_gflop_per_epoch"] / rec["min_s"]
        rec["peak_fraction"] = rec["gflops"] / peak_gflops if peak_gflops else None
        rec["useful_peak_fraction"] = (rec["useful_gflops"] / peak_gflops if peak_gflops
                                       else None)
        ref = numba.get((rec["config"], tuple(rec["layers"]), rec["batch_size"]))
        for stat in ("min", "median"):
            if ref is None:
                rec[f"numba_ratio_{stat}"] = rec[f"numba_speedup_{stat}"] = None
            else:
                rec[f"numba_ratio_{stat}"] = ref[f"{stat}_s"] / rec[f"{stat}_s"]
                rec[f"numba_speedup_{stat}"] = rec[f"{stat}_s"] / ref[f"{stat}_s"]
