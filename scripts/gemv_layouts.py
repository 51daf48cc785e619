"""Why decode reads below the bus in fast-bandwidth phases: the same weight bytes read by differently laid-out
matrix-vector loops (scripts/gemv_layouts.c), interleaved for a while, results split by the read rate seen
just before and after (docs/BENCHMARKS.md). Needs AVX-512-BF16 and VNNI; not part of the app or the tests."""
from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

from inference.cpu import hugepages, kernels as cpu_kernels


def build() -> ctypes.CDLL:
    out = Path(tempfile.mkdtemp()) / "gemv_layouts.so"
    subprocess.run(["cc", *cpu_kernels.CFLAGS, f"-I{cpu_kernels.SOURCE_DIR}", str(ROOT / "scripts/gemv_layouts.c"),
                    "-o", str(out), "-lm"], check=True)
    lib = ctypes.CDLL(str(out))
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.read_only.argtypes, lib.read_only.restype = [p, i], ctypes.c_float
    for name in ("rows_broadcast_x", "packed_bf16", "packed_int8"):
        getattr(lib, name).argtypes = [p, p, p, i, i]
    return lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--fast", type=float, default=48.0, help="GB/s above which a sample counts as fast")
    parser.add_argument("--slow", type=float, default=38.0, help="GB/s below which a sample counts as slow")
    args = parser.parse_args()
    torch.set_num_threads(2)
    kernels, probe = cpu_kernels.load(), build()
    rows, cols = 120 * 1024, 1024  # 240 MB of bf16, far beyond the caches
    w = hugepages.empty((rows, cols), torch.bfloat16)
    w.normal_()
    q = w.view(torch.int8).view(2 * rows, cols)  # the same bytes as int8 rows
    x = torch.randn(cols).to(torch.bfloat16)
    xq = torch.randint(-100, 100, (cols,), dtype=torch.int16)
    y, yi = torch.empty(2 * rows), torch.empty(2 * rows, dtype=torch.int32)
    scales = torch.ones(2 * rows)
    variants = {
        "read only": lambda: probe.read_only(w.data_ptr(), w.numel()),
        "row-major bf16 (the app's kernel)": lambda: cpu_kernels.gemv(kernels, w, x, y[:rows]),
        "row-major, broadcast activation": lambda: probe.rows_broadcast_x(w.data_ptr(), x.data_ptr(), y.data_ptr(),
                                                                          rows, cols),
        "16-row packed bf16": lambda: probe.packed_bf16(w.data_ptr(), x.data_ptr(), y.data_ptr(), rows, cols),
        "row-major int8 (the app's kernel)": lambda: cpu_kernels.gemv_int8(kernels, q, scales, x, y),
        "16-row packed int8": lambda: probe.packed_int8(q.data_ptr(), xq.data_ptr(), yi.data_ptr(), 2 * rows, cols),
    }
    size = w.numel() * 2

    def rate(fn) -> float:
        start = time.perf_counter()
        fn()
        return size / (time.perf_counter() - start) / 1e9

    buckets: dict[str, dict[str, list[float]]] = {"fast": {}, "slow": {}}
    end = time.time() + args.seconds
    while time.time() < end:
        before = rate(variants["read only"])
        row = {name: rate(fn) for name, fn in variants.items()}
        after = rate(variants["read only"])
        phase = "fast" if min(before, after) > args.fast else "slow" if max(before, after) < args.slow else None
        for name, value in row.items() if phase else ():
            buckets[phase].setdefault(name, []).append(value / max(before, after))
    for phase, results in buckets.items():
        count = len(next(iter(results.values()), []))
        print(f"{phase} phase ({count} samples), median % of the read rate around each sample:")
        for name, values in results.items():
            print(f"  {name:36s} {statistics.median(values) * 100:5.0f} %")


if __name__ == "__main__":
    main()
