"""fp16 range (finding 5): over 2,000-token prompts on folders with Baichuan2-7B-like weight scales, the values
the NPU keeps in float16 stay far below 65504, and fp16 logits of the NPU path agree with float32 ones.

Weight statistics chosen (no real checkpoint here): each linear layer keeps the gain of a 7B layer,
std·sqrt(fan_in) = 0.02·sqrt(4096) = 1.28 for the hidden-width inputs (W_pack, o_proj, gate, up) and
0.02·sqrt(11008) = 2.10 for down_proj (0.02 = Baichuan2's initializer_range, the usual scale of trained 7B
matrices); the embedding has std 0.02 per element; norm weights 1 ± 0.1; head size 128 as in the 7B/13B.
The width is cut to 256 (2 heads; 13B-like ALiBi: 4 heads of 64) and 2 layers so that a 2,000-token prompt
runs in seconds. Real checkpoints also carry a few "massive activations" (published for LLaMA2-7B: ~2.6e3
in two channels) that random weights do not produce: run inference.npu.probe on the real folder for those.
"""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from inference.engine import Engine
from testkit.fixtures import write_model_folder, write_weights
from inference.npu.probe import FP16_MAX, RangeProbe, compare
from npu_standin import StandIn

PROMPT = 2000
GAIN_HIDDEN, GAIN_DOWN, EMBED_STD = 0.02 * math.sqrt(4096), 0.02 * math.sqrt(11008), 0.02


def realistic_folder(path, position_embedding: str, num_heads: int):
    folder = write_model_folder(path, position_embedding=position_embedding, hidden_size=256, num_heads=num_heads,
                                num_layers=2, intermediate_size=688, model_max_length=2048, seed=7,
                                dtype=torch.bfloat16)  # stored bf16, as Baichuan2 ships
    weights = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    for name, w in weights.items():
        if name == "model.embed_tokens.weight":
            weights[name] = w / w.std() * EMBED_STD
        elif w.dim() == 2:  # linear layers (lm_head included; NormHead normalises its rows anyway)
            gain = GAIN_DOWN if "down_proj" in name else GAIN_HIDDEN
            weights[name] = w / w.std() * gain / math.sqrt(w.shape[1])
    write_weights(folder, {k: v.to(torch.bfloat16) for k, v in weights.items()})
    return folder


@pytest.mark.parametrize("position_embedding,num_heads", [("rope", 2), ("alibi", 4)])
def test_fp16_range_and_logits_on_long_prompts(tmp_path, position_embedding, num_heads):
    folder = realistic_folder(tmp_path / position_embedding, position_embedding, num_heads)
    ids = torch.randint(3, 900, (PROMPT,), generator=torch.Generator().manual_seed(1)).tolist()
    reference = Engine.load(folder, device="cpu", dtype="float32", max_seq_len=2048)
    expected = reference.model(torch.tensor(ids), 0, all_logits=True)
    del reference
    engine = Engine.load(folder, npu_ops=StandIn(), max_seq_len=2048)  # float16, fused / explicit ops
    with RangeProbe(engine.model) as probe:
        logits = engine.model(torch.tensor(ids), 0, all_logits=True)
    agreement = compare(expected, logits)
    print(f"\n{position_embedding}: maxima {probe.max}, margins {probe.margins()}, agreement {agreement}")
    assert torch.isfinite(logits).all()
    for key, value in probe.max.items():
        assert 0 < value < FP16_MAX / 100, f"{key} reaches {value:.3g}: within 100x of float16's limit"
    assert agreement["top1"] >= 0.99
    assert agreement["kl_mean"] < 1e-3 and agreement["kl_max"] < 1e-2
