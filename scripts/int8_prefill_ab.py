"""Interleaved A/B of gemm_int8_rows (csrc/packed.c) in one process; not part of the app or the tests.

A: packed.c at --base (git), B: this tree's packed.c, C: this tree's bf16 gemm_packed on the same shape (the
bf16 prefill's product). One thread (OMP_NUM_THREADS=1 is set before torch loads), timed by thread CPU time,
so other programs on the machine change the figures little. Each line: medians in GFLOP per CPU second and
the median of adjacent-pair ratios B/A and C/B (same minutes). Also checks that A and B give the same bits.
With --folder: also a --tokens-token prefill through the int8 engine (Engine.load(quantize="int8")) on that model
folder, on --threads threads, with kernels.gemm_int8_rows calling A's or B's library in turn: prefill tok/s
(wall) and tok per process CPU second, medians and the median of adjacent-pair ratios B/A.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHAPES = ((12288, 4096), (4096, 4096), (11008, 4096), (4096, 11008))  # Baichuan2-7B: W_pack, o, gate/up, down


def build(base: str | None) -> ctypes.CDLL:
    """packed.c (from git `base`, or this tree) with common.h, as the kernel library compiles it."""
    from inference.cpu import kernels
    tmp = Path(tempfile.mkdtemp())
    (tmp / "common.h").write_text((kernels.SOURCE_DIR / "common.h").read_text())
    text = (kernels.SOURCE_DIR / "packed.c").read_text() if base is None else subprocess.run(
        ["git", "show", f"{base}:inference/cpu/csrc/packed.c"], cwd=ROOT, check=True, capture_output=True,
        text=True).stdout
    (tmp / "packed.c").write_text(text)
    out = tmp / "lib.so"
    subprocess.run(["cc", *kernels.CFLAGS, f"-I{tmp}", str(tmp / "packed.c"), "-o", str(out), "-lm"], check=True)
    lib = ctypes.CDLL(str(out))
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.gemm_int8_rows.argtypes = [p, p, p, p, i, i, i, ctypes.c_int]
    lib.gemm_packed.argtypes = [p, p, p, p, i, i, i, ctypes.c_int]
    return lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision of the A packed.c (default HEAD)")
    parser.add_argument("--rows", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", type=int, default=len(SHAPES), help="how many of the 7B shapes")
    parser.add_argument("--folder", help="a model folder for the engine prefill A/B (e.g. bench-results/models/...)")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1" if not args.folder else str(args.threads)
    import torch
    if args.folder:
        return engine_prefill(args, torch)
    old, new = build(args.base), build(None)
    for m in args.rows:
        for n, k in SHAPES[:args.shapes]:
            q = torch.randint(-127, 128, (n, k), dtype=torch.int8)
            w = torch.randn(n, k).to(torch.bfloat16)
            s = torch.rand(n) / 100
            x = torch.randn(m, k).to(torch.bfloat16)
            ya, yb, yc = (torch.empty(m, n, dtype=torch.bfloat16) for _ in range(3))
            calls = (lambda: old.gemm_int8_rows(q.data_ptr(), s.data_ptr(), x.data_ptr(), ya.data_ptr(), m, n, k, 0),
                     lambda: new.gemm_int8_rows(q.data_ptr(), s.data_ptr(), x.data_ptr(), yb.data_ptr(), m, n, k, 0),
                     lambda: new.gemm_packed(w.data_ptr(), None, x.data_ptr(), yc.data_ptr(), m, n, k, 0))
            times = [[], [], []]
            for _ in range(args.rounds):
                for fn, out in zip(calls, times):
                    t0 = time.thread_time()
                    assert fn() == 0
                    out.append(time.thread_time() - t0)
            same = torch.equal(ya.view(torch.int16), yb.view(torch.int16))
            work = 2.0 * m * n * k / 1e9
            med = [work / statistics.median(t) for t in times]
            ba = statistics.median(a / b for a, b in zip(times[0], times[1]))
            cb = statistics.median(b / c for b, c in zip(times[1], times[2]))
            print(f"M {m:4d} {n:5d}x{k:<5d} A int8 {med[0]:6.1f}  B int8 {med[1]:6.1f}  C bf16 {med[2]:6.1f} "
                  f"GFLOP/cpu-s   B/A {ba:.3f}  C/B {cb:.3f}  bitwise {'same' if same else 'DIFFERENT'}", flush=True)


def engine_prefill(args, torch) -> None:
    from inference.cpu import kernels
    from inference.engine import Engine
    libs = {"A": build(args.base), "B": build(None)}
    original = kernels.gemm_int8_rows
    engine = Engine.load(args.folder, device="cpu", dtype="bfloat16", quantize="int8")
    ids = torch.randint(3, engine.config.vocab_size, (args.tokens,), generator=torch.Generator().manual_seed(0))
    wall, cpu, logits = {"A": [], "B": []}, {"A": [], "B": []}, {}
    for r in range(args.rounds + 1):  # round 0 warms up
        for name, lib in libs.items():
            kernels.gemm_int8_rows = lambda _lib, *a, lib=lib: original(lib, *a)
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                logits[name] = engine.model(ids, 0)
            if r:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    kernels.gemm_int8_rows = original
    same = torch.equal(logits["A"].float().view(torch.int32), logits["B"].float().view(torch.int32))
    for label, t in (("wall", wall), ("cpu", cpu)):
        ratio = statistics.median(a / b for a, b in zip(t["A"], t["B"]))
        print(f"engine int8 prefill {args.tokens} tokens, {args.threads} threads: A "
              f"{args.tokens / statistics.median(t['A']):7.1f}  B {args.tokens / statistics.median(t['B']):7.1f} "
              f"tok per {label} s   B/A {ratio:.3f}  logits {'same' if same else 'DIFFERENT'}", flush=True)


if __name__ == "__main__":
    main()
