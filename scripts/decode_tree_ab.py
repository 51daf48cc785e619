"""One decode measurement with the code of a given tree, for alternating-process A/B between two checkouts.

Usage: python scripts/decode_tree_ab.py TREE FOLDER [int8|int4] — loads FOLDER (bf16) with TREE's inference
package, prefills a fixed 512-token prompt and decodes 64 greedy tokens three times; prints the best decode
tok/s. Run it alternately for two trees (e.g. a `git worktree` of an older commit) and take the median of the
adjacent pairs' ratios: this VM's bandwidth changes minute to minute, so only adjacent runs compare.
"""
import random
import sys
import time

tree, folder, quant = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else None)
sys.path.insert(0, tree)
from inference.engine import Engine  # noqa: E402  (the tree chosen above)

engine = Engine.load(folder, dtype="bfloat16", quantize=quant)
random.seed(0)
ids = [random.randint(10, 5000) for _ in range(512)]
rates = []
for rep in range(3):
    stamps = [time.perf_counter() for _ in engine.generate([ids[0] + rep] + ids[1:], max_new_tokens=64,
                                                            sampling=engine.default_sampling(do_sample=False))]
    rates.append((len(stamps) - 2) / (stamps[-2] - stamps[0]))  # token events after the first; the last is Finish
print(f"{tree} decode {max(rates):.1f} tok/s runs {[round(r, 1) for r in rates]}")
