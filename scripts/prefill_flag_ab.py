"""Interleaved A/B in one process: prefill with kernels.BATCH_INVARIANT on vs off (bench shape, bf16, fresh prompts
of N tokens). Usage: python scripts/prefill_flag_ab.py N [pairs] [folder]; prints each pair and the median ratio."""
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.model import DEFAULT_SHAPE, Shape, write_bench_folder  # noqa: E402
from inference.cpu import kernels  # noqa: E402
from inference.engine import Engine  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 4
folder = (Path(sys.argv[3]) if len(sys.argv) > 3
          else write_bench_folder(Path("bench-results/models"), Shape(**DEFAULT_SHAPE), torch.bfloat16))
eng = Engine.load(folder, dtype="bfloat16")
print("kernels", eng.kernels)


def run(flag: bool) -> float:
    """Seconds for a fresh N-token prompt and 2 greedy tokens, with the invariant kernels on or off."""
    kernels.BATCH_INVARIANT = flag
    ids = [random.randint(10, 5000) for _ in range(n)]
    t = time.perf_counter()
    for _ in eng.generate(ids, max_new_tokens=2, sampling=eng.default_sampling(do_sample=False)):
        pass
    return time.perf_counter() - t


run(True); run(False)
ratios = []
for i in range(pairs):
    a, b = (run(True), run(False)) if i % 2 == 0 else tuple(reversed((run(False), run(True))))
    ratios.append(a / b)
    print(f"pair {i}: invariant {a:.3f} s, blocked {b:.3f} s, ratio {a/b:.2f}", flush=True)
print(f"n={n}: median ratio invariant/blocked {statistics.median(ratios):.2f}")
