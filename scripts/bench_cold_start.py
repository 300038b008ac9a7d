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
imports, data, kernels).

Shared machines change speed by tens of percent from minute to minute, so
the runs go round by round (round i runs every command once, cold, then
later warm), and a pure-Python loop is timed before and after. ``--tree``
(repeatable) times the fastnn of other checkouts too, alternating with this
one run by run: the way to compare two versions on the same minutes.

    python scripts/bench_cold_start.py --runs 3
    python scripts/bench_cold_start.py --runs 1 --only train --only predict --json cold.json
    python scripts/bench_cold_start.py --runs 3 --only train --tree ../fastnn-old
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


def tree_revision(tree: Path) -> str:
    """The git commit of a tree whose fastnn runs (``unknown`` outside a checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _environment(cache: Path, tree: Path = REPO) -> dict:
    """This environment with ``cache`` as the Numba cache and ``tree`` first on the path."""
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=path)


class Runner:
    """Runs ``python -m fastnn`` of one tree in a scratch directory with a chosen Numba cache."""

    def __init__(self, scratch: Path, python: str, tree: Path = REPO):
        self.scratch = scratch
        self.python = python
        self.tree = tree
        self.model = scratch / "model.npz"
        self.digits = scratch / "digits.npy"

    def fastnn(self, args, cache: Path, metrics: Path | None = None) -> float:
        """Seconds of wall time of one ``fastnn ARGS``; raises if it fails."""
        fill = {"model": str(self.model), "digits": str(self.digits),
                "metrics": str(metrics or self.scratch / "unused.json")}
        argv = [self.python, "-m", "fastnn", *(a.format(**fill) for a in args)]
        env = _environment(cache, self.tree)
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
                       env=_environment(cache, self.tree))
        shutil.rmtree(cache)


def measure(runners, names, runs: int, progress) -> list:
    """Cold and warm wall times of each command of each runner, and warm start-up metrics.

    Round by round: round i runs every command once, each runner in turn
    (in reverse order every other round), cold first; then the warm rounds,
    each runner reading a cache an untimed run of the same command filled.
    """
    results = {(runner.tree, name): {"tree": str(runner.tree), "command": name,
                                      "args": COMMANDS[name], "cold_s": [], "warm_s": [],
                                      "warm_compile_s": [], "warm_startup_s": []}
               for runner in runners for name in names}

    def in_turn(i):
        return runners if i % 2 == 0 else runners[::-1]

    for i in range(runs):
        for name in names:
            for runner in in_turn(i):
                cache = runner.fresh_cache()
                seconds = runner.fastnn(COMMANDS[name], cache)
                shutil.rmtree(cache)
                results[runner.tree, name]["cold_s"].append(seconds)
                progress(f"{runner.tree.name} {name}: cold run {i + 1}/{runs} {seconds:.2f}s")
    caches = {}
    for runner in runners:
        for name in names:
            caches[runner.tree, name] = runner.fresh_cache()
            runner.fastnn(COMMANDS[name], caches[runner.tree, name])  # fills it, untimed
    for i in range(runs):
        for name in names:
            for runner in in_turn(i):
                record = results[runner.tree, name]
                metrics = runner.scratch / f"{name}-{i}.json"
                record["warm_s"].append(runner.fastnn(COMMANDS[name], caches[runner.tree, name],
                                                      metrics))
                if metrics.exists():
                    report = json.loads(metrics.read_text())
                    record["warm_compile_s"].append(report["compile_seconds"])
                    record["warm_startup_s"].append(report["startup_seconds"])
                    metrics.unlink()
                progress(f"{runner.tree.name} {name}: warm run {i + 1}/{runs} "
                         f"{record['warm_s'][-1]:.2f}s")
    for cache in caches.values():
        shutil.rmtree(cache)
    return list(results.values())


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
    trees = list(dict.fromkeys(r["tree"] for r in results))
    for tree in trees:
        if len(trees) > 1:
            lines.append(f"tree {tree} ({tree_revision(Path(tree))})")
        for r in (r for r in results if r["tree"] == tree):
            startup = r["warm_startup_s"]
            outside_text = (f"{min(startup):>9.2f} {statistics.median(startup):>9.2f}"
                            if startup else f"{'-':>9} {'-':>9}")
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
    parser.add_argument("--tree", action="append", type=Path, default=[], metavar="DIR",
                        help="also time the fastnn of this checkout, alternating with this "
                             "one (repeatable)")
    args = parser.parse_args(argv)
    for tree in args.tree:
        if not (tree / "fastnn" / "__init__.py").is_file():
            parser.error(f"--tree {tree}: no fastnn package there")
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
              f"{tree_revision(REPO)}); Python {platform.python_version()}")

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    probe_before = speed_probe()
    with tempfile.TemporaryDirectory(prefix="fastnn-cold-") as scratch:
        trees = dict.fromkeys([REPO, *(tree.resolve() for tree in args.tree)])
        runners = [Runner(Path(scratch), args.python, tree) for tree in trees]
        progress("saving a model to evaluate and predict with ...")
        runners[0].make_inputs()
        results = measure(runners, names, args.runs, progress)
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
