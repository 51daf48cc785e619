"""The CPU references of torch_npu's ops against independent ones, mask conventions, and the decode op budget."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from inference import cpu
from inference.engine import Engine
from testkit.fixtures import write_model_folder
from inference.modeling.model import Positions, RMSNorm
from inference.npu.modules import prefill_mask
from npu_standin import OpCounter, StandIn

BIG = 2147483647


def qkv(length: int, cache: int, heads: int = 4, kv_heads: int = 2, dim: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, heads, length, dim, generator=gen), torch.randn(1, kv_heads, cache, dim, generator=gen),
            torch.randn(1, kv_heads, cache, dim, generator=gen))


def sdpa(q, k, v, **kw):
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=k.shape[1] != q.shape[1], **kw)


def test_rms_norm_reference_matches_the_model_norm_and_returns_rstd():
    norm = RMSNorm(32, 1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 32))
    x = torch.randn(5, 32)
    y, rstd = StandIn(strict_fp16=False).npu_rms_norm(x, norm.weight, epsilon=1e-6)
    torch.testing.assert_close(y, norm(x))
    assert rstd.dtype == torch.float32 and rstd.shape == (5, 1)
    torch.testing.assert_close(rstd, x.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt())


def test_prompt_flash_attention_semantics():
    ops = StandIn(strict_fp16=False)
    q, k, v = qkv(6, 6)
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)  # True = masked
    common = dict(num_heads=4, num_key_value_heads=2, scale_value=0.25, input_layout="BNSD")
    out = ops.npu_prompt_flash_attention(q, k, v, atten_mask=causal, pre_tokens=BIG, next_tokens=BIG, **common)
    torch.testing.assert_close(out, sdpa(q, k, v, is_causal=True, scale=0.25))
    # sparse_mode 0: with a mask the band applies too (an all-False mask and next_tokens 0 is causal) ...
    band = ops.npu_prompt_flash_attention(q, k, v, atten_mask=torch.zeros(6, 6, dtype=torch.bool), next_tokens=0,
                                          **common)
    torch.testing.assert_close(band, out)
    # ... and without a mask nothing is masked, whatever next_tokens says
    free = ops.npu_prompt_flash_attention(q, k, v, next_tokens=0, **common)
    torch.testing.assert_close(free, sdpa(q, k, v, scale=0.25))
    # actual_seq_lengths_kv: only the first keys count
    cut = ops.npu_prompt_flash_attention(q, k, v, actual_seq_lengths_kv=[4], **common)
    torch.testing.assert_close(cut, sdpa(q, k[:, :, :4], v[:, :, :4], scale=0.25))
    with pytest.raises(TypeError):  # a float (additive) mask is not what this op takes
        ops.npu_prompt_flash_attention(q, k, v, atten_mask=causal.float(), **common)
    with pytest.raises(ValueError):  # documented: no non-contiguous inputs
        ops.npu_prompt_flash_attention(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3), **common)


def test_incre_flash_attention_reads_the_valid_prefix_only():
    ops = StandIn(strict_fp16=False)
    q, k, v = qkv(1, 10)
    out = ops.npu_incre_flash_attention(q, k, v, actual_seq_lengths=[7], num_heads=4, num_key_value_heads=2,
                                        scale_value=0.25, input_layout="BNSD")
    torch.testing.assert_close(out, sdpa(q, k[:, :, :7], v[:, :, :7], scale=0.25))
    with pytest.raises(TypeError):
        StandIn().npu_incre_flash_attention(q, k, v, num_heads=4, num_key_value_heads=2, input_layout="BNSD")


def test_boolean_and_additive_masks_agree_for_a_cached_prefix():
    """The CPU path's SDPA boolean mask (True = attend), an additive fp16 mask and the fused op's mask
    (True = masked) give the same attention for 4 new positions after 5 cached ones."""
    rope = (torch.ones(4, 16), torch.zeros(4, 16))
    pos = Positions(5, 4, rope, None)
    keep = pos.bias(torch.float16)  # [1, 4, 9] boolean
    assert keep.dtype == torch.bool
    additive = torch.zeros(keep.shape, dtype=torch.float16).masked_fill(~keep, float("-inf"))
    q, k, v = (t.half() for t in qkv(4, 9, heads=4, kv_heads=4))
    by_bool = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=keep[None])
    by_add = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=additive[None].float())
    fused_mask = prefill_mask(pos, 12, "cpu")  # the NPU path's: [1, 1, 4, 12] over a 12-slot cache
    assert torch.equal(fused_mask[0, 0, :, :9], ~keep[0]) and fused_mask[..., 9:].all()
    by_fused = StandIn().npu_prompt_flash_attention(q, k, v, atten_mask=fused_mask[..., :9], num_heads=4,
                                                   scale_value=0.25, pre_tokens=BIG, next_tokens=BIG,
                                                   input_layout="BNSD", num_key_value_heads=4)
    torch.testing.assert_close(by_bool, by_add)
    torch.testing.assert_close(by_fused.float(), by_bool, atol=2e-3, rtol=2e-3)


# ---- op budget ----------------------------------------------------------------------------------------
def decode_ops(model, prompt: list[int]) -> OpCounter:
    model(torch.tensor(prompt), 0)
    counter = OpCounter()
    with counter:
        model(torch.tensor([5]), len(prompt))
    return counter


def test_decode_op_budget(tmp_path, monkeypatch):
    """One decode step launches far fewer ops on the NPU path than on today's plain path (the model with
    no fast path, float16): per layer 18 launches instead of 28 (fused norm, fused decode attention)."""
    layers = 3
    folder = write_model_folder(tmp_path / "m", num_layers=layers, seed=3)
    npu_path = decode_ops(Engine.load(folder, npu_ops=StandIn()).model, list(range(3, 11)))
    with monkeypatch.context() as patch:
        patch.setattr(cpu, "accelerate", lambda model, *args, **kwargs: (model, {}))
        plain = decode_ops(Engine.load(folder, device="cpu", dtype="float16").model, list(range(3, 11)))
    print(f"\nplain: {plain.launches} launches + {plain.views} views; NPU path: {npu_path.launches} + "
          f"{npu_path.views}\n{npu_path.ops}")
    assert plain.launches >= 8 + 28 * layers  # what today's path costs (if it shrinks, lower the ceiling)
    assert npu_path.launches <= 3 + 18 * layers  # embedding, final norm, lm_head + 18 per layer
    assert npu_path.launches + npu_path.views <= 0.7 * (plain.launches + plain.views)
    assert "aten.scaled_dot_product_attention" not in npu_path.ops and "aten.rsqrt" not in npu_path.ops
    assert npu_path.ops["npu_standin.incre_flash_attention"] == layers
