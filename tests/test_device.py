"""Device and dtype choice: `auto` on this CPU, explicit names, and one-line errors for absent devices."""
import os
import subprocess
import sys

import pytest
import torch

from inference.cpu import kernels as cpu_kernels
from inference.device import resolve_device, resolve_dtype
from inference.errors import DeviceError

PROBE = "from inference.device import resolve_dtype, resolve_device; print(resolve_dtype('auto', resolve_device('auto')))"


def test_auto_picks_the_cpu_without_npu_or_cuda():
    assert resolve_device("auto").type == "cpu"


def test_auto_dtype_is_bf16_only_with_the_fast_kernels():
    expected = torch.bfloat16 if cpu_kernels.load() is not None else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == expected


def test_auto_dtype_without_kernels_is_float32():
    env = dict(os.environ, BAICHUAN_NO_CPU_KERNELS="1")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "torch.float32", out.stderr


def test_explicit_dtypes_and_npu_fp16():
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    npu = type("FakeDeviceForDtypeOnly", (), {"type": "npu"})()  # torch here cannot name an npu device
    assert resolve_dtype("auto", npu) == torch.float16  # 310P has no bf16


@pytest.mark.parametrize("name", ["npu", "cuda", "tpu"])
def test_absent_or_unknown_device_is_one_sentence(name):
    with pytest.raises(DeviceError) as info:
        resolve_device(name)
    assert "\n" not in str(info.value)
