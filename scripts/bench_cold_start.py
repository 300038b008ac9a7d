"""Wall time of fastnn's commands from a cold and from a warm Numba cache.

Runs the CLI as subprocesses (so it times whatever engine is in the tree):
``fastnn train`` with default settings on the bundled sample, and again with
``--dtype float64``, ``--threads 1``, ``--batch-size 1`` and ``--batch-size
full``, then ``fastnn evaluate`` and ``fastnn predict`` on a model saved
beforehand. Cold: every run gets a fresh, empty ``NUMBA_CACHE_DIR``. Warm:
every run reads one cache that an untimed run of the same command filled.
For warm training runs it also reports what ``--metrics-json`` exposes about
start-up: ``compile_seconds`` (compiling or loading the kernels) and
``startup_seconds`` (from the process's start to its first epoch: interpreter,
imports, data, kernels). A pure-Python loop is timed before and after, since
shared machines change speed by tens of percent from minute to minute.

    python scripts/bench_cold_start.py --runs 3
    python scripts/bench_cold_start.py --runs 1 --only train --only predict --json cold.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: name -> fastnn arguments; {model}, {digits} and {metrics} are filled in per run.
COMMANDS = {
    "train": ["train", "--data", "sample", "-q", "--metrics-json", "{metrics}"],
    "train-float64": ["train", "--data", "sample", "-q", "--dtype", "float64",
                      "--metrics-json", "{metrics}"],
    "train-threads1": ["train", "--data", "sample", "-q", "--threads", "1",
                       "--metrics-json", "{metrics}"],
    "train-batch1": ["train", "--data", "sample", "-q", "--batch-size", "1",
                     "--metrics-json", "{metrics}"],
    "train-full": ["train", "--data", "sample", "-q", "--batch-size", "full",
                   "--metrics-json", "{metrics}"],
    # Without --backend, evaluate and predict use numpy until numba's forward pass
    # is compiled on the machine; the -numba runs ask for numba, which compiles it.
    "evaluate": ["evaluate", "{model}", "--data", "sample"],
    "predict": ["predict", "{model}", "{digits}"],
    "evaluate-numba": ["evaluate", "{model}", "--data", "sample", "--backend", "numba"],
    "predict-numba": ["predict", "{model}", "{digits}", "--backend", "numba"],
}


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) and its logical CPU count."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def tree_revision() -> str:
    """The git commit of the tree whose fastnn runs (``unknown`` outside a checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _environment(cache: Path) -> dict:
    """This environment with ``cache`` as the Numba cache and this tree first on the path."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=path)


class Runner:
    """Runs ``python -m fastnn`` in a scratch directory with a chosen Numba cache."""

    def __init__(self, scratch: Path, python: str):
        self.scratch = scratch
        self.python = python
        self.model = scratch / "model.npz"
        self.digits = scratch / "digits.npy"

    def fastnn(self, args, cache: Path, metrics: Path | None = None) -> float:
        """Seconds of wall time of one ``fastnn ARGS``; raises if it fails."""
        fill = {"model": str(self.model), "digits": str(self.digits),
                "metrics": str(metrics or self.scratch / "unused.json")}
        argv = [self.python, "-m", "fastnn", *(a.format(**fill) for a in args)]
        env = _environment(cache)
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=self.scratch, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
        return seconds

    def fresh_cache(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="numba-cache-", dir=self.scratch))

    def make_inputs(self) -> None:
        """A saved model (one epoch on the sample) and a .npy of eight sample digits."""
        cache = self.fresh_cache()
        # The numpy backend: a model file is the same from either, and nothing compiles.
        self.fastnn(["train", "--data", "sample", "-q", "--epochs", "1", "--backend", "numpy",
                     "--save", str(self.model)], cache)
        code = ("import sys, numpy as np; from fastnn import mnist; "
                "np.save(sys.argv[1], mnist.load_sample().test_images[:8])")
        subprocess.run([self.python, "-c", code, str(self.digits)], check=True,
                       env=_environment(cache))
        shutil.rmtree(cache)


def measure(runner: Runner, name: str, runs: int, progress) -> dict:
    """Cold and warm wall times of one command, and the warm runs' start-up metrics."""
    args = COMMANDS[name]
    cold = []
    for i in range(runs):
        cache = runner.fresh_cache()
        cold.append(runner.fastnn(args, cache))
        shutil.rmtree(cache)
        progress(f"{name}: cold run {i + 1}/{runs} {cold[-1]:.2f}s")
    cache = runner.fresh_cache()
    runner.fastnn(args, cache)  # fills the cache, untimed
    warm, kernels, startup = [], [], []
    for i in range(runs):
        metrics = runner.scratch / f"{name}-{i}.json"
        warm.append(runner.fastnn(args, cache, metrics))
        if metrics.exists():
            report = json.loads(metrics.read_text())
            kernels.append(report["compile_seconds"])
            startup.append(report["startup_seconds"])
        progress(f"{name}: warm run {i + 1}/{runs} {warm[-1]:.2f}s")
    shutil.rmtree(cache)
    return {"command": name, "args": args, "cold_s": cold, "warm_s": warm,
            "warm_compile_s": kernels, "warm_startup_s": startup}


def _stats(values) -> str:
    if not values:
        return f"{'-':>8} {'-':>8}"
    return f"{min(values):>8.2f} {statistics.median(values):>8.2f}"


def format_table(results, runs: int, header: str) -> str:
    lines = [header,
             f"seconds of wall time, min and median of {runs} run(s); cold = a fresh, empty "
             "NUMBA_CACHE_DIR per run, warm = a cache filled by an earlier run of the same "
             "command; warm kernels = compile_seconds from --metrics-json (compiling or "
             "loading kernels), warm start-up = startup_seconds (process start to first "
             "epoch)",
             "",
             f"{'command':<15} {'cold min':>8} {'cold med':>8} {'warm min':>8} {'warm med':>8}"
             f"  {'warm kernels':>17}  {'warm start-up':>19}",
             f"{'':<15} {'':>8} {'':>8} {'':>8} {'':>8}  {'min':>8} {'med':>8}  "
             f"{'min':>9} {'med':>9}"]
    for r in results:
        startup = r["warm_startup_s"]
        outside_text = (f"{min(startup):>9.2f} {statistics.median(startup):>9.2f}" if startup
                        else f"{'-':>9} {'-':>9}")
        lines.append(f"{r['command']:<15} {_stats(r['cold_s'])} {_stats(r['warm_s'])}  "
                     f"{_stats(r['warm_compile_s'])}  {outside_text}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, metavar="N",
                        help="cold and warm runs per command (default: 3)")
    parser.add_argument("--only", action="append", choices=tuple(COMMANDS), default=None,
                        help="time only this command (repeatable; default: all)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter whose fastnn runs (default: this one)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def speed_probe() -> float:
    """Seconds of a fixed pure-Python loop (10 million additions): the machine's speed now."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def main(argv=None) -> int:
    args = parse_args(argv)
    names = list(dict.fromkeys(args.only)) if args.only else list(COMMANDS)
    version = subprocess.run([args.python, "-m", "fastnn", "--version"], capture_output=True,
                             text=True, env=_environment(Path(tempfile.gettempdir()))
                             ).stdout.strip()
    header = (f"cold start of the fastnn CLI; CPU {cpu_name()}; {version} (tree "
              f"{tree_revision()}); Python {platform.python_version()}")

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    probe_before = speed_probe()
    with tempfile.TemporaryDirectory(prefix="fastnn-cold-") as scratch:
        runner = Runner(Path(scratch), args.python)
        progress("saving a model to evaluate and predict with ...")
        runner.make_inputs()
        results = [measure(runner, name, args.runs, progress) for name in names]
    probe_after = speed_probe()
    header += (f"\nspeed probe (a 10-million-step Python loop; lower is faster): "
               f"{probe_before:.2f}s before, {probe_after:.2f}s after")
    print(format_table(results, args.runs, header))
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "runs": args.runs,
                                               "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
