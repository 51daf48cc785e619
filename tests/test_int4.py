"""Group-wise int4 weights (inference.cpu.int4, csrc/int4.h) against float references, and --quantize int4 end to end."""
from __future__ import annotations

import ctypes
import subprocess

import pytest
import torch
import torch.nn.functional as F

from inference.cpu import kernels as cpu_kernels
from inference.cpu.fused import FusedDecoder
from inference.cpu.int4 import GROUP, Int4Linear, dequantize, quantize_groups
from inference.cpu.int8 import Int8Linear
from inference.engine import Engine
from inference.errors import DeviceError
from testkit.markers import needs_demo_model

needs_kernels = pytest.mark.skipif(cpu_kernels.load() is None, reason="no C compiler / vector ISA for the CPU kernels")
TOLERANCE = 2e-4  # relative error of the C products vs float64 (15-bit activations: up to 7e-5 measured)


@pytest.fixture(scope="module")
def folders(quant_folders):
    return quant_folders


def test_round_trip_is_within_half_a_step_per_group():
    """|dequantized - w| <= d/2 + the fp16 rounding of d and m (2^-11 relative each, 16 steps of d)."""
    w = torch.randn(70, 100) * torch.logspace(-3, 1, 70)[:, None]  # K = 100: a padded last group
    w[5] = 0.0  # a constant group must not divide by zero
    w[6] = torch.rand(100) + 3.0  # all positive, far from zero
    q, d, m = quantize_groups(w)
    assert q.dtype == torch.uint8 and q.max() <= 15 and q.shape == (70, 128) and d.shape == (70, 128 // GROUP)
    got = dequantize(q, d, m, 100, torch.float32)
    step = d.float().repeat_interleave(GROUP, dim=1)[:, :100]
    low = m.float().abs().repeat_interleave(GROUP, dim=1)[:, :100]
    assert ((got - w).abs() <= 0.5 * step + 2 ** -11 * (low + 16 * step) + 1e-7).all()
    assert torch.equal(got[5], torch.zeros(100))


@needs_kernels
@pytest.mark.parametrize("rows,cols", [(48, 64), (50, 150), (16, 6), (203, 1000)])
def test_packed_rows_arriving_in_split_blocks_equal_the_row_major_layer(rows, cols):
    """Rows copied in blocks of 7 (splitting 16-row tiles) give the same matrix as one row-major copy."""
    lib = cpu_kernels.load()
    w = torch.randn(rows, cols)
    packed = Int4Linear(rows, cols, lib)
    for start in range(0, rows, 7):
        packed.copy_rows(start, w[start:start + 7], block_rows=5)
    plain = Int4Linear.from_weight(w, None)
    assert packed.packed and not plain.packed
    for a, b in zip(packed.row_major(), plain.row_major()):
        assert torch.equal(a, b)
    reference = plain.dequantized(torch.float32)
    # the C dequantization (a bf16 copy) rounds d * q + m to bf16 once
    assert ((packed.dequantized(torch.bfloat16).float() - reference).abs() <= reference.abs() * 2 ** -8 + 1e-6).all()


@needs_kernels
@pytest.mark.parametrize("rows,cols", [(48, 64), (37, 150), (256, 1536)])
def test_c_product_matches_float64_of_the_dequantized_matrix(rows, cols):
    """Decode (gemv_int4) and prefill (gemm_int4), both with the activation as 15-bit integers per group of 32,
    within 0.02 % of the float64 product of the same dequantized matrix (norm of the error / norm of the result;
    measured up to 0.007 %; an int8 activation errs about 0.5 %)."""
    lib = cpu_kernels.load()
    layer = Int4Linear.from_weight(torch.randn(rows, cols), lib)
    weight = layer.dequantized(torch.float32).double()
    for _ in range(3):
        x = torch.randn(cols).to(torch.bfloat16)
        exact = weight @ x.double()
        got = layer(x, torch.float32).double()
        assert (got - exact).norm() <= TOLERANCE * exact.norm()
    xs = torch.randn(13, cols).to(torch.bfloat16)
    exact = xs.double() @ weight.T
    assert (layer(xs, torch.float32).double() - exact).norm() <= TOLERANCE * exact.norm()


def _rows_alone(layer, xs, dtype):
    return torch.stack([layer(x, dtype) for x in xs])


@needs_kernels
@pytest.mark.parametrize("rows,cols", [(48, 64), (37, 150), (203, 1000), (64, 4096)])
def test_prefill_rows_are_bitwise_the_decode_rows(rows, cols):
    """gemm_int4 on M rows (blocks of 8, 4 and 1, tiles cut by N, K padded) gives each row exactly what
    gemv_int4 gives it alone (the fused decode step runs the same tile_int4), bf16 and float32 outputs."""
    lib = cpu_kernels.load()
    layer = Int4Linear.from_weight(torch.randn(rows, cols), lib)
    scale = torch.logspace(-3, 3, cols)[torch.randperm(cols, generator=torch.Generator().manual_seed(1))]
    for m in (2, 5, 8, 13, 20):
        xs = (torch.randn(m, cols) * scale).to(torch.bfloat16)
        xs[0, : cols // 2] = 0.0  # all-zero groups: scale 1, sum 0
        for dtype in (torch.float32, torch.bfloat16):
            assert torch.equal(layer(xs.view(1, m, cols), dtype)[0], _rows_alone(layer, xs, dtype))


def _build_int4(tmp_path, name, flags):
    """csrc/int4.c alone, compiled with the kernels' flags plus `flags` (an instruction-set fallback)."""
    out = tmp_path / f"{name}.so"
    src = cpu_kernels.SOURCE_DIR
    subprocess.run(["cc", *cpu_kernels.CFLAGS, *flags, f"-I{src}", str(src / "int4.c"), "-o", str(out), "-lm"],
                   check=True, capture_output=True, timeout=120)
    lib = ctypes.CDLL(str(out))
    p, i = ctypes.c_void_p, ctypes.c_int64
    lib.gemv_int4.argtypes = [p, p, p, p, p, i, i, i, ctypes.c_int]
    lib.gemm_int4.argtypes = [p, p, p, p, p, i, i, i, i, ctypes.c_int]
    lib.int4_layout.restype = ctypes.c_int
    return lib


@needs_kernels
@pytest.mark.parametrize("name,flags", [("avx2", ["-mno-avx512f"]), ("scalar", ["-mno-avx2", "-mno-fma"])])
def test_fallback_builds_give_bitwise_equal_rows_and_stay_near_float(tmp_path, name, flags):
    """The AVX2 (maddubs) and scalar paths of int4.h: prefill rows bitwise equal decode rows, both within
    TOLERANCE of float64, and within float32 rounding of the native build (the integer sums are exact everywhere)."""
    lib, native = _build_int4(tmp_path, name, flags), cpu_kernels.load()
    rows, cols, m = 40, 200, 11
    layer = Int4Linear.from_weight(torch.randn(rows, cols), native)
    xs = torch.randn(m, cols).to(torch.bfloat16)
    args = (layer.qweight.data_ptr(), layer.scales.data_ptr(), layer.mins.data_ptr())
    together = torch.empty(m, rows)
    assert lib.gemm_int4(*args, xs.data_ptr(), together.data_ptr(), m, rows, cols, layer.padded_in, 1) == 0
    alone = torch.empty(m, rows)
    for i in range(m):
        assert lib.gemv_int4(*args, xs[i].data_ptr(), alone[i].data_ptr(), rows, cols, layer.padded_in, 1) == 0
    assert torch.equal(together, alone)
    exact = xs.double() @ layer.dequantized(torch.float32).double().T
    assert (together.double() - exact).norm() <= TOLERANCE * exact.norm()
    assert torch.allclose(together, layer(xs, torch.float32), rtol=1e-5, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize("name", ["rope", "alibi"])
def test_int4_engine_logits_follow_float32(folders, name):
    """Random-weight models (harder than trained ones: no structure): int4 logits have cosine > 0.98 with
    float32's on prefill and on each fused decode step, which equals the step-by-step path."""
    from inference.modeling import weight_copy

    exact = Engine.load(folders[name], device="cpu", dtype="float32")
    weight_copy_block = weight_copy.COPY_BLOCK_BYTES
    try:
        weight_copy.COPY_BLOCK_BYTES = 4096  # several row blocks per matrix while quantizing on load
        int4 = Engine.load(folders[name], device="cpu", dtype="bfloat16", quantize="int4")
    finally:
        weight_copy.COPY_BLOCK_BYTES = weight_copy_block
    assert int4.kernels["fused_decode"] and isinstance(int4.model, FusedDecoder)
    layers = [m for m in int4.model.modules() if isinstance(m, (Int4Linear, Int8Linear))]
    assert sum(isinstance(m, Int4Linear) for m in layers) == 5 * int4.config.num_layers
    assert isinstance(int4.model.lm_head, Int8Linear)  # the head stays int8
    ids = torch.randint(3, int4.config.vocab_size, (24,), generator=torch.Generator().manual_seed(5)).tolist()

    def run(engine):
        rows = [engine.model(torch.tensor(ids[:8]), 0)]
        rows += [engine.model(torch.tensor([ids[i]]), i) for i in range(8, len(ids))]
        return torch.stack(rows)

    reference, fused = run(exact), run(int4)
    assert F.cosine_similarity(fused, reference, dim=-1).min() > 0.98
    int4.model = int4.model.decoder  # the same weights without the fused C step
    stepwise = run(int4)
    assert F.cosine_similarity(fused, stepwise, dim=-1).min() > 0.9999


@needs_kernels
@pytest.mark.parametrize("name", ["rope", "alibi"])
def test_int4_logits_do_not_depend_on_how_many_positions_are_computed_together(folders, name):
    """With gemm_int4's decode numerics, a position's int4 logits are bitwise the same from one prefill of the
    whole prompt, from a prefill of its first part and then fused decode steps, and from a prefill in two
    chunks (the prefix cache's case)."""
    engine = Engine.load(folders[name], device="cpu", dtype="bfloat16", quantize="int4")
    model = engine.model
    ids = torch.randint(3, engine.config.vocab_size, (21,), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        whole = model(ids, 0, all_logits=True).float()
        model(ids[:16], 0)
        stepped = torch.stack([model(ids[i:i + 1], i).float().reshape(-1) for i in range(16, 21)])
        model(ids[:9], 0)
        chunked = model(ids[9:], 9, all_logits=True).float()
    assert torch.equal(stepped, whole[16:])
    assert torch.equal(chunked, whole[9:])


def test_memory_plan_counts_int4_and_refuses_in_one_sentence(folders):
    from inference.modeling.config import load_folder_config
    from inference.modeling.memory_plan import MemoryPlan

    config, _ = load_folder_config(folders["rope"])
    plans = {q: MemoryPlan.measure(config, 256, torch.bfloat16, q, torch.device("cpu")) for q in (None, "int8", "int4")}
    assert plans["int4"].weights < plans["int8"].weights < plans[None].weights
    engine = Engine.load(folders["rope"], device="cpu", dtype="bfloat16", quantize="int4", max_seq_len=256)
    held = sum(t.numel() * t.element_size() for t in engine.model.buffers() if t.dtype in (torch.uint8, torch.float16))
    assert held <= plans["int4"].weights
    small = MemoryPlan(plans[None].device, 256, plans[None].weights, plans[None].kv_cache, plans[None].tables,
                       plans[None].weights // 2, plans[None].per_position)
    with pytest.raises(DeviceError) as info:
        small.check()
    message = str(info.value)
    assert "\n" not in message and message.count(". ") == 0 and "int4" in message


@needs_kernels
@needs_demo_model
def test_demo_france_answer_at_int4():
    engine = Engine.load(None, device="cpu", dtype="bfloat16", quantize="int4")
    assert engine.kernels["fused_decode"]
    greedy = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    finish = list(engine.chat([{"role": "user", "content": "What is the capital of France?"}], 24, greedy))[-1]
    assert finish.text == "The capital of France is Paris."
