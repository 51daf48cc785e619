"""The NPU path through the real Engine, loader and model with a recording stand-in for torch_npu (CPU only).

Checks findings 1-4 of issue 18 and the runtime duties: host-side bf16→fp16 cast, one FRACTAL_NZ cast per
untied linear weight, set_device first, fused ops for RoPE / explicit additive-mask attention for ALiBi,
the same logits as the CPU path (with and without a cached prefix), synchronised timings, graph fallback.
"""
from __future__ import annotations

import pytest
import torch

from inference.modeling import weight_copy
from inference.engine import Engine
from inference.errors import DeviceError
from testkit.fixtures import write_model_folder
from inference.npu.format import ACL_FORMAT_FRACTAL_NZ
from inference.npu.modules import AlibiAttend, FusedAttend, NpuRMSNorm
from inference.npu.runtime import GRAPH_ENV
from npu_standin import DeviceCopies, OpCounter, StandIn


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("npu")
    return {
        "rope": write_model_folder(root / "rope", position_embedding="rope", seed=0),
        "alibi": write_model_folder(root / "alibi", position_embedding="alibi", num_heads=6, hidden_size=48, seed=2),
        "bf16": write_model_folder(root / "bf16", dtype=torch.bfloat16, seed=5),
    }


def run(model, ids: list[int]) -> torch.Tensor:
    """Logits of a fresh prefill, a prefill after a cached prefix, then one-token decode steps."""
    rows = [model(torch.tensor(ids[:6]), 0, all_logits=True), model(torch.tensor(ids[6:12]), 6, all_logits=True)]
    rows += [model(torch.tensor([ids[p]]), p)[None] for p in range(12, len(ids))]
    return torch.cat(rows)


IDS = torch.randint(3, 900, (18,), generator=torch.Generator().manual_seed(0)).tolist()


def test_demo_model_casts_every_untied_linear_once_and_keeps_the_tie():
    ops = StandIn()  # float16, strict: as on a 310P
    engine = Engine.load(None, npu_ops=ops)  # SmolLM2: GQA, lm_head tied to the embedding
    model = engine.model
    assert ops.calls[0] == ("set_device", "cpu")  # before anything was allocated or cast
    casts = [detail for name, detail in ops.calls if name == "npu_format_cast"]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not model.lm_head]
    assert len(casts) == len(linears) == 5 * model.config.num_layers
    assert all(fmt == ACL_FORMAT_FRACTAL_NZ for _, _, fmt in casts)
    assert ops.names().index("allow_internal_format") < ops.names().index("npu_format_cast")
    embedding = model.model.embed_tokens.weight
    assert model.lm_head.weight is embedding  # still tied: not replaced by a cast copy
    assert embedding.data_ptr() not in {ptr for ptr, _, _ in casts}
    assert engine.kernels["nz_weights"] == len(linears)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    answer = list(engine.chat(messages, 8, engine.default_sampling(do_sample=False)))[-1].text
    assert "Paris" in answer  # GQA through the fused kernels' references, in float16


@pytest.mark.parametrize("kind", ["rope", "alibi"])
def test_same_logits_as_the_cpu_path(folders, kind):
    """float32 through the NPU modules (stand-in references) vs today's CPU path: prefill, cached prefix, decode."""
    ops = StandIn(strict_fp16=False)
    npu_logits = run(Engine.load(folders[kind], dtype="float32", npu_ops=ops).model, IDS)
    cpu_logits = run(Engine.load(folders[kind], device="cpu", dtype="float32").model, IDS)
    torch.testing.assert_close(npu_logits, cpu_logits, atol=1e-4, rtol=1e-4)
    fused = {"npu_prompt_flash_attention", "npu_incre_flash_attention"} & set(ops.names())
    assert fused == ({"npu_prompt_flash_attention", "npu_incre_flash_attention"} if kind == "rope" else set())


@pytest.mark.parametrize("kind", ["rope", "alibi"])
def test_float16_path_chooses_the_documented_ops(folders, kind):
    ops = StandIn()  # strict: anything but float16 into a fused op raises, as on a 310P
    engine = Engine.load(folders[kind], npu_ops=ops)
    assert engine.dtype == "float16"
    attends = [m for m in engine.model.modules() if isinstance(m, (FusedAttend, AlibiAttend))]
    assert len(attends) == engine.config.num_layers
    assert all(isinstance(m, FusedAttend if kind == "rope" else AlibiAttend) for m in attends)
    assert sum(isinstance(m, NpuRMSNorm) for m in engine.model.modules()) == 2 * engine.config.num_layers + 1
    counter = OpCounter()
    with counter:
        logits = run(engine.model, IDS)
    assert "aten.scaled_dot_product_attention" not in counter.ops  # no SDPA (nor its boolean mask) on the NPU
    expected = run(Engine.load(folders[kind], device="cpu", dtype="float32").model, IDS)
    torch.testing.assert_close(logits, expected, atol=3e-2, rtol=3e-2)


def test_bf16_checkpoint_is_cast_on_the_host(folders):
    copies = DeviceCopies()
    with copies:
        Engine.load(folders["bf16"], npu_ops=StandIn())
    assert copies.pairs and all(dst == src for dst, src in copies.pairs)
    assert torch.bfloat16 not in {dtype for pair in copies.pairs for dtype in pair}


def test_the_copy_recorder_catches_a_device_side_cast(folders, monkeypatch):
    """Without host_cast the bf16 blocks reach the fp16 parameters: the check above would fail."""
    monkeypatch.setattr(weight_copy, "host_cast", lambda block, dtype: block)
    copies = DeviceCopies()
    with copies:
        Engine.load(folders["bf16"], npu_ops=StandIn())
    assert (torch.float16, torch.bfloat16) in copies.pairs


def test_timings_wait_for_the_device(folders):
    ops = StandIn()
    engine = Engine.load(folders["rope"], npu_ops=ops)
    before = ops.names().count("synchronize")
    events = list(engine.generate(IDS[:5], 4, engine.default_sampling(do_sample=False)))
    assert ops.names().count("synchronize") - before == 3  # start, first token, end
    assert events[-1].metrics["decode_tokens_per_s"] > 0


def test_graph_decode_is_opt_in_and_falls_back(folders, monkeypatch):
    compiled_calls = []

    def compiler(fn):
        def step(*args):
            compiled_calls.append(args[1])
            return fn(*args)
        return step

    assert Engine.load(folders["rope"], npu_ops=StandIn(compiler=compiler)).kernels["graph_decode"].startswith("off")
    monkeypatch.setenv(GRAPH_ENV, "1")
    assert Engine.load(folders["rope"], npu_ops=StandIn()).kernels["graph_decode"].startswith("unavailable")
    engine = Engine.load(folders["rope"], npu_ops=StandIn(compiler=compiler))
    assert engine.kernels["graph_decode"] == "graph"
    logits = run(engine.model, IDS)
    assert compiled_calls == list(range(12, len(IDS)))  # decode steps only; prefill stays eager

    def broken(fn):
        def step(*args):
            raise RuntimeError("capture not supported")
        return step

    fallback = Engine.load(folders["rope"], npu_ops=StandIn(compiler=broken))
    torch.testing.assert_close(run(fallback.model, IDS), logits)
    assert fallback.model.status.startswith("eager (graph failed")


def test_bfloat16_and_int8_are_refused_on_the_npu(folders):
    with pytest.raises(DeviceError, match="bfloat16"):
        Engine.load(folders["rope"], dtype="bfloat16", npu_ops=StandIn())
    with pytest.raises(DeviceError, match="int8"):
        Engine.load(folders["rope"], quantize="int8", npu_ops=StandIn())
