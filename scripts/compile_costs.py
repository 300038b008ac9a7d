"""CPU seconds each compiled part of the engine costs, and where LLVM spends them.

Each part (``kernels/numba_compile.py``: a unit, a stand-in, a driver,
``prepare_inputs``) is compiled alone in a fresh process with an empty
``NUMBA_CACHE_DIR``, round after round; then all of them together in one
process, with LLVM's share split between the parts' own functions and the
helpers they call, timed around Numba's per-function optimisation, module
optimisation and code generation (helpers now get only the first: see
`kernels._jit._LinkedOnlyLibrary`). The first is what ``COMPILE_SECONDS`` records (less the
~0.25 s a process's first compile costs on top, a stand-in's price), the
second what a one-core cold start pays.

    python scripts/compile_costs.py                   # a default float32 training run's parts
    python scripts/compile_costs.py --rounds 3 first_layer_block forward_block
    python scripts/compile_costs.py --together-only --tree ../fastnn-old  # another checkout

Times are CPU seconds of a noisy shared machine: compare two trees by
running this for each, alternately, on the same minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def compile_here(parts, dtype, tree) -> dict:
    """Compile ``parts`` of ``tree``'s kernels here: CPU seconds, in all and in LLVM's stages."""
    sys.path.insert(0, str(tree))
    import numpy as np
    from numba.core import codegen

    from kernels import numba_compile

    part_functions = {function.py_func.__name__
                      for functions in numba_compile._PART_FUNCTIONS.values()
                      for function in functions}
    llvm = {}

    def timed(cls, method, stage):
        original = getattr(cls, method)

        def wrapper(library, *args, **kwargs):
            start = time.process_time()
            try:
                return original(library, *args, **kwargs)
            finally:
                kind = "parts" if library.name.split(".")[-1] in part_functions else "helpers"
                key = f"{stage} ({kind})"
                llvm[key] = llvm.get(key, 0.0) + time.process_time() - start
        setattr(cls, method, wrapper)

    timed(codegen.CPUCodeLibrary, "_optimize_functions", "per-function optimisation")
    timed(codegen.CPUCodeLibrary, "_optimize_final_module", "module optimisation")
    timed(codegen.JITCodeLibrary, "_finalize_specific", "machine code")
    start = time.process_time()
    numba_compile.compile_parts(np.dtype(dtype), parts)
    return {"cpu": time.process_time() - start, "llvm": llvm}


def compile_elsewhere(parts, dtype, tree) -> dict:
    """`compile_here` in a fresh process with an empty Numba cache."""
    with tempfile.TemporaryDirectory(prefix="fastnn-compile-costs-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        done = subprocess.run([sys.executable, __file__, "--child", "--dtype", dtype,
                               "--tree", str(tree), *parts],
                              env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def default_parts(tree) -> list:
    sys.path.insert(0, str(tree))
    from kernels import numba_compile
    from kernels.numba_engine import units_called
    try:
        return list(numba_compile.training_parts(units_called(64, None), None))
    except TypeError:  # a tree from before the narrow first layer's own units
        return list(numba_compile.training_parts(units_called(64, None)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*",
                        help="parts to time (default: those of a default training run)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of parts alone (default: 2)")
    parser.add_argument("--together-only", action="store_true",
                        help="skip the parts alone; only compile them all in one process")
    parser.add_argument("--tree", type=Path, default=REPO,
                        help="the checkout whose kernels to time (default: this one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tree = args.tree.resolve()
    parts = args.parts or default_parts(tree)
    if args.child:
        print(json.dumps(compile_here(parts, args.dtype, tree)))
        return 0

    if not args.together_only:
        alone = {part: [] for part in parts}
        for round_ in range(args.rounds):
            for part in parts:
                alone[part].append(compile_elsewhere([part], args.dtype, tree)["cpu"])
                print(f"round {round_ + 1}/{args.rounds} {part}: {alone[part][-1]:.2f} s",
                      file=sys.stderr)
        print(f"each part alone, fresh process and cache ({args.dtype}), CPU s min / median "
              f"of {args.rounds}:")
        for part, seconds in sorted(alone.items(), key=lambda item: -min(item[1])):
            print(f"  {part:28s} {min(seconds):6.2f} {statistics.median(seconds):6.2f}")

    together = compile_elsewhere(parts, args.dtype, tree)
    print(f"{tree}: all {len(parts)} parts in one process ({args.dtype}): {together['cpu']:.2f} s CPU, "
          f"of which LLVM {sum(together['llvm'].values()):.2f} s:")
    for stage, seconds in sorted(together["llvm"].items()):
        print(f"  {stage:42s} {seconds:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
