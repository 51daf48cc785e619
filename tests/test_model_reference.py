"""Engine logits against independent references: transformers' Llama (RoPE), a from-formula ALiBi model, KV cache."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from inference.cpu import kernels as cpu_kernels
from inference.engine import Engine
from testkit.fixtures import WEIGHT_FORMATS, write_model_folder

ATOL = 1e-4


# ---- folders and helpers ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    made = {
        "rope": write_model_folder(root / "rope", position_embedding="rope", norm_head=True, seed=0),
        # Baichuan v1: its own architecture name, no optional keys (RoPE and no NormHead are inferred).
        "v1": write_model_folder(root / "v1", architecture="BaiChuanForCausalLM", position_embedding=None,
                                 norm_head=None, seed=1),
        "alibi6": write_model_folder(root / "alibi6", position_embedding="alibi", num_heads=6, hidden_size=48,
                                     seed=2),
        "alibi5": write_model_folder(root / "alibi5", position_embedding="alibi", num_heads=5, hidden_size=40,
                                     num_layers=1, seed=3),
        # 40 heads as in Baichuan2-13B (a non-power-of-two count), with a tiny head size.
        "alibi40": write_model_folder(root / "alibi40", position_embedding="alibi", num_heads=40, hidden_size=160,
                                      num_layers=1, intermediate_size=64, seed=4),
        "rope_bf16": write_model_folder(root / "rope_bf16", dtype=torch.bfloat16, seed=5),
    }
    for fmt in WEIGHT_FORMATS:
        made[f"fmt-{fmt}"] = write_model_folder(root / f"fmt-{fmt}", weights_format=fmt, seed=6,
                                                extra_buffers=fmt == "sharded-bin")
    return made


def load(folder: Path, dtype: str = "float32") -> Engine:
    return Engine.load(folder, device="cpu", dtype=dtype)


def token_ids(folder: Path, n: int, seed: int = 0) -> list[int]:
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def step_logits(engine: Engine, ids: list[int], prefill: int = 1) -> torch.Tensor:
    """Logits after every position from `prefill - 1` on: one prefill pass, then one token at a time (KV cache)."""
    model = engine.model
    rows = [model(torch.tensor(ids[:prefill]), 0)]
    for pos in range(prefill, len(ids)):
        rows.append(model(torch.tensor([ids[pos]]), pos))
    return torch.stack(rows)


def checkpoint(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json and the float64 tensors of a single-file safetensors folder, read without our loader."""
    cfg = json.loads((folder / "config.json").read_text())
    return cfg, {k: v.double() for k, v in load_file(str(folder / "model.safetensors")).items()}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    diff = (actual.double() - expected.double()).abs().max().item()
    assert diff <= atol, f"max |difference| {diff:.3g} exceeds {atol}"


# ---- RoPE: transformers' LlamaForCausalLM -----------------------------------------------------------
def llama_reference(folder: Path, norm_head: bool):
    """transformers' LlamaForCausalLM (fp32, eager attention) holding the folder's weights, W_pack split."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg, tensors = checkpoint(folder)
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    config = LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=hidden, intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=heads, num_key_value_heads=heads,
        hidden_act="silu", max_position_embeddings=cfg["model_max_length"], rms_norm_eps=cfg["rms_norm_eps"],
        rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
    )
    model = LlamaForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32)
    state = {}
    for name, tensor in tensors.items():
        if name.endswith("self_attn.W_pack.weight"):
            prefix = name.removesuffix("W_pack.weight")
            for part, rows in zip(("q_proj", "k_proj", "v_proj"), tensor.split(hidden)):
                state[f"{prefix}{part}.weight"] = rows
        elif name == "lm_head.weight" and norm_head:
            state[name] = F.normalize(tensor, dim=-1)  # NormHead: F.normalize(lm_head.weight) then linear
        else:
            state[name] = tensor
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def llama_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_rope_folder_matches_transformers_llama(folders):
    """Baichuan2-7B (RoPE) logits equal transformers' LlamaForCausalLM built from the same folder.

    Why this is Baichuan2-7B's reference: Baichuan2-7B's modeling_baichuan.py is the Llama decoder — pre-norm
    blocks with RMSNorm (eps 1e-6, computed in float32), a SiLU-gated MLP (down(silu(gate x) * up x)), causal
    softmax attention scaled by 1/sqrt(head_dim), rotate-half RoPE with base 10000 on q and k — except that
    q, k and v come from one fused Linear, W_pack, whose output is split in that order (rows [0:h], [h:2h],
    [2h:3h]), and that the head is NormHead, whose inference forward is F.linear(h, F.normalize(weight)).
    Splitting W_pack's rows into q_proj/k_proj/v_proj and storing L2-normalised lm_head rows therefore gives a
    LlamaForCausalLM computing the same function, and transformers' Llama is an implementation we did not write.
    """
    folder = folders["rope"]
    engine = load(folder)
    assert engine.config.position_embedding == "rope" and engine.config.norm_head
    # where the C kernels build, the decode steps below are the one-call C step (float32): checked here too
    assert engine.kernels["fused_decode"] == (cpu_kernels.load() is not None)
    ids = token_ids(folder, 40)
    expected = llama_logits(llama_reference(folder, norm_head=True), ids)
    assert_close(step_logits(engine, ids), expected)  # every position, through the KV cache
    assert_close(step_logits(engine, ids, prefill=25), expected[24:])  # prefill 25, then decode 15
    # the same weights without NormHead give clearly different logits: the comparison can tell them apart
    unnormalised = llama_logits(llama_reference(folder, norm_head=False), ids)
    assert (unnormalised - expected).abs().max() > 0.1


def test_rope_far_positions_match_transformers_llama(folders):
    folder = folders["rope"]
    engine = load(folder)
    ids = token_ids(folder, 250, seed=1)  # model_max_length is 256
    expected = llama_logits(llama_reference(folder, norm_head=True), ids)
    assert_close(engine.model(torch.tensor(ids), 0), expected[-1])
    assert_close(step_logits(engine, ids, prefill=240), expected[239:])


def test_baichuan_v1_matches_llama_without_normhead(folders):
    folder = folders["v1"]
    engine = load(folder)
    assert engine.config.architecture == "baichuan" and not engine.config.norm_head
    assert engine.config.position_embedding == "rope"
    ids = token_ids(folder, 30, seed=2)
    assert_close(step_logits(engine, ids), llama_logits(llama_reference(folder, norm_head=False), ids))


def test_bfloat16_checkpoint_loads_exactly_into_float32(folders):
    folder = folders["rope_bf16"]
    ids = token_ids(folder, 20, seed=3)
    expected = llama_logits(llama_reference(folder, norm_head=True), ids)  # bf16 values, upcast
    assert_close(step_logits(load(folder), ids), expected)


def test_bfloat16_engine_stays_close_to_float32(folders):
    folder = folders["rope"]
    ids = token_ids(folder, 20, seed=4)
    full = step_logits(load(folder), ids)
    half = step_logits(load(folder, dtype="bfloat16"), ids)
    assert F.cosine_similarity(full, half, dim=-1).min() > 0.99


# ---- ALiBi: a reference written here from the published formula ------------------------------------
def alibi_slopes_closed_form(n: int) -> list[float]:
    """Press et al.'s ALiBi slopes, extended to non-power-of-two n as in Baichuan2-13B's _get_interleave.

    With c = 2**floor(log2 n): head i < c gets 2**(-8(i+1)/c) (the geometric sequence starting at 2**(-8/c));
    the remaining n - c heads take every other slope of the 2c-head sequence, i.e. 2**(-8(2k+1)/(2c)).
    """
    c = 2 ** math.floor(math.log2(n))
    return [2.0 ** (-8.0 * (i + 1) / c) for i in range(c)] + [2.0 ** (-4.0 * (2 * k + 1) / c) for k in range(n - c)]


def test_alibi_slopes_match_published_values():
    from inference.modeling.model import alibi_slopes

    slopes_40 = alibi_slopes_closed_form(40)  # Baichuan2-13B's head count
    assert slopes_40[0] == 2 ** -0.25 and slopes_40[31] == 2 ** -8
    assert slopes_40[32] == 2 ** -0.125 and slopes_40[39] == 2 ** -1.875
    assert alibi_slopes_closed_form(8) == [2.0 ** -(i + 1) for i in range(8)]  # the paper's 8-head example
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 12, 32, 40, 64, 80):
        assert alibi_slopes(n) == pytest.approx(alibi_slopes_closed_form(n), rel=1e-12, abs=0), n


def alibi_reference_logits(folder: Path, ids: list[int], slopes: list[float] | None = None) -> torch.Tensor:
    """Full-sequence float64 forward of an ALiBi Baichuan folder, straight from the formulas (no RoPE, no cache).

    Attention scores are q·k/sqrt(head_dim) + alibi + causal mask, softmaxed over keys. The alibi term is
    Baichuan2-13B's _gen_alibi_mask: slope_h * j for key position j, with -inf above the diagonal; softmax is
    shift-invariant per row, so this equals Press et al.'s -slope_h * (i - j).
    """
    cfg, w = checkpoint(folder)
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["rms_norm_eps"]
    head_dim, seq = hidden // heads, len(ids)

    def rms_norm(x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    slopes = torch.tensor(alibi_slopes_closed_form(heads) if slopes is None else slopes, dtype=torch.float64)
    key_pos = torch.arange(seq, dtype=torch.float64)
    future = torch.triu(torch.full((seq, seq), float("-inf"), dtype=torch.float64), 1)
    bias = slopes[:, None, None] * key_pos[None, None, :] + future[None]  # [heads, query, key]
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"])
        q, k, v = (h @ w[p + "self_attn.W_pack.weight"].T).split(hidden, dim=-1)
        q, k, v = (t.reshape(seq, heads, head_dim).transpose(0, 1) for t in (q, k, v))
        scores = q @ k.transpose(1, 2) / math.sqrt(head_dim) + bias
        attn = (torch.softmax(scores, dim=-1) @ v).transpose(0, 1).reshape(seq, hidden)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"])
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    head = w["lm_head.weight"]
    head = head / head.norm(dim=-1, keepdim=True)  # NormHead (Baichuan2-13B has it too)
    return rms_norm(x, w["model.norm.weight"]) @ head.T


@pytest.mark.parametrize("name", ["alibi6", "alibi5", "alibi40"])
def test_alibi_folder_matches_formula_reference(folders, name):
    folder = folders[name]
    engine = load(folder)
    assert engine.config.position_embedding == "alibi"
    ids = token_ids(folder, 40, seed=5)
    expected = alibi_reference_logits(folder, ids)
    assert_close(step_logits(engine, ids), expected)
    assert_close(step_logits(engine, ids, prefill=30), expected[29:])
    # the bias matters: the same weights with all slopes at zero give clearly different logits
    without_bias = alibi_reference_logits(folder, ids, slopes=[0.0] * engine.config.num_heads)
    assert (without_bias - expected).abs().max() > 0.05


# ---- KV cache, generation and weight formats ---------------------------------------------------------
@pytest.mark.parametrize("name", ["rope", "alibi6"])
def test_kv_cache_decode_equals_full_recompute(folders, name):
    folder = folders[name]
    engine = load(folder)
    ids = token_ids(folder, 64, seed=6)
    incremental = step_logits(engine, ids, prefill=8)  # 8-token prefill, then 56 cached decode steps
    full = torch.stack([engine.model(torch.tensor(ids[:end]), 0) for end in range(8, 65)])
    assert_close(incremental, full)


@pytest.mark.parametrize("name", ["rope", "alibi6"])
def test_prefill_in_chunks_after_a_cached_prefix(folders, name):
    """A multi-token forward at start > 0 (how the engine reuses a cached prompt prefix) sees the whole prefix."""
    folder = folders[name]
    engine = load(folder)
    ids = token_ids(folder, 48, seed=9)
    expected = (llama_logits(llama_reference(folder, norm_head=True), ids) if name == "rope"
                else alibi_reference_logits(folder, ids))
    for start, end in ((0, 10), (10, 31), (31, 32), (32, 48)):
        assert_close(engine.model(torch.tensor(ids[start:end]), start), expected[end - 1])


def test_generation_reusing_the_cached_prefix_matches_a_fresh_engine(folders):
    folder = folders["alibi6"]
    engine, fresh = load(folder), load(folder)
    greedy = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    first = token_ids(folder, 12, seed=10)
    answer = list(engine.generate(first, 8, greedy))[-1].output_ids
    follow_up = first + answer + token_ids(folder, 9, seed=11)
    reused = list(engine.generate(follow_up, 8, greedy))[-1]
    assert reused.metrics["cached_prompt_tokens"] > 0
    assert reused.output_ids == list(fresh.generate(follow_up, 8, greedy))[-1].output_ids


def test_greedy_generation_equals_argmax_of_full_recompute(folders):
    folder = folders["rope"]
    engine = load(folder)
    prompt = token_ids(folder, 6, seed=7)
    greedy = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    events = list(engine.generate(prompt, 55, greedy))
    output = events[-1].output_ids
    eos = set(engine.defaults.eos_token_ids)
    reference = load(folder)
    expected, ids = [], list(prompt)
    while len(expected) < 55:
        token = int(reference.model(torch.tensor(ids), 0).argmax())
        expected.append(token)
        ids.append(token)
        if token in eos:
            break
    assert output == expected


def test_every_weights_format_gives_identical_logits(folders):
    ids = token_ids(folders["fmt-safetensors"], 24, seed=8)
    logits = {fmt: step_logits(load(folders[f"fmt-{fmt}"]), ids) for fmt in WEIGHT_FORMATS}
    for fmt in WEIGHT_FORMATS:
        assert torch.equal(logits[fmt], logits["safetensors"]), fmt
    expected = llama_logits(llama_reference(folders["fmt-safetensors"], norm_head=True), ids)
    assert_close(logits["safetensors"], expected)
