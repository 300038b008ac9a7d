"""`fastnn info`: versions, CPU, threads, BLAS, threading layer, caches."""

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastnn import __version__, info, mnist
from fastnn.cli import main

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
flags\t\t: fpu sse sse2 pni ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512bw avx512vl

processor\t: 1
model name\t: second CPU, never read
flags\t\t: sse2
"""


def test_info_json_reports_this_installation(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    for name in mnist.FILES:
        (tmp_path / "mnist" / f"{name}.gz").write_bytes(b"")  # presence is what info checks
    env = {**os.environ, mnist.DATA_DIR_ENV: str(tmp_path / "mnist"),
           "NUMBA_CACHE_DIR": str(tmp_path / "jit")}
    result = subprocess.run([sys.executable, "-m", "fastnn", "info", "--json"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["versions"]["fastnn"] == __version__
    assert report["versions"]["numpy"] == np.__version__
    assert report["versions"]["numba"] == numba.__version__
    assert report["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["threads"]["cpu_count"] == os.cpu_count()
    assert report["threads"]["numba_max"] == numba.config.NUMBA_NUM_THREADS
    assert report["threads"]["blas"] >= 1 and report["blas"][0]["internal_api"]
    layer = report["numba_threading_layer"]
    assert layer["active"] in layer["available"] and layer["error"] is None
    assert report["jit_cache"] == {"dir": str(tmp_path / "jit"), "origin": "NUMBA_CACHE_DIR",
                                   "cached_kernels": 0, "epoch_loop_cached": False,
                                   "epoch_loop_dtypes": [], "narrow_epoch_loop_dtypes": [],
                                   "last_compiles": {}}
    assert report["data"]["mnist_dir"] == str(tmp_path / "mnist")
    assert report["data"]["cache_dir"] == os.environ[mnist.CACHE_DIR_ENV]
    if sys.platform == "linux" and "avx2" in open("/proc/cpuinfo").read():
        assert {"sse2", "avx", "avx2"} <= set(report["cpu"]["simd"])


def test_info_text_names_each_part(capsys, monkeypatch):
    monkeypatch.delenv(mnist.DATA_DIR_ENV, raising=False)  # the cache is empty: not found
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fastnn {__version__} on Python ")
    for key in ("libraries", "cpu", "simd", "threads", "blas", "numba layer", "jit cache",
                "compiled", "data cache", "full MNIST"):
        assert f"\n  {key:<12} " in out
    assert f"numpy {np.__version__}" in out and "not found locally" in out


def test_cpu_model_and_simd_come_from_proc_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    cpu = info.cpu(str(path))
    assert cpu["model"] == "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"
    assert cpu["simd"] == ["sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma",
                           "avx512f", "avx512bw", "avx512vl"]
    assert cpu["simd_source"] == "/proc/cpuinfo"


def test_without_proc_cpuinfo_llvm_names_the_features(tmp_path):
    cpu = info.cpu(str(tmp_path / "absent"))
    assert cpu["simd_source"] == "llvm" and cpu["llvm_name"]
    if cpu["machine"] in ("x86_64", "AMD64"):
        assert "sse2" in cpu["simd"]


def test_an_unloadable_threading_layer_is_reported_not_raised():
    code = ("import json; from fastnn import info; "
            "print(json.dumps(info.threading_layer()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300,
                            env={**os.environ, "NUMBA_THREADING_LAYER": "definitely-not"})
    assert result.returncode == 0, result.stderr
    layer = json.loads(result.stdout)
    assert layer["configured"] == "definitely-not"
    assert layer["active"] is None and layer["error"]


@pytest.mark.parametrize("wide, narrow, says", [
    ([], [], "nothing cached yet"),
    (["float32"], [], "training loop cached for this CPU (float32)"),
    ([], ["float32"], "training loop cached for this CPU (none; for a first layer of at most 16 "
                      "units: float32)"),
    (["float32", "float64"], ["float64"], "(float32, float64; for a first layer of at most 16 "
                                          "units: float64)"),
])
def test_info_says_which_first_layer_widths_the_cached_training_loop_serves(wide, narrow, says):
    from fastnn.cli.machine import compiled_line

    cache = {"epoch_loop_cached": bool(wide or narrow), "epoch_loop_dtypes": wide,
             "narrow_epoch_loop_dtypes": narrow, "last_compiles": {}}
    assert says in compiled_line(cache)
