"""A config vocab_size padded past the tokenizer's pieces: the padding ids are never picked (issue 14 §5)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from inference.cpu import kernels as cpu_kernels
from inference.engine import Engine
from inference.events import FinishEvent
from inference.sampling import SamplingParams
from testkit.fixtures import write_model_folder

#: Padded rows of lm_head are the real rows times this: each padding id's logit is BOOST x a real one's, so the
#: unmasked model would pick a padding id whenever the best real logit is positive.
BOOST = 4.0


def pad_vocabulary(folder: Path, extra: int) -> int:
    """Pad config.json's vocab_size and the embedding / lm_head by `extra` rows; return the tokenizer's pieces."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    pieces = config["vocab_size"]
    weights = load_file(str(folder / "model.safetensors"))
    embed, head = weights["model.embed_tokens.weight"], weights["lm_head.weight"]
    rows = torch.arange(extra) % pieces
    weights["model.embed_tokens.weight"] = torch.cat([embed, embed[rows]])
    weights["lm_head.weight"] = torch.cat([head, BOOST * head[rows]])
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    config["vocab_size"] = pieces + extra
    config_path.write_text(json.dumps(config))
    return pieces


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    folder = write_model_folder(tmp_path_factory.mktemp("padded") / "m", norm_head=False, hidden_size=64,
                                num_layers=2, seed=5)
    pieces = pad_vocabulary(folder, 1000 + 24)  # a padded vocabulary that is not a whole number of tiles
    return folder, pieces


KINDS = [
    pytest.param({"dtype": "float32", "kernels": False}, id="step-path"),
    pytest.param({"dtype": "bfloat16", "kernels": True}, id="c-kernels"),
    pytest.param({"dtype": "bfloat16", "kernels": True, "quantize": "int8"}, id="c-kernels-int8"),
]


@pytest.mark.parametrize("kind", KINDS)
def test_padding_ids_are_never_picked(padded, monkeypatch, kind):
    folder, pieces = padded
    if kind["kernels"]:
        if cpu_kernels.load() is None:
            pytest.skip("no C kernels here")
    else:
        monkeypatch.setenv("BAICHUAN_CHAT_NO_CPU_KERNELS", "1")
    engine = Engine.load(folder, device="cpu", dtype=kind["dtype"], max_seq_len=128, quantize=kind.get("quantize"))
    assert engine.config.vocab_size == pieces + 1024 and engine.tokenizer.vocab_size == pieces
    assert bool(engine.kernels.get("fused_decode")) == kind["kernels"]
    prompt = engine.tokenizer.encode("hello there, a padded vocabulary")[:12]
    with torch.no_grad():
        raw = engine.model(torch.tensor(prompt), 0).float()
    assert int(raw.argmax()) >= pieces  # the test bites: unmasked, greedy would pick a padding id at once
    for params in (SamplingParams(do_sample=False, repetition_penalty=1.0),
                   SamplingParams(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=1),
                   SamplingParams(do_sample=True, temperature=0.3, top_k=5, top_p=0.85, repetition_penalty=1.05,
                                  seed=2)):
        events = list(engine.generate(prompt, 24, params))
        finish = events[-1]
        assert isinstance(finish, FinishEvent) and finish.output_ids, events
        assert max(finish.output_ids) < pieces, (params, finish.output_ids)
        assert finish.finish_reason in ("length", "stop")
