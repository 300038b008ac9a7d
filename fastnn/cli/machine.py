"""``fastnn info`` and ``fastnn compile``: what fastnn runs on, and compiling ahead."""

from __future__ import annotations

import argparse
import json

import kernels

from .. import info
from .options import note


def add_parsers(commands) -> None:
    about = commands.add_parser(
        "info", help="show versions, CPU features, threads, BLAS and caches",
        description="Show what fastnn runs on: versions, CPU model and SIMD features, thread "
                    "counts, the BLAS library, Numba's threading layer, the JIT and data "
                    "caches, and whether full MNIST is available locally.")
    about.add_argument("--json", action="store_true", help="print JSON instead of text")
    about.set_defaults(handler=cmd_info)

    ahead = commands.add_parser(
        "compile", help="compile every Numba kernel now (for images and shared installs)",
        description="Compile, or load from Numba's cache, every kernel of the numba backend "
                    "for float32 and float64, one thread and threaded, so that no later run "
                    "on this machine waits for the compiler. Training compiles only what it "
                    "uses, on first use; run this when building a container image, before "
                    "timing, or on a shared install whose users should not each pay the "
                    "first-run compile. The cache is tied to this CPU and Numba version.")
    ahead.set_defaults(handler=cmd_compile)



def info_lines(report: dict) -> list[tuple[str, str | None]]:
    """(label, value) pairs for `cmd_info`; the first is the heading (value None)."""
    versions = dict(report["versions"])
    head = f"fastnn {versions.pop('fastnn')} on Python {versions.pop('python')}"
    optional = {"matplotlib": "plots", "pillow": "images", "optuna": "sweep"}
    extras = []
    for name, extra in optional.items():
        version = versions.pop(name, None)
        extras.append(f"{name} {version}" if version
                      else f'{name} missing (pip install "fastnn[{extra}]")')
    cpu, threads, layer = report["cpu"], report["threads"], report["numba_threading_layer"]
    blas = "; ".join(f"{pool['internal_api']} {pool['version']} ({pool['threading_layer']}, "
                     f"{pool['architecture']}) {pool['filepath']}" for pool in report["blas"])
    active = layer["active"] or f"none: {layer['error']}"
    cache, data = report["jit_cache"], report["data"]
    return [
        (head, None),
        ("platform", report["platform"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
        ("optional", ", ".join(extras)),
        ("cpu", f"{cpu['model'] or 'unknown'} ({cpu['machine']}; LLVM name "
                f"{cpu['llvm_name'] or 'unknown'}; Numba compiles for {cpu['numba_target']})"),
        ("simd", " ".join(cpu["simd"]) or "none reported"),
        ("threads", f"{threads['cpu_count']} logical CPUs, {threads['usable_cpus']} usable; "
                    f"Numba {threads['numba_current']} (at most {threads['numba_max']}); "
                    f"BLAS {threads['blas']}"),
        ("blas", blas or "none loaded"),
        ("numba layer", f"{active} (configured: {layer['configured']}; available: "
                        f"{', '.join(layer['available']) or 'none'})"),
        ("jit cache", f"{cache['dir']} ({cache['origin']}; {cache['cached_kernels']} cached "
                      "kernel indexes)"),
        ("compiled", compiled_line(cache)),
        ("backend", f"{report['default_backend']} by default"),
        ("data cache", data["cache_dir"]),
        ("full MNIST", data["mnist_dir"] or "not found locally (train downloads it into the "
                                            "cache; --data sample always works)"),
    ]


def compiled_line(cache: dict) -> str:
    """Whether the training loop is in the JIT cache, and how long compiling took here."""
    wide, narrow = cache["epoch_loop_dtypes"], cache["narrow_epoch_loop_dtypes"]
    if wide or narrow:
        state = f"training loop cached for this CPU ({', '.join(wide) or 'none'}"
        if narrow:
            state += f"; for a first layer of at most 16 units: {', '.join(narrow)}"
        state += ")"
    else:
        state = "nothing cached yet: the first numba run compiles (or run `fastnn compile`)"
    times = ", ".join(f"{dtype} {noted['seconds']:.0f}s" for dtype, noted
                      in sorted(cache["last_compiles"].items()))
    return f"{state}; last compile: {times}" if times else state


def cmd_info(args: argparse.Namespace) -> int:
    report = info.gather()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in info_lines(report):
        print(key if value is None else f"  {key:<12} {value}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    kern = kernels.get_backend("numba")
    note(args, "compiling every Numba kernel for float32 and float64 (about a minute on 2 "
                "cores when nothing is cached) ...")
    done = kern.compile_all()
    print(f"{done.compiled} kernel signatures compiled, {done.loaded} loaded from the cache, "
          f"in {done.seconds:.1f}s")
    return 0
