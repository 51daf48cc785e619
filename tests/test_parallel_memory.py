"""Each tensor-parallel rank holds about 1/N of the weights: peak resident memory per rank, measured.

A ~200 MB float32 folder (hidden 1024, 4 layers) is loaded in fresh processes on one device and over two
ranks; each process's peak RSS minus its RSS just before the weights load is compared with the weights'
bytes W. One device: about W. Each of two ranks: about W/2 (its KV cache at MAX_SEQ_LEN 256 is ~1 MB),
well under W, so no rank ever holds the whole model, also not transiently while reading the checkpoint.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

from inference.modeling.config import load_folder_config
from testkit.fixtures import write_model_folder
from inference.modeling.weights import expected_shapes

SCRIPT = r"""
import json, sys
from inference.engine import Engine
from inference.parallel.ranks import memory_stats
folder, world = sys.argv[1], int(sys.argv[2])
before = memory_stats()["rss"]
engine = Engine.load(folder, device="cpu", dtype="float32", max_seq_len=256, tensor_parallel=world)
if world == 1:
    print(json.dumps({"0": {"rss_before": before, **memory_stats()}}))
else:
    print(json.dumps({str(k): v for k, v in engine.model.memory().items()}))
    engine.close()
"""


def measure(folder, world: int) -> dict[str, int]:
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(world)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)
    return {rank: s["peak_rss"] - s["rss_before"] for rank, s in stats.items()}


def test_each_rank_holds_half_the_weights(tmp_path):
    folder = write_model_folder(tmp_path / "m", hidden_size=1024, num_layers=4, num_heads=8,
                                intermediate_size=2816, model_max_length=256)
    config, _ = load_folder_config(folder)
    weights = sum(math.prod(s) for s in expected_shapes(config).values()) * 4
    one = measure(folder, 1)["0"]
    two = measure(folder, 2)
    mib = {rank: round(v / 2**20, 1) for rank, v in two.items()}
    print(f"weights {weights / 2**20:.1f} MiB; one device +{one / 2**20:.1f} MiB; per rank of two: {mib}")
    assert 0.9 * weights < one < 1.35 * weights
    assert set(two) == {"0", "1"}
    # Half the weights plus what any load costs (the interpreter's and torch's own growth, ~20-30 MiB here,
    # measured on one device as one - weights); a rank holding the whole model would be ~W.
    overhead = max(one - weights, 0)
    for rank, grown in two.items():
        assert 0.4 * weights < grown < 0.5 * weights + overhead + 16 * 2**20, (rank, mib, weights, overhead)
        assert grown < 0.75 * weights, (rank, mib, weights)
