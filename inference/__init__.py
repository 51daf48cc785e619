"""Baichuan2 inference engine: loader, tokenizer, chat rule, decoder, sampling, streaming (no Qt)."""
import os as _os

# Ascend's level-2 task queue, unless the user chose a level: torch_npu reads it when imported, and torch's
# backend auto-load imports torch_npu with torch itself, so it is set before anything here imports torch.
_os.environ.setdefault("TASK_QUEUE_ENABLE", "2")
