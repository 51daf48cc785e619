"""The user-facing choices, named once (no torch): devices, dtypes and quantization modes.

The CLI's flags, the window's model dialog and `--help` of both programs list these; inference.device maps
them to torch objects and inference.cpu validates quantization against the device.
"""
DEVICES = ("auto", "npu", "cuda", "cpu")
DTYPES = ("auto", "float16", "bfloat16", "float32")
QUANTIZE = ("none", "int8", "int4")
