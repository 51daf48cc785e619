"""Which torch.distributed backend joins the ranks (gloo on the CPU, NCCL on CUDA, HCCL on Ascend) and which
device each rank uses; one-line errors for a backend that is missing or fewer devices than ranks."""
from __future__ import annotations

import importlib.util
import os

import torch

from ..env import get_env
from ..errors import DeviceError

BACKENDS = {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}
KNOWN = ("gloo", "nccl", "hccl")


def choose_backend(device: torch.device) -> str:
    """The backend for ranks on `device`'s kind ($BAICHUAN_CHAT_TP_BACKEND overrides), checked available."""
    backend = (get_env("BAICHUAN_CHAT_TP_BACKEND") or BACKENDS.get(device.type, "")).lower()
    if backend not in KNOWN:
        raise DeviceError(f"unknown tensor-parallel backend {backend!r}; choose gloo (CPU), nccl (CUDA) or hccl (NPU)")
    import torch.distributed as dist

    if not dist.is_available():
        raise DeviceError("this torch build has no torch.distributed; tensor parallel cannot run")
    if backend == "gloo" and not dist.is_gloo_available():
        raise DeviceError("this torch build has no gloo backend; tensor parallel on the CPU cannot run")
    if backend == "nccl" and not dist.is_nccl_available():
        raise DeviceError("this torch build has no NCCL backend; tensor parallel on CUDA GPUs cannot run")
    if backend == "hccl" and importlib.util.find_spec("torch_npu") is None:
        raise DeviceError("the HCCL backend needs torch_npu (and CANN); install it to split over Ascend NPUs")
    return backend


def device_count(kind: str) -> int:
    """Devices of this kind a rank can take: CPU cores (one rank process each at least), GPUs or NPUs."""
    if kind == "cpu":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if kind == "cuda":
        return torch.cuda.device_count()
    if kind == "npu":
        return torch.npu.device_count()
    return 0


def check_devices(device: torch.device, world: int) -> None:
    have = device_count(device.type)
    if have < world:
        what = {"cpu": "CPU cores", "cuda": "CUDA GPUs", "npu": "NPUs"}.get(device.type, f"{device.type} devices")
        raise DeviceError(f"--tensor-parallel {world} needs {world} {what} but only {have} "
                          f"{'is' if have == 1 else 'are'} available")


def place(device: torch.device, rank: int) -> torch.device:
    """Rank `rank`'s device: the CPU for every rank, else device index `rank` of the visible ones
    (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES choose which physical devices those are)."""
    return device if device.type == "cpu" else torch.device(device.type, rank)


def select(device: torch.device) -> None:
    """Make `device` the process's current one before the backend starts (NCCL and HCCL need it)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif device.type == "npu":
        torch.npu.set_device(device)


def threads_per_rank(device: torch.device, world: int) -> int:
    """CPU threads each rank may use: the cores shared out (ranks on devices keep a few for the host)."""
    return max(1, device_count("cpu") // world) if device.type == "cpu" else max(1, min(4, device_count("cpu")))
