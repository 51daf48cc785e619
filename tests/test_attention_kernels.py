"""The C prefill-attention kernel (causal over a KV cache, with a cached prefix) against float32 SDPA."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inference.cpu import kernels as cpu_kernels

pytestmark = pytest.mark.skipif(cpu_kernels.load() is None, reason="no C compiler / vector ISA for the CPU kernels")


def reference(q, k_cache, v_cache, start, slopes):
    """Float32 SDPA with the mask and ALiBi bias written out: query i sits at position start + i."""
    length, heads, _ = q.shape
    end = start + length
    group = heads // k_cache.shape[0]
    keys = k_cache[:, :end].float().repeat_interleave(group, 0)
    values = v_cache[:, :end].float().repeat_interleave(group, 0)
    q_pos, k_pos = torch.arange(start, end)[:, None], torch.arange(end)[None, :]
    bias = torch.zeros(heads, length, end) if slopes is None else slopes[:, None, None] * (k_pos - q_pos).float()
    bias = bias.masked_fill(k_pos > q_pos, float("-inf"))
    return F.scaled_dot_product_attention(q.float().transpose(0, 1), keys, values, attn_mask=bias).transpose(0, 1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("heads,kv_heads,dim,start,length,alibi", [
    (4, 4, 64, 0, 5, False),      # a fresh prompt shorter than one query block
    (9, 3, 64, 7, 13, False),     # grouped-query heads (the demo model's layout), a cached prefix
    (6, 6, 32, 30, 17, True),     # ALiBi, a head size below one vector
    (5, 5, 40, 100, 40, True),    # a head size that is not a multiple of 16
    (4, 4, 48, 20, 9, False),     # an odd number of 16-wide blocks: one pair product on a single block
    (8, 2, 128, 333, 70, False),  # Baichuan2-7B's head size
])
def test_prefill_attention_kernel_matches_sdpa(heads, kv_heads, dim, start, length, alibi, dtype):
    lib = cpu_kernels.load()
    gen = torch.Generator().manual_seed(heads * 1000 + start)
    positions = 512
    k_cache = torch.randn(kv_heads, positions, dim, generator=gen).to(dtype)
    v_cache = torch.randn(kv_heads, positions, dim, generator=gen).to(dtype)
    q = torch.randn(length, heads, dim, generator=gen).to(dtype)
    slopes = torch.tensor([2.0 ** -(i + 1) for i in range(heads)]) if alibi else None
    out = cpu_kernels.attn_prefill(lib, q, k_cache, v_cache, start, dim ** -0.5, slopes)
    expected = reference(q, k_cache, v_cache, start, slopes)
    assert out.shape == q.shape and out.dtype == dtype
    tolerance = 0.01 if dtype == torch.bfloat16 else 1e-5  # bf16 output rounding; float32 summation order
    assert (out.float() - expected).abs().max() <= tolerance * expected.abs().max()
    shifted = cpu_kernels.attn_prefill(lib, q, k_cache, v_cache, start + 1, dim ** -0.5, slopes)
    assert (shifted.float() - expected).abs().max() > 0.05  # the offset of the causal mask matters


ALLOCATION_FAILURE = """
import resource, torch
from inference.cpu import kernels as cpu_kernels
lib = cpu_kernels.load()
cpu_kernels.BATCH_INVARIANT = False  # the blocked kernel, whose packed keys need 8 MB
q, cache = torch.zeros(16, 1, 4096), torch.zeros(1, 512, 4096)  # float32: 512 packed keys need 8 MB
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (2 << 20), resource.RLIM_INFINITY))
try:
    cpu_kernels.attn_prefill(lib, q, cache, cache, 496, 1.0, None)
    print("no error")
except MemoryError as exc:
    print("MemoryError:", exc)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print("after:", cpu_kernels.attn_prefill(lib, q, cache, cache, 496, 1.0, None).shape == q.shape)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")
def test_a_failed_scratch_allocation_is_a_memory_error_not_a_crash():
    """Under an address-space limit the kernel's scratch malloc fails: MemoryError (which the engine reports as
    out of memory in one sentence), and the same call works once memory is back."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", ALLOCATION_FAILURE], capture_output=True, text=True, timeout=120,
                            cwd=root, env={"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["MemoryError: out of memory in the CPU kernels", "after: True"]
