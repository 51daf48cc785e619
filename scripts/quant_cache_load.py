"""Load times of a quantized model with and without the quantized cache (issue 14 §2), on the bench folder.

Each load runs in a fresh process: `python scripts/quant_cache_load.py [--rounds N] [--root DIR]` prints, per
mode, the first load (quantizing, then writing the cache), the second (reading the cache), the cache entry's
size, and a bf16 load of the same folder for scale.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
from inference.engine import Engine
mode = sys.argv[2]
engine = Engine.load(sys.argv[1], device="cpu", dtype="bfloat16", max_seq_len=256,
                     quantize=None if mode == "bf16" else mode)
print(json.dumps({"load_s": engine.load_seconds}))
"""


def load_once(folder: Path, mode: str, env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), mode], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.splitlines()[-1])["load_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", default=str(ROOT / "bench" / ".models"))
    args = parser.parse_args()
    from bench.model import DEFAULT_SHAPE, Shape, write_bench_folder
    from inference import quant_cache_dir as store

    folder = write_bench_folder(Path(args.root), Shape(**DEFAULT_SHAPE))
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, BAICHUAN_CHAT_CACHE_DIR=cache)
        print(f"folder {folder.name}: {weights / 2**20:.0f} MiB of weights")
        load_once(folder, "bf16", env)  # page cache warm for every row
        for _ in range(args.rounds):
            row = {"bf16": round(load_once(folder, "bf16", env), 2)}
            for mode in ("int8", "int4"):
                store.clear(root=Path(cache) / "quantized")
                first = load_once(folder, mode, env)
                size = store.total_size(Path(cache) / "quantized")
                second = load_once(folder, mode, env)
                row[mode] = f"first {first:.2f} s, cached {second:.2f} s, entry {size / 2**20:.0f} MiB"
            print(json.dumps(row))


if __name__ == "__main__":
    main()
