"""FRACTAL_NZ weights: every linear matrix cast once, after loading, to the 310P's private matmul layout.

llama.cpp's CANN backend measured a 7B fp16 model on a 310P at 2.62 tok/s with ND weights and 6.33 tok/s
after casting them to FRACTAL_NZ; vllm-ascend casts its 310P linear weights the same way
(torch_npu.npu_format_cast(w, 29) with torch.npu.config.allow_internal_format = True). The embedding is
a lookup table, not a matmul operand, and stays ND; so does a weight tied to it (the demo model's
lm_head), which the embedding's gather still reads.
"""
from __future__ import annotations

from torch import nn

from ..cpu import _linears, _weight_uses  # the same walk over linear layers and shared weights as the CPU path

#: ACL format id of FRACTAL_NZ (ACL_FORMAT_ND is 2).
ACL_FORMAT_FRACTAL_NZ = 29


def cast_linear_weights(model: nn.Module, ops) -> int:
    """Cast the weight of every bias-free nn.Linear that no other module shares; returns how many."""
    ops.allow_internal_format(True)  # without it torch_npu keeps (or converts back to) ND
    uses = _weight_uses(model)
    count = 0
    for parent, name, linear in list(_linears(model)):
        if uses[id(linear.weight)] != 1:
            continue  # tied to the embedding
        linear.weight = nn.Parameter(ops.npu_format_cast(linear.weight.data, ACL_FORMAT_FRACTAL_NZ),
                                     requires_grad=False)
        count += 1
    return count
