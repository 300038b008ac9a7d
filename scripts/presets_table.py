"""Train every preset (and the default) and print the README's presets table.

    FASTNN_DATA_DIR=../shared/mnist python scripts/presets_table.py --backend numba

Each configuration runs as ``fastnn train`` in its own process with
``--metrics-json``; the table shows the test accuracy and the training time
read back from that JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fastnn.presets import PRESETS


def run(preset: str | None, backend: str, workdir: Path, extra: list) -> dict:
    metrics = workdir / f"{preset or 'default'}.json"
    command = [sys.executable, "-m", "fastnn", "train", "--quiet", "--backend", backend,
               "--data", "mnist", "--metrics-json", str(metrics), *extra]
    if preset:
        command += ["--preset", preset]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(metrics.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numba", choices=("numpy", "numba"))
    parser.add_argument("--only", nargs="*", help="preset names (use 'default' for no preset)")
    args, extra = parser.parse_known_args()
    names = args.only or [*PRESETS, "default"]
    print("| preset | test accuracy | train time | compile |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            report = run(None if name == "default" else name, args.backend, Path(tmp), extra)
            print(f"| `{name}` | {report['test_accuracy']:.2%} | {report['train_seconds']:.1f} s | "
                  f"{report['compile_seconds']:.1f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
