"""The batch-invariant prefill attention (tiles of query rows, inference/cpu/csrc/attention_rows.c) against the
decode step's attention (attend_head, reached through attn_decode) row by row, bit for bit: rows not a multiple
of the tile, keys not a multiple of the 16-key block, cached-prefix offsets, grouped heads; bf16 and float32,
RoPE (no bias) and ALiBi slopes; head sizes on the tiled path (multiples of 16) and off it (per-row fallback)."""
from __future__ import annotations

import pytest
import torch

from inference.cpu import kernels as cpu_kernels

pytestmark = pytest.mark.skipif(cpu_kernels.load() is None, reason="no C compiler / vector ISA for the CPU kernels")


def decode_rows(lib, q, k_cache, v_cache, start, scale, slopes):
    """Each query row i alone, as a decode step at position start + i sees it."""
    out = torch.empty_like(q)
    for i in range(q.shape[0]):
        cpu_kernels.attn_decode(lib, q[i].contiguous(), k_cache, v_cache, start + i + 1, scale, slopes, out[i])
    return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("alibi", [False, True])
@pytest.mark.parametrize("heads,kv_heads,dim,start,length", [
    (3, 3, 128, 0, 1),      # one row, one key
    (4, 2, 128, 0, 23),     # rows not a multiple of the tile, keys not a multiple of 16, grouped heads
    (2, 2, 64, 13, 6),      # a cached prefix that ends inside a key block
    (2, 1, 48, 31, 17),     # a head size of 1.5 bf16 pair vectors
    (2, 2, 256, 5, 37),     # the largest head size on the tiled path
    (2, 2, 40, 9, 11),      # off the tiled path: attend_head per row
])
def test_prefill_rows_equal_decode_rows_bitwise(heads, kv_heads, dim, start, length, alibi, dtype):
    lib = cpu_kernels.load()
    gen = torch.Generator().manual_seed(dim * 100 + start + length)
    positions = start + length + 5
    k_cache = torch.randn(kv_heads, positions, dim, generator=gen).to(dtype)
    v_cache = torch.randn(kv_heads, positions, dim, generator=gen).to(dtype)
    q = (3 * torch.randn(length, heads, dim, generator=gen)).to(dtype)
    slopes = torch.tensor([2.0 ** -(i + 1) for i in range(heads)]) if alibi else None
    scale = dim ** -0.5
    assert cpu_kernels.BATCH_INVARIANT
    prefill = cpu_kernels.attn_prefill(lib, q, k_cache, v_cache, start, scale, slopes)
    expected = decode_rows(lib, q, k_cache, v_cache, start, scale, slopes)
    assert torch.equal(prefill, expected)
    for cut in {1, length // 2, length - 1} - {0}:  # the same rows after a longer cached prefix
        later = cpu_kernels.attn_prefill(lib, q[cut:], k_cache, v_cache, start + cut, scale, slopes)
        assert torch.equal(later, expected[cut:])
