"""Interleaved A/B of the int4 kernels (csrc/int4.h, int4.c) in one process; not part of the app or the tests.

  gemv     one-row product, old (int4.h/int4.c at --base) vs this tree, 1 thread, thread CPU time: G weights/s
  prefill  several-row product: a bf16 copy dequantized per call + F.linear (the old prefill) vs gemm_int4,
           both on --threads threads: GFLOP per second of process CPU time (all threads), and per wall second
  ttft     a --position-token prompt through the int4 engine on a model folder: the old prefill (a dequantized
           bf16 copy per product + F.linear) as A, gemm_int4 as B, and the int8 engine as C: prefill tok/s (wall)
  decode   whole fused decode steps (engine, --quantize int4) on a model folder, with the kernel library built
           from this tree but int4.h/int4.c at --base (A) or from this tree (B): tok/s (wall) and tok per
           process CPU second

Each line gives medians over rounds and the median of adjacent-pair ratios (B over A, same minutes).
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


def build(base: str | None, names: tuple[str, ...]) -> ctypes.CDLL:
    """The .c files among `names` compiled from csrc, with int4.h/int4.c (and nothing else) taken from git `base`."""
    from inference.cpu import kernels
    tmp = Path(tempfile.mkdtemp())
    for name in kernels.SOURCE_FILES:
        text = (kernels.SOURCE_DIR / name).read_text()
        if base and name in ("int4.h", "int4.c"):
            text = subprocess.run(["git", "show", f"{base}:inference/cpu/csrc/{name}"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
            if name == "int4.h" and "INT4_XBYTES" not in text:  # before 15-bit activations: one int8 a column
                group = "#define INT4_GROUP 32\n"
                text = text.replace(group, group + "#define INT4_XBYTES INT4_GROUP\n")
        (tmp / name).write_text(text)
    out = tmp / "lib.so"
    subprocess.run(["cc", *kernels.CFLAGS, f"-I{tmp}", *(str(tmp / n) for n in names), "-o", str(out), "-lm"],
                   check=True)
    lib = ctypes.CDLL(str(out))
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.gemv_int4.argtypes = [p, p, p, p, p, i, i, i, ctypes.c_int]
    lib.dequantize_int4_bf16.argtypes = [p, p, p, p, i, i, i]
    if hasattr(lib, "decode_step"):
        lib.decode_step.argtypes = [p, i, i, p]
    return lib


def interleave(fa, fb, rounds: int, clock) -> tuple[list[float], list[float]]:
    a, b = [], []
    for _ in range(rounds):
        for fn, out in ((fa, a), (fb, b)):
            t0 = clock()
            fn()
            out.append(clock() - t0)
    return a, b


def report(label: str, a: list[float], b: list[float], work: float, unit: str) -> None:
    ratios = [x / y for x, y in zip(a, b)]  # time A / time B = speed B / speed A
    print(f"{label:34s} A {work / statistics.median(a) / 1e9:7.1f}  B {work / statistics.median(b) / 1e9:7.1f} "
          f"{unit}   B/A {statistics.median(ratios):.3f}", flush=True)


def gemv(args, torch) -> None:
    from inference.cpu.int4 import Int4Linear
    old, new = build(args.base, ("int4.c",)), build(None, ("int4.c",))
    for n, k in ((2048, 2048), (4096, 11008), (4096, 4096)):
        layer = Int4Linear.from_weight(torch.randn(n, k), new)
        x, y = torch.randn(k).to(torch.bfloat16), torch.empty(n)
        ptrs = (layer.qweight.data_ptr(), layer.scales.data_ptr(), layer.mins.data_ptr(), x.data_ptr(), y.data_ptr(),
                n, k, layer.padded_in, 1)
        reps = max(1, int(2e8 // (n * k)))
        runs = [lambda lib=lib: [lib.gemv_int4(*ptrs) for _ in range(reps)] for lib in (old, new)]
        a, b = interleave(*runs, args.rounds, time.thread_time)
        report(f"gemv_int4 {n}x{k} (1 thread)", a, b, n * k * reps, "G weights/s")


def prefill(args, torch) -> None:
    import torch.nn.functional as F

    from inference.cpu import kernels
    from inference.cpu.int4 import Int4Linear
    lib = kernels.load()
    torch.set_num_threads(args.threads)
    for n, k in SHAPES:
        layer = Int4Linear.from_weight(torch.randn(n, k), lib)
        for rows in (20, 512):
            x = torch.randn(rows, k).to(torch.bfloat16)
            old = lambda: F.linear(x, layer.dequantized(torch.bfloat16))
            new = lambda: kernels.gemm_int4(lib, layer, x, torch.empty(rows, n, dtype=torch.bfloat16))
            for clock, name in ((time.process_time, "CPU"), (time.perf_counter, "wall")):
                a, b = interleave(old, new, args.rounds, clock)
                report(f"{n}x{k} x {rows} rows ({name})", a, b, 2 * rows * n * k,
                       "GFLOP per CPU-s" if name == "CPU" else "GFLOP/s")


def decode(args, torch) -> None:
    from inference.engine import Engine
    torch.set_num_threads(args.threads)
    engine = Engine.load(args.folder, device="cpu", dtype="bfloat16", quantize="int4")
    from inference.cpu import kernels
    names = tuple(n for n in kernels.SOURCE_FILES if n.endswith(".c"))
    libs = build(args.base, names), build(None, names)
    model = engine.model
    model(torch.arange(3, 3 + args.position), 0)  # a prompt in the cache, so each step attends to it

    def steps(lib):
        model._lib = lib
        for i in range(args.steps):
            model.step(5 + i, args.position + i)
    logits = []
    for lib in libs:
        model._lib = lib
        logits.append(model.step(7, args.position))
    print("decode logits A == B:", bool(torch.equal(*logits)))
    wall: list[list[float]] = [[], []]
    cpu: list[list[float]] = [[], []]  # process CPU time (all threads): less sensitive to a busy machine
    for _ in range(args.rounds):
        for lib, w, c in zip(libs, wall, cpu):
            t0, c0 = time.perf_counter(), time.process_time()
            steps(lib)
            w.append(time.perf_counter() - t0)
            c.append(time.process_time() - c0)
    report(f"decode at {args.position} (wall)", *wall, args.steps * 1e9, "tok/s")
    report(f"decode at {args.position} (CPU)", *cpu, args.steps * 1e9, "tok per CPU-s")


def ttft(args, torch) -> None:
    import torch.nn.functional as F

    from inference.cpu.int4 import Int4Linear
    from inference.engine import Engine
    torch.set_num_threads(args.threads)
    int4, int8 = (Engine.load(args.folder, device="cpu", dtype="bfloat16", quantize=q) for q in ("int4", "int8"))
    prompt = torch.arange(3, 3 + args.position)
    new_forward = Int4Linear.forward

    def old_forward(self, x, out_dtype=None):  # the prefill before gemm_int4
        if x.numel() == x.shape[-1]:
            return new_forward(self, x, out_dtype)
        return F.linear(x.to(torch.bfloat16), self.dequantized(torch.bfloat16)).to(out_dtype or x.dtype)

    def prefill(engine, forward):
        Int4Linear.forward = forward
        with torch.no_grad():
            engine.model(prompt, 0)
    runs = (lambda: prefill(int4, old_forward), lambda: prefill(int4, new_forward), lambda: prefill(int8, new_forward))
    times: list[list[float]] = [[], [], []]
    for _ in range(args.rounds):
        for fn, out in zip(runs, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    Int4Linear.forward = new_forward
    report(f"int4 prefill {args.position} tokens, B/A", times[0], times[1], args.position * 1e9, "tok/s")
    report(f"int4 new (B) / int8 (C)", times[2], times[1], args.position * 1e9, "tok/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("gemv", "prefill", "ttft", "decode"))
    parser.add_argument("--base", default="HEAD", help="git revision of the old int4.h/int4.c (A)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", help="decode: a model folder (e.g. the bench's)")
    parser.add_argument("--position", type=int, default=512)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    # before any OpenMP runtime starts: gemv on one core, the others on --threads
    os.environ["OMP_NUM_THREADS"] = "1" if args.mode == "gemv" else str(args.threads)
    import torch
    {"gemv": gemv, "prefill": prefill, "ttft": ttft, "decode": decode}[args.mode](args, torch)


if __name__ == "__main__":
    main()
