"""Weight-only int8, the CPU matrix-vector / decode-attention kernels, and the --quantize option, against references."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inference.cpu import kernels as cpu_kernels
from inference.engine import Engine
from inference.errors import DeviceError, InputError
from inference.cpu import CpuLinear, Int8Linear, check_quantize, optimize_linears
from inference.cpu.fused import FusedDecoder
from inference.cpu.int8 import quantize_int8
from testkit.markers import needs_demo_model

ROOT = Path(__file__).resolve().parent.parent
needs_kernels = pytest.mark.skipif(cpu_kernels.load() is None, reason="no C compiler / vector ISA for the CPU kernels")


@pytest.fixture(scope="module")
def folders(quant_folders):
    return quant_folders


def step_logits(engine: Engine, ids: list[int], prefill: int = 1) -> torch.Tensor:
    """Logits after a prefill of `prefill` tokens, then one cached decode step per remaining token."""
    rows = [engine.model(torch.tensor(ids[:prefill]), 0)]
    rows += [engine.model(torch.tensor([ids[i]]), i) for i in range(prefill, len(ids))]
    return torch.stack(rows)


def ids_for(engine: Engine, n: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, engine.config.vocab_size, (n,), generator=gen).tolist()


# ---- the int8 format --------------------------------------------------------------------------------
def test_int8_round_trip_is_within_half_a_step_per_row():
    w = torch.randn(300, 70) * torch.logspace(-3, 1, 300)[:, None]
    w[7] = 0.0  # an all-zero row must not divide by zero
    q, scale = quantize_int8(w, block_rows=64)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and scale.dtype == torch.float32
    err = (q.float() * scale[:, None] - w).abs()
    assert (err <= scale[:, None] / 2 + 1e-7).all()
    assert torch.equal(q[7], torch.zeros(70, dtype=torch.int8))


@pytest.mark.parametrize("use_kernels", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("columns", [150, 160])  # 160: aten's int8 matmul takes it when the C kernel is off
def test_int8_linear_matches_its_dequantized_matrix(monkeypatch, use_kernels, dtype, columns):
    if not use_kernels:
        monkeypatch.setenv("BAICHUAN_NO_CPU_KERNELS", "1")
    lib = cpu_kernels.load()
    w = torch.randn(203, columns)
    layer = Int8Linear.from_weight(w, lib)
    reference_weight = layer.dequantized(torch.float32)
    for rows in (1, 5):
        x = torch.randn(rows, columns).to(dtype)
        expected = F.linear(x.float(), reference_weight)
        got = layer(x)
        assert got.dtype == dtype and got.shape == (rows, 203)
        # bf16 outputs / activations round at 2^-8; the kernel carries x as int16 (finer than bf16)
        assert (got.float() - expected).abs().max() <= 0.02 * expected.abs().max()


@needs_kernels
def test_bf16_kernel_matches_f_linear():
    lib = cpu_kernels.load()
    for n, k in ((1, 7), (37, 33), (203, 1000), (64, 576)):
        linear = torch.nn.Linear(k, n, bias=False).to(torch.bfloat16)
        fast = CpuLinear(linear, lib)
        assert fast.weight is linear.weight  # same parameter, no copy
        x = torch.randn(1, k).to(torch.bfloat16)
        exact = F.linear(x.float(), linear.weight.float())
        assert (fast(x).float() - exact).abs().max() <= 2 ** -7 * exact.abs().max() + 1e-6
        xs = torch.randn(4, k).to(torch.bfloat16)
        several = fast(xs)
        # several rows: each row exactly as the one-row kernel gives it (batch invariance), close to F.linear
        assert torch.equal(several, torch.cat([fast(row[None]) for row in xs]))
        reference = F.linear(xs.float(), linear.weight.float())
        assert (several.float() - reference).abs().max() <= 2 ** -7 * reference.abs().max() + 1e-6


@needs_kernels
@pytest.mark.parametrize("rows,cols", [(48, 64), (32, 1030), (16, 6)])
def test_packed_int8_layer_equals_the_row_major_one(rows, cols):
    """16-row packed int8 (the C kernels' layout) gives bit-identical products and the same matrix."""
    lib = cpu_kernels.load()
    weight = torch.randn(rows, cols)
    packed = Int8Linear(rows, cols, lib)
    for start in range(0, rows, 7):  # rows arriving in blocks that split tiles, as the loader's blocks may
        packed.copy_rows(start, weight[start:start + 7])
    plain = Int8Linear.from_weight(weight, lib)
    plain.packed = False
    plain.copy_rows(0, weight)
    assert packed.packed == bool(lib.int8_packing()) and not plain.packed
    assert not packed.packed or not torch.equal(packed.qweight, plain.qweight)  # really another layout
    assert torch.equal(packed.row_major(), plain.qweight) and torch.equal(packed.scales, plain.scales)
    x = torch.randn(1, cols).to(torch.bfloat16)
    assert torch.equal(packed(x), plain(x)) and torch.equal(packed.logits(x), plain.logits(x))
    assert torch.equal(packed.dequantized(torch.bfloat16), plain.dequantized(torch.bfloat16))
    assert torch.equal(packed.dequantized(torch.float32), plain.dequantized(torch.float32))
    xs = torch.randn(13, cols).to(torch.bfloat16)  # prefill: the packed C product, no dequantized matrix
    exact = (xs.double() @ plain.qweight.double().T) * plain.scales.double()
    for layer in (packed, plain):
        assert (layer(xs).double() - exact).abs().max() <= 2 ** -7 * exact.abs().max()


@needs_kernels
@pytest.mark.parametrize("m,n,k", [(13, 48, 64), (25, 32, 11008), (1, 16, 6), (37, 80, 1030)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_int8_prefill_rows_are_the_decode_rows_bitwise(m, n, k, dtype):
    """gemm_int8_rows (prefill) gives each row the bits gemv_int8 (decode) gives it alone: rows not a multiple of
    its row block, an odd number of tiles, K up to 11008, and scales making NaN, infinite and denormal outputs
    (the bf16 store rounds them as f32_to_bf16 does)."""
    lib = cpu_kernels.load()
    if not lib.int8_packing():
        pytest.skip("int8 matrices are not packed on this CPU")
    layer = Int8Linear.from_weight(torch.randn(n, k), lib)
    assert layer.packed
    scales = layer.scales.clone()
    scales[:4] = torch.tensor([float("nan"), float("inf"), 1e-41, 3e38])
    x = (torch.randn(m, k) * torch.logspace(-3, 3, m)[:, None]).to(torch.bfloat16)
    rows = cpu_kernels.gemm_int8_rows(lib, layer.qweight, scales, x, torch.empty(m, n, dtype=dtype))
    for i in range(m):
        alone = cpu_kernels.gemv_int8(lib, layer.qweight, scales, x[i], torch.empty(n, dtype=dtype), packed=True)
        bits = torch.int16 if dtype == torch.bfloat16 else torch.int32
        assert torch.equal(rows[i].view(bits), alone.view(bits)), f"row {i}"


@needs_kernels
@pytest.mark.parametrize("n,k", [(16, 6), (48, 64), (96, 1030)])  # one tile, an odd number of tiles, K % 4 != 0
def test_packed_bf16_layer_matches_float64_products(n, k):
    """A packed bf16 CpuLinear (weight packed in place by 16-row tiles) multiplies one row (decode) and several
    rows (prefill, the packed C product) as F.linear does, to bf16 rounding."""
    lib = cpu_kernels.load()
    if not lib.bf16_packing():
        pytest.skip("no AVX-512-BF16: bf16 weights stay row-major")
    linear = torch.nn.Linear(k, n, bias=False).to(torch.bfloat16)
    exact_weight = linear.weight.double().clone()
    fast = CpuLinear(linear, lib, pack=True)
    assert fast.packed and fast.weight is linear.weight
    assert not torch.equal(linear.weight.double(), exact_weight)  # packed in place: no second copy
    for rows in (1, 2, 12, 13, 30):
        x = torch.randn(rows, k).to(torch.bfloat16)
        exact = x.double() @ exact_weight.T
        for got in (fast(x), fast.logits(x)):
            assert got.shape == (rows, n)
            assert (got.double() - exact).abs().max() <= 2 ** -7 * exact.abs().max() + 1e-6
    assert fast.logits(x).dtype == torch.float32 and fast(x).dtype == torch.bfloat16
    assert torch.equal(fast(x[:1]), fast(x[0]).reshape(1, -1))  # any leading shape


@needs_kernels
def test_float32_kernel_matches_float64_product():
    lib = cpu_kernels.load()
    for n, k in ((1, 7), (37, 33), (203, 1000), (1100, 1024)):
        linear = torch.nn.Linear(k, n, bias=False)
        fast = CpuLinear(linear, lib)
        x = torch.randn(1, k)
        exact = F.linear(x.double(), linear.weight.double())
        got = fast(x)
        assert got.dtype == torch.float32 and fast.logits(x).dtype == torch.float32
        assert (got.double() - exact).abs().max() <= 1e-5 * exact.abs().max()
        xs = torch.randn(4, k)  # several rows: each as the one-row kernel sums it (batch invariance)
        assert torch.equal(fast(xs), torch.stack([fast(row) for row in xs]))
        assert torch.allclose(fast(xs), F.linear(xs, linear.weight), rtol=1e-5, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, 0.02), (torch.float32, 1e-5)])
@pytest.mark.parametrize("heads,kv_heads,length,alibi", [(16, 16, 1, False), (8, 2, 50, True), (6, 6, 333, True),
                                                         (9, 3, 700, False)])
def test_decode_attention_kernel_matches_sdpa(heads, kv_heads, length, alibi, dtype, tolerance):
    lib = cpu_kernels.load()
    dim, positions = 64, 1024
    k_cache = torch.randn(kv_heads, positions, dim).to(dtype)
    v_cache = torch.randn(kv_heads, positions, dim).to(dtype)
    q = torch.randn(heads, dim).to(dtype)
    slopes = torch.tensor([2.0 ** -(i + 1) for i in range(heads)]) if alibi else None
    out = cpu_kernels.attn_decode(lib, q, k_cache, v_cache, length, dim ** -0.5, slopes,
                                  torch.empty(heads, dim, dtype=dtype))
    group = heads // kv_heads
    keys = k_cache[:, :length].float().repeat_interleave(group, 0)
    values = v_cache[:, :length].float().repeat_interleave(group, 0)
    bias = None
    if alibi:
        bias = (slopes[:, None] * (torch.arange(length) - (length - 1)).float())[:, None, :]
    expected = F.scaled_dot_product_attention(q.float()[:, None], keys, values, attn_mask=bias)[:, 0]
    assert (out.float() - expected).abs().max() < tolerance


# ---- engines ----------------------------------------------------------------------------------------
@needs_kernels
@pytest.mark.parametrize("name", ["rope", "alibi"])
def test_bf16_engine_with_kernels_matches_torch_kernels(monkeypatch, folders, name):
    fast = Engine.load(folders[name], device="cpu", dtype="bfloat16")
    assert fast.kernels["cpu_kernels"] and fast.kernels["decode_attention"]
    monkeypatch.setenv("BAICHUAN_NO_CPU_KERNELS", "1")
    plain = Engine.load(folders[name], device="cpu", dtype="bfloat16")
    assert not plain.kernels["cpu_kernels"]
    ids = ids_for(fast, 40, seed=1)
    a, b = step_logits(fast, ids, prefill=5), step_logits(plain, ids, prefill=5)
    assert F.cosine_similarity(a, b, dim=-1).min() > 0.999
    assert (a - b).abs().max() < 0.1 * b.abs().max()


@pytest.mark.parametrize("name", ["rope", "alibi"])
def test_int8_engine_decode_equals_its_full_recompute(folders, name):
    engine = Engine.load(folders[name], device="cpu", dtype="bfloat16", quantize="int8")
    assert engine.quantize == "int8" and engine.info()["quantize"] == "int8"
    assert not any(type(m) is torch.nn.Linear for m in engine.model.modules())
    ids = ids_for(engine, 30, seed=2)
    incremental = step_logits(engine, ids, prefill=6)
    full = torch.stack([engine.model(torch.tensor(ids[:end]), 0) for end in range(6, 31)])
    assert F.cosine_similarity(incremental, full, dim=-1).min() > 0.999
    reference = step_logits(Engine.load(folders[name], device="cpu", dtype="float32"), ids, prefill=6)
    assert F.cosine_similarity(incremental, reference, dim=-1).min() > 0.99


def test_int8_quantization_releases_the_bf16_matrices(folders):
    engine = Engine.load(folders["rope"], device="cpu", dtype="bfloat16", quantize="int8")
    linear_weights = [m for m in engine.model.modules() if isinstance(m, Int8Linear)]
    assert len(linear_weights) == 5 * engine.config.num_layers + 1  # W_pack, o, gate, up, down; lm_head
    assert all(not hasattr(m, "weight") for m in linear_weights)


def test_optimize_linears_leaves_other_dtypes_and_no_compiler_on_torch_kernels(monkeypatch, folders):
    assert optimize_linears(torch.nn.Sequential(torch.nn.Linear(4, 4)), torch.float16, torch.device("cpu"))[
        "layers"] == 0
    monkeypatch.setenv("BAICHUAN_NO_CPU_KERNELS", "1")
    engine = Engine.load(folders["rope"], device="cpu", dtype="float32")
    assert engine.kernels["layers"] == 0 and not engine.kernels["fused_decode"]
    assert any(type(m) is torch.nn.Linear for m in engine.model.modules())


def test_quantize_option_is_validated():
    assert check_quantize(None, torch.device("cpu")) is None
    assert check_quantize("none", torch.device("cpu")) is None
    assert check_quantize("int8", torch.device("cpu")) == "int8"
    assert check_quantize("int4", torch.device("cpu")) == "int4"
    with pytest.raises(InputError, match="int8, int4"):
        check_quantize("int3", torch.device("cpu"))
    with pytest.raises(DeviceError, match="npu"):
        check_quantize("int8", _FakeDevice("npu"))


class _FakeDevice:
    def __init__(self, type_):
        self.type = type_


def test_cli_generate_with_quantize_int8(folders):
    proc = subprocess.run([sys.executable, "-m", "inference", "generate", "--model", str(folders["rope"]),
                           "--input-ids", "[195, 300, 301, 196]", "--max-new-tokens", "4", "--greedy",
                           "--device", "cpu", "--quantize", "int8", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert 1 <= len(result["output_ids"]) <= 4
    bad = subprocess.run([sys.executable, "-m", "inference", "generate", "--model", str(folders["rope"]),
                          "--input-ids", "[1]", "--quantize", "int3"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert bad.returncode != 0 and bad.stderr.startswith("error:")


# ---- the demo model: int8 keeps the greedy answer -------------------------------------------------------
@needs_demo_model
def test_demo_france_answer_is_the_same_in_int8_and_bf16():
    question = [{"role": "user", "content": "What is the capital of France?"}]
    answers = {}
    for quantize in (None, "int8"):
        engine = Engine.load(None, device="cpu", dtype="bfloat16", quantize=quantize)
        greedy = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
        finish = list(engine.chat(question, 24, greedy))[-1]
        answers[quantize] = (finish.output_ids, finish.text)
    assert answers["int8"] == answers[None]
    assert answers[None][1] == "The capital of France is Paris."


@needs_kernels
@pytest.mark.parametrize("rows,size", [(1, 1024), (7, 576), (40, 96)])
def test_rmsnorm_kernel_matches_the_torch_formula(rows, size):
    from inference.modeling.model import RMSNorm

    norm = RMSNorm(size, 1e-6).to(torch.bfloat16)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(size) + 0.5)
    x = (torch.randn(rows, size) * 3).to(torch.bfloat16)
    expected = norm(x)
    got = cpu_kernels.rmsnorm(cpu_kernels.load(), x, norm.weight, 1e-6)
    # same float32 arithmetic up to summation order: at most one bf16 rounding step apart
    assert ((got.float() - expected.float()).abs() <= expected.float().abs() * 2 ** -7 + 1e-6).all()


@needs_kernels
@pytest.mark.parametrize("name", ["rope", "alibi"])
@pytest.mark.parametrize("dtype,quantize", [("bfloat16", None), ("bfloat16", "int8"), ("float32", None)])
def test_fused_decode_step_matches_the_step_by_step_path(folders, name, dtype, quantize):
    """The one-call C decode step computes what the torch modules compute, roundings included."""
    engine = Engine.load(folders[name], device="cpu", dtype=dtype, quantize=quantize)
    assert engine.kernels["fused_decode"] and isinstance(engine.model, FusedDecoder)
    ids = ids_for(engine, 40, seed=5)
    fused = step_logits(engine, ids, prefill=4)
    engine.model = engine.model.decoder  # the same model without its C step
    stepwise = step_logits(engine, ids, prefill=4)
    assert F.cosine_similarity(fused, stepwise, dim=-1).min() > 0.9999
    assert (fused - stepwise).abs().max() <= (1e-5 if dtype == "float32" else 0.02) * stepwise.abs().max()
    assert torch.equal(fused.argmax(-1), stepwise.argmax(-1))


@pytest.mark.parametrize("name", ["rope", "alibi"])
def test_int8_quantized_while_loading_equals_quantizing_the_loaded_matrices(monkeypatch, folders, name):
    """Quantize-on-load (no bf16 copy of the matrices) gives the int8 of the checkpoint's own values (float32
    here, not rounded to bf16 first); NormHead rows are normalised in float32 before quantizing."""
    from inference.modeling import weight_copy

    monkeypatch.setattr(weight_copy, "COPY_BLOCK_BYTES", 4096)  # several row blocks per matrix
    int8 = Engine.load(folders[name], device="cpu", dtype="bfloat16", quantize="int8")
    checkpoint = Engine.load(folders[name], device="cpu", dtype="float32").model
    for prefix, layer in int8.model.named_modules():
        if not isinstance(layer, Int8Linear):
            continue
        weight = checkpoint.get_submodule(prefix).weight
        if prefix == "lm_head":
            rows = layer.dequantized(torch.float32)
            assert torch.allclose(rows.norm(dim=-1), torch.ones(rows.shape[0]), atol=0.02)
            assert F.cosine_similarity(rows, weight.float(), dim=-1).min() > 0.999
        else:
            q, scale = quantize_int8(weight)
            assert torch.equal(layer.row_major(), q) and torch.equal(layer.scales, scale)  # rows in any layout
