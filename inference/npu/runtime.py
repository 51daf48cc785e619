"""The NPU runtime seen through one small object: torch_npu's entry points, device choice, sync, graph capture.

TorchNpuOps is built from the real torch_npu at run time; tests hand Engine.load a stand-in with the same
attributes (tests/npu_standin.py). Nothing else in inference/ touches torch_npu's fused ops.
"""
from __future__ import annotations

import importlib
import importlib.util
import os

import torch

from ..env import get_env

#: Ascend's guidance for eager inference: level-2 task queue (operator dispatch pipelined on a second
#: thread). torch_npu reads it when it is imported, so it must be in the environment before that import
#: (inference/__init__.py sets it for the app; torch's backend auto-load imports torch_npu with torch).
TASK_QUEUE_ENV, TASK_QUEUE_LEVEL = "TASK_QUEUE_ENABLE", "2"
GRAPH_ENV = "BAICHUAN_CHAT_NPU_GRAPH"  # "1": try graph capture of the decode step (torchair); default off


def ensure_task_queue() -> str:
    """Set TASK_QUEUE_ENABLE=2 unless the user chose a value; returns the value in force."""
    return os.environ.setdefault(TASK_QUEUE_ENV, TASK_QUEUE_LEVEL)


class TorchNpuOps:
    """The real torch_npu: fused ops, format cast, device, synchronisation, graph compiler."""

    def __init__(self, device: torch.device):
        ensure_task_queue()
        torch_npu = importlib.import_module("torch_npu")
        self.device = device
        self.name = f"torch_npu {getattr(torch_npu, '__version__', '?')}"
        self.npu_format_cast = torch_npu.npu_format_cast
        self.npu_rms_norm = torch_npu.npu_rms_norm
        self.npu_prompt_flash_attention = torch_npu.npu_prompt_flash_attention
        self.npu_incre_flash_attention = torch_npu.npu_incre_flash_attention

    def set_device(self, device: torch.device) -> None:
        torch.npu.set_device(device)

    def synchronize(self) -> None:
        torch.npu.synchronize()

    def allow_internal_format(self, allow: bool) -> None:
        torch.npu.config.allow_internal_format = allow

    def graph_compiler(self):
        """torch.compile with torchair's NPU backend (graph mode, reduce-overhead), or None without torchair."""
        if importlib.util.find_spec("torchair") is None:
            return None
        import torchair

        config = torchair.CompilerConfig()
        config.mode = "reduce-overhead"  # aclgraph: capture once, replay per step
        backend = torchair.get_npu_backend(compiler_config=config)
        return lambda fn: torch.compile(fn, backend=backend, dynamic=False, fullgraph=True)


class GraphDecode(torch.nn.Module):
    """The model with its one-token decode step run through a graph compiler; prefill stays eager.

    Any failure of the compiled step (capture not supported, an op without a graph kernel) switches back
    to eager for good, and `status` says so: the fallback is visible in Engine.info()["kernels"].
    """

    def __init__(self, model: torch.nn.Module, compiler):
        super().__init__()
        self.inner = model
        self.config, self.max_seq_len = model.config, model.max_seq_len
        self._compiled = compiler(model.forward)
        self.status = "graph"

    def forward(self, tokens: torch.Tensor, start: int = 0, all_logits: bool = False) -> torch.Tensor:
        if self._compiled is not None and tokens.shape[0] == 1 and not all_logits:
            try:
                return self._compiled(tokens, start)
            except Exception as exc:  # noqa: BLE001 - any capture failure: eager from here on
                self._compiled, self.status = None, f"eager (graph failed: {type(exc).__name__})"
        return self.inner(tokens, start, all_logits)


def maybe_graph(model: torch.nn.Module, ops) -> tuple[torch.nn.Module, str]:
    """Wrap the model with GraphDecode when BAICHUAN_CHAT_NPU_GRAPH=1 and a compiler exists; (model, status)."""
    if get_env(GRAPH_ENV) != "1":
        return model, f"off (set {GRAPH_ENV}=1 to try)"
    compiler = ops.graph_compiler()
    if compiler is None:
        return model, "unavailable (no torchair)"
    wrapped = GraphDecode(model, compiler)
    return wrapped, wrapped.status
