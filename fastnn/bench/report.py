"""The result of a run as text (and as the records a plot draws)."""

from __future__ import annotations

from .machine import blas_summary


def plot_records(result: dict) -> tuple:
    """``(records, title)`` for `fastnn.plots.plot_epoch_times`: the batch-size sweep.

    The plot has one axis of batch sizes, so it shows the network timed at the
    most batch sizes (784-128-64-10 by default); ``batch_size`` is ``"full"``
    for a full-batch record.
    """
    counts = {}
    for rec in result["records"]:
        counts[tuple(rec["layers"])] = counts.get(tuple(rec["layers"]), 0) + 1
    if not counts:
        return [], ""
    network = max(counts, key=counts.get)
    records = [{"impl": rec["impl"], "median_s": rec["median_s"],
                "batch_size": "full" if rec["full_batch"] else rec["batch_size"]}
               for rec in result["records"] if tuple(rec["layers"]) == network]
    data = "full MNIST" if result["dataset"] == "mnist" else "bundled sample"
    title = (f"{'-'.join(map(str, network))} epoch time ({data}, {result['n_train']:,} rows, "
             f"{result['threads']} thread(s))")
    return records, title


# --- text -------------------------------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.2f}"
def _seconds(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.2f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _header_lines(result: dict) -> list:
    """Data, machine, versions, BLAS, GEMM peak, warm-up, load and notes."""
    env = result["environment"]
    lines = []
    train = f"{result['n_train']:,}"
    if result.get("n_train_available", result["n_train"]) > result["n_train"]:
        train = f"the first {train} of {result['n_train_available']:,}"
    if result["dataset"] == "mnist":
        data = f"full MNIST ({train} training / {result['n_test']:,} test images)"
    else:
        data = (f"the bundled SAMPLE, not full MNIST ({train} training / "
                f"{result['n_test']:,} test images): times are not comparable with full-MNIST epochs")
    if result["quick"]:
        data += "; --quick"
    lines.append(f"data: {data}")
    versions = env["versions"]
    cpu = env["cpu"]
    simd = [f for f in cpu["simd"] if f in ("avx2", "fma", "avx512f", "avx512_bf16")]
    lines.append(f"machine: {cpu['model']} ({cpu['llvm_name']}; {', '.join(simd) or 'no AVX'}), "
                 f"{env['thread_counts']['cpu_count']} logical CPUs; {result['threads']} "
                 f"thread(s) for every implementation")
    torch, jax = env.get("torch"), env.get("jax")
    lines.append(f"versions: fastnn {versions['fastnn']}, Python {versions['python']}, NumPy "
                 f"{versions['numpy']}, Numba {versions['numba']} (threading layer "
                 f"{env['numba_threading_layer']})"
                 + (f", PyTorch {torch['version']} ({torch.get('cpu_capability', '?')})"
                    if torch else "")
                 + (f", JAX {jax['version']} (jaxlib {jax['jaxlib']}, {jax['threads'] or '?'} XLA "
                    "CPU thread(s))" if jax else ""))
    lines.append(blas_summary(env))
    gemm = result["gemm"]
    each = ", ".join(f"{r['gflops']:.1f}" for r in gemm["runs"])
    lines.append(f"GEMM peak: {gemm['gflops']:.1f} GFLOP/s, the best of {gemm['matmuls']} "
                 f"{gemm['size']}^3 float32 np.matmul on {gemm['threads']} thread(s) "
                 f"(best at the start and at the end of the run: {each}; median of all "
                 f"{gemm['gflops_median']:.1f})")
    warm = ", ".join(
        f"{impl} {w['seconds']:.2f}s ({w['what']}"
        + (f": {w['compiled']} compiled, {w['loaded_from_cache']} from cache" if "compiled" in w
           else "") + ")"
        for impl, w in result["warmup"].items())
    lines.append(f"warm-up, not in the timings: {warm}")
    prepare = result.get("prepare")
    if prepare:
        each = ", ".join(
            f"{impl} {p['seconds']:.3f}s ("
            + ("input unchanged" if p["nonzeros"] is None
               else f"{p['nonzeros']:,} nonzero inputs found") + ")"
            for impl, p in prepare.items())
        lines.append(f"prepare_inputs, once per run, not in the timings: {each}")
    load = result.get("load_average") or {}
    if load.get("start") is not None and load.get("end") is not None:
        busy = max(load["start"], load["end"]) > 0.5 * env["thread_counts"]["cpu_count"]
        lines.append(f"load average (1 min): {load['start']:.2f} at the start, {load['end']:.2f} "
                     f"at the end" + ("; other processes were competing for the cores, so "
                                      "threaded timings may be inflated" if busy else ""))
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return lines


def _table_lines(result: dict) -> list:
    """One row per record, grouped by configuration, and the footnotes."""
    records = result["records"]
    lines = ["", f"seconds per epoch over {result['repeat']} round(s); numba/t = numba's time / "
                 "this row's time (from min, from median): below 1 numba is faster, e.g. 0.25 = "
                 "numba takes a quarter of the time; GFLOP/s = work / min time, and its % of the "
                 "GEMM peak, on dense work (every product, as numpy, torch and jax compute) and "
                 "on useful work (first-layer products over nonzero inputs only, as numba "
                 "computes)"]
    header = (f"{'cfg':<3} {'network':<16} {'hidden':<7} {'batch':>5} {'impl':<5} "
              f"{'min s':>9} {'median s':>9} {'numba/t':>7} {'numba/t':>7} "
              f"{'dense':>7} {'dense':>6} {'useful':>7} {'useful':>6}")
    units = (f"{'':<3} {'':<16} {'':<7} {'':>5} {'':<5} {'':>9} {'':>9} {'min':>7} {'med':>7} "
             f"{'GFLOP/s':>7} {'%peak':>6} {'GFLOP/s':>7} {'%peak':>6}")
    lines += [header, units, "-" * len(header)]
    previous = None
    for rec in records:
        key = (rec.get("config"), tuple(rec["layers"]), rec["batch_size"])
        if previous is not None and key != previous:
            lines.append("")
        previous = key
        batch = "full" if rec["full_batch"] else str(rec["batch_size"])
        mark = "*" if rec["extrapolated"] else " "
        lines.append(
            f"{rec.get('config') or '':<3} {'-'.join(map(str, rec['layers'])):<16} "
            f"{rec['hidden']:<7} {batch:>5} {rec['impl']:<5} "
            f"{_seconds(rec['min_s']) + mark:>9} {_seconds(rec['median_s']) + mark:>9} "
            f"{_ratio(rec['numba_ratio_min']):>7} {_ratio(rec['numba_ratio_median']):>7} "
            f"{rec['gflops']:>7.1f} {_percent(rec['peak_fraction']):>6} "
            f"{rec['useful_gflops']:>7.1f} {_percent(rec['useful_peak_fraction']):>6}")
    extrapolated = [r for r in records if r["extrapolated"]]
    if extrapolated:
        r = extrapolated[0]
        lines.append(f"* extrapolated: timed on the first {r['timed_samples']:,} samples of "
                     f"the epoch's order and scaled to {r['n_samples']:,} "
                     "(per-sample cost is constant at batch 1)")
    binary = [r for r in records if r["layers"][-1] == 1]
    if binary:
        digits = binary[0]["digits"]
        lines.append(f"784-...-1 networks: digits {' vs '.join(map(str, digits or (0, 1)))} "
                     f"only ({binary[0]['n_samples']:,} rows), one sigmoid output, binary "
                     "cross-entropy")
    compiled = [r for r in records if r.get("compile_s") is not None]
    if compiled:
        each = ", ".join(f"{r['config'] or '-'.join(map(str, r['layers']))} "
                         f"{r['compile_s']:.2f}s" for r in compiled)
        lines.append(f"jax compile of each timed epoch program, not in the timings: {each}")
    if any((r["peak_fraction"] or 0) > 1 for r in records):
        lines.append("some rows exceed 100% of the GEMM peak: other processes slowed the peak's "
                     "matmuls more than those epochs; trust the ratios, not the % peak")
    if records:
        useful = records[0]["nonzero_input_fraction"]
        lines.append(f"useful work counts the first layer over the {useful:.1%} of input "
                     "pixels that are nonzero; the input gradient of the first layer is in "
                     "neither (no implementation computes it)")
    return lines


def format_report(result: dict) -> str:
    """The result as text: header, one table row per record, footnotes, accuracy."""
    lines = _header_lines(result)
    if result["records"]:
        lines += _table_lines(result)
    accuracy = result["accuracy"]
    if accuracy:
        lines.append("")
        scores = "  ".join(f"{impl} {acc:.2%}" for impl, acc in accuracy["test_accuracy"].items())
        verdict = "agree" if accuracy["agree"] else "DISAGREE"
        lines.append(
            f"accuracy check ({'-'.join(map(str, accuracy['layers']))} {accuracy['hidden']}, "
            f"batch {accuracy['batch_size']}, lr {accuracy['lr']:g}, 1 epoch from the same weights "
            f"and order, {accuracy['n_test']:,} test images): {scores}; spread "
            f"{accuracy['spread'] * 100:.2f} points (tolerance {accuracy['tolerance'] * 100:.2f}): "
            f"{verdict}")
    return "\n".join(lines)
