"""Build fastnn/sample/mnist_sample.npz, the small MNIST subset bundled with fastnn.

    python scripts/make_sample.py --data-dir /path/to/mnist

Draws 10,000 training images from the official training split and 2,000 test
images from the official test split, stratified by class *proportionally*:
each digit gets its share of the split's class frequencies (largest-remainder
rounding, ties to the smaller digit), drawn without replacement by a seeded
NumPy Generator. Rows keep the official order (sorted by original index).

The npz holds train_images (n, 784) uint8, train_labels (n,) uint8, the same
for test, train_index / test_index (the rows' positions in the official
files) and ``meta``: a JSON string with the seed, method, per-class counts
and the sha256 of each decompressed source file. Only the official MNIST files
are accepted as sources.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastnn import idx, mnist  # noqa: E402

SEED = 1998  # the year MNIST was published
N_TRAIN = 10_000
N_TEST = 2_000
OUT = ROOT / "fastnn" / "sample" / "mnist_sample.npz"


def proportional_counts(labels: np.ndarray, total: int, n_classes: int = 10) -> np.ndarray:
    """Per-class sample sizes proportional to the class frequencies, summing to ``total``."""
    freq = np.bincount(labels, minlength=n_classes)
    quota = freq * total / freq.sum()
    counts = np.floor(quota).astype(np.int64)
    leftover = total - counts.sum()
    # Largest remainders get the leftover units; a stable sort breaks ties by digit.
    counts[np.argsort(-(quota - counts), kind="stable")[:leftover]] += 1
    return counts


def stratified_rows(labels: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: ``proportional_counts`` rows of each class, drawn without replacement."""
    counts = proportional_counts(labels, total)
    picks = [rng.choice(np.flatnonzero(labels == digit), size=count, replace=False)
             for digit, count in enumerate(counts)]
    return np.sort(np.concatenate(picks))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get(mnist.DATA_DIR_ENV),
                        help="folder with the four official MNIST files "
                             f"(default: ${mnist.DATA_DIR_ENV})")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    folder = mnist.find_local(args.data_dir)
    if folder is None:
        parser.error("no full MNIST found: pass --data-dir")
    sources = {}
    for name in mnist.FILES:
        path = mnist._locate(folder, name)
        digest = hashlib.sha256(idx.read_bytes(path)).hexdigest()
        if digest != mnist.SHA256[name]:
            parser.error(f"{path} is not the official {name} (sha256 {digest})")
        sources[name] = digest
    data = mnist.load("mnist", folder, download=False)

    rng = np.random.default_rng(args.seed)
    train_index = stratified_rows(data.train_labels, N_TRAIN, rng)
    test_index = stratified_rows(data.test_labels, N_TEST, rng)
    meta = {
        "made_by": "scripts/make_sample.py",
        "seed": args.seed,
        "method": "stratified by class, proportional to class frequencies (largest remainder), "
                  "drawn without replacement with numpy.random.default_rng(seed): train split "
                  "first, then test; rows in official order",
        "n_train": N_TRAIN,
        "n_test": N_TEST,
        "train_counts": proportional_counts(data.train_labels, N_TRAIN).tolist(),
        "test_counts": proportional_counts(data.test_labels, N_TEST).tolist(),
        "source_sha256": sources,
        "license": "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "wb") as f:  # a file object keeps numpy from appending another ".npz"
        np.savez_compressed(
            f,
            train_images=data.train_images[train_index],
            train_labels=data.train_labels[train_index],
            test_images=data.test_images[test_index],
            test_labels=data.test_labels[test_index],
            train_index=train_index.astype(np.uint16),
            test_index=test_index.astype(np.uint16),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): "
          f"{N_TRAIN:,} train {meta['train_counts']}, {N_TEST:,} test {meta['test_counts']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
