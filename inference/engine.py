"""The Engine: loads a model folder (or the demo model) and streams chat answers; shared by GUI, CLI, bench, tests."""
from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from .modeling.config import GenerationDefaults, ModelConfig
from .text.detokenizer import IncrementalDetokenizer
from . import cpu, npu, parallel
from .device import dtype_name, resolve_device, resolve_dtype, synchronizer
from .errors import Cancelled, DeviceError, InputError, ModelOutputError  # noqa: F401 - Cancelled: part of this API
from .events import ChatStarted, FinishEvent, TokenEvent
from .fair_lock import FairLock
from .modeling.memory_plan import MemoryPlan
from .modeling.model import CausalLM
from .cpu.quant_cache import QuantCache
from .sampling import Sampler, SamplingParams
from .torch_guard import is_out_of_memory

Progress = Callable[[float, str], None]


class ContextLengthError(InputError):
    """Prompt + requested answer exceed MAX_SEQ_LEN and the caller asked for no truncation (the API's 400)."""


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Engine:
    """A loaded model with its tokenizer, chat rule and KV cache; generate() streams tokens."""

    def __init__(self, *, model: torch.nn.Module, tokenizer, chat_format, defaults: GenerationDefaults, name: str,
                 is_demo: bool, device: torch.device, source: str, load_seconds: float = 0.0,
                 sync: Callable[[], None] | None = None):
        self.model, self.tokenizer, self.chat_format = model, tokenizer, chat_format
        self.config: ModelConfig = model.config
        self.defaults, self.name, self.is_demo, self.source = defaults, name, is_demo, source
        self.torch_device = device
        self.device, self.dtype = device.type, dtype_name(next(model.parameters()).dtype)
        self.max_seq_len = model.max_seq_len
        self.load_seconds = load_seconds
        self._sync = sync or synchronizer(device)  # timings wait for the device's queued work
        self.quantize: str | None = None  # "int8" or "int4" when the linear layers hold quantized weights
        self.kernels: dict = {}  # what inference.cpu.accelerate installed
        self._cached_ids: list[int] = []  # tokens whose keys/values are valid in the KV cache
        self._lock = FairLock()

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: str | Path | None = None, device: str = "auto", dtype: str = "auto",
             max_seq_len: int | None = None, progress: Progress | None = None,
             cancel: threading.Event | None = None, quantize: str | None = None,
             before_allocate: Callable[[MemoryPlan], None] | None = None, npu_ops=None,
             tensor_parallel: int = 1) -> "Engine":
        """Load a Baichuan model folder, or the demo model when model_dir is None.

        quantize="int8" stores every linear layer (lm_head included) as weight-only int8 with one scale per
        output row (decode reads half the bytes of bf16); quantize="int4" as group-wise 4-bit (inference.cpu.int4,
        0.31 of bf16's bytes; lm_head int8); None keeps the dtype's weights. On a CPU, bf16
        models also get the C matrix-vector and decode-attention kernels of inference.cpu. On an Ascend NPU
        the model gets inference.npu's fused ops and NZ weights; npu_ops stands in for torch_npu (tests).

        Nothing is allocated until the config was checked against the weight headers and the memory the
        load needs (weights, KV cache, position tables) against what is free; before_allocate(plan), when
        given, runs just before that check (e.g. to release a previous model that would not fit beside
        this one). Setting `cancel` stops the load at its next step (each config file, the tokenizer, the
        header check, each ~32 MB of weights, each layer's kernel setup) with Cancelled.

        tensor_parallel=N splits the model over N devices of the chosen kind (on the CPU: N processes over
        gloo); this thread is rank 0 and inference.parallel starts and stops the other ranks.
        """
        tp = parallel.loading()  # this load's tensor-parallel rank; parallel.SINGLE (no-op hooks) on one device
        if tensor_parallel != 1 and not tp.active:
            return parallel.load_leader(cls.load, model_dir, device=device, dtype=dtype, max_seq_len=max_seq_len,
                                        progress=progress, cancel=cancel, quantize=quantize,
                                        before_allocate=before_allocate, npu_ops=npu_ops,
                                        tensor_parallel=tensor_parallel)
        from .modeling.loader import load_demo_parts, load_folder_parts

        started = time.perf_counter()
        report = progress or (lambda fraction, message: None)

        def check_cancel():
            if cancel is not None and cancel.is_set():
                raise Cancelled("loading was cancelled")

        torch_device = tp.place(resolve_device(device) if npu_ops is None else npu_ops.device)
        ops = npu.resolve_ops(torch_device, npu_ops)  # None off the NPU path
        if ops is not None:
            torch_dtype = npu.resolve_dtype(dtype)
            quantize = npu.check_quantize(quantize)
            ops.set_device(torch_device)  # before anything is allocated on it
        else:
            torch_dtype = resolve_dtype(dtype, torch_device)
            quantize = cpu.check_quantize(quantize, torch_device)
        loader = load_demo_parts if model_dir is None else load_folder_parts
        check_cancel()
        parts = loader(model_dir, torch_dtype, report, check_cancel)
        seq_len = _check_max_seq_len(max_seq_len, parts.config.model_max_length)
        check_cancel()
        report(0.08, "checking free memory")
        config = tp.shard(parts.config)  # a rank's shape: heads, intermediate size and vocabulary divided
        plan = MemoryPlan.measure(config, seq_len, torch_dtype, quantize, torch_device, ranks=tp.host_ranks)
        if before_allocate is not None:
            before_allocate(plan)
            plan = plan.remeasured()
        plan.check()
        check_cancel()
        report(0.1, "allocating the model")
        try:
            model = CausalLM(config, seq_len, torch_dtype, torch_device, cpu.weight_allocator(torch_device))
            tp.adapt(model)
            cpu.prepare(model, quantize, torch_device)  # int8: quantized as the weights stream in, no bf16 copy
            check_cancel()
            cache = QuantCache.for_load(model_dir, quantize, torch_dtype, torch_device, tp.active or ops is not None)
            if cache is not None:
                report(0.1, "reading the quantized cache")
            restored = cache.restore(model) if cache is not None else set()  # those layers are not read again
            parts.fill(model, lambda f, msg: (check_cancel(), report(0.1 + 0.85 * f, msg)), shard=tp.plan,
                       skip=restored)
            check_cancel()
            model.finish_loading()
            if cache is not None and not restored:
                report(0.95, "saving the quantized cache")
                cache.store(model)
        except Exception as exc:
            if not is_out_of_memory(exc):  # CUDA/NPU OutOfMemoryError, or the CPU allocator's RuntimeError
                raise
            model = None  # release what was allocated before reporting
            raise DeviceError(f"out of memory on {torch_device} while loading the model; "
                              "try a smaller --max-seq-len, another dtype or another device") from None
        model.eval()
        tp.install(model)  # tensor parallel: all-reduce after o_proj and down_proj, vocabulary-split embedding and head
        report(0.96, f"quantizing to {quantize}" if quantize else "preparing the fast kernels")
        if ops is not None:  # the fast path, from outside
            model, kernels = npu.accelerate(model, torch_dtype, torch_device, ops)
        else:
            model, kernels = cpu.accelerate(model, torch_dtype, torch_device, quantize, check_cancel)
        model = tp.finish(model)  # rank 0 of N: the model that leads the other ranks through each step
        check_cancel()
        report(1.0, "ready")
        engine = cls(model=model, tokenizer=parts.tokenizer, chat_format=parts.chat_format, defaults=parts.defaults,
                     name=parts.name, is_demo=model_dir is None, device=torch_device, source=parts.source,
                     load_seconds=time.perf_counter() - started, sync=ops.synchronize if ops else None)
        engine.quantize, engine.kernels = quantize, kernels
        return engine

    def info(self) -> dict:
        """What the UI shows about the loaded model."""
        return {"name": self.name, "is_demo": self.is_demo, "device": self.device, "dtype": self.dtype,
                "max_seq_len": self.max_seq_len, "source": self.source, "vocab_size": self.config.vocab_size,
                "load_seconds": round(self.load_seconds, 3), "defaults": self.defaults.__dict__.copy(),
                "quantize": self.quantize, "kernels": dict(self.kernels),
                "tensor_parallel": getattr(getattr(self.model, "group", None), "world", 1)}

    def close(self) -> None:
        """Stop what the model holds outside this thread (tensor-parallel worker ranks); dropping the engine
        does the same, later."""
        close = getattr(self.model, "close", None)
        if close is not None:
            close()

    # ---- requests ------------------------------------------------------------------------------
    def default_sampling(self, **overrides) -> SamplingParams:
        return SamplingParams.from_defaults(self.defaults, **overrides)

    def encode_chat(self, messages: list[dict], max_new_tokens: int | None = None, truncate: bool = True):
        """Chat ids for messages under the model's chat rule (rounds dropped to fit MAX_SEQ_LEN).

        truncate=False (the API's way, as vLLM): nothing is dropped; ContextLengthError names the numbers
        when prompt + max_new_tokens exceed MAX_SEQ_LEN, and max_new_tokens None fills what is left.
        """
        if not truncate:
            whole = len(self.chat_format.build(messages, 1, sys.maxsize).input_ids)
            if max_new_tokens is None:
                max_new_tokens = min(self.defaults.max_new_tokens, max(self.max_seq_len - whole, 1))
            if not isinstance(max_new_tokens, bool) and isinstance(max_new_tokens, int) and max_new_tokens >= 1 \
                    and whole + max_new_tokens > self.max_seq_len:
                raise ContextLengthError(
                    f"This model's maximum context length (MAX_SEQ_LEN) is {self.max_seq_len} tokens. However, you "
                    f"requested {whole + max_new_tokens} tokens ({whole} in the messages, {max_new_tokens} in the "
                    "completion). Please reduce the length of the messages or completion.")
        if max_new_tokens is None:
            max_new_tokens = min(self.defaults.max_new_tokens, self.max_seq_len - 1)
        return self.chat_format.build(messages, max_new_tokens, self.max_seq_len)

    @property
    def waiting(self) -> int:
        """How many requests wait for their turn on this engine (not counting the one answering now)."""
        return self._lock.waiting

    @property
    def busy(self) -> bool:
        return self._lock.busy

    def check_request(self, input_ids, max_new_tokens) -> tuple[list[int], int]:
        """Validate ids and lengths against the vocabulary and SEQ_LEN + OUTPUT_SEQ_LEN <= MAX_SEQ_LEN."""
        if not isinstance(input_ids, (list, tuple)):
            raise InputError("input ids must be a list of integers")
        if not input_ids:
            raise InputError("input ids are empty; give at least one token")
        vocab = self.config.vocab_size
        for i in input_ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise InputError(f"input ids must be integers, got {i!r}")
            if not 0 <= i < vocab:
                raise InputError(f"token id {i} is outside the vocabulary (0..{vocab - 1})")
        if max_new_tokens is None:
            max_new_tokens = min(self.defaults.max_new_tokens, self.max_seq_len - len(input_ids))
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(f"max new tokens must be a positive integer, got {max_new_tokens!r}")
        if len(input_ids) + max_new_tokens > self.max_seq_len:
            raise InputError(
                f"SEQ_LEN {len(input_ids)} + OUTPUT_SEQ_LEN {max_new_tokens} = {len(input_ids) + max_new_tokens} "
                f"exceeds MAX_SEQ_LEN {self.max_seq_len}"
            )
        return list(input_ids), max_new_tokens

    def stream_chat(self, messages: list[dict], max_new_tokens: int | None = None,
                    sampling: SamplingParams | None = None, cancel: threading.Event | None = None,
                    truncate: bool = True) -> Iterator[ChatStarted | TokenEvent | FinishEvent]:
        """The one streaming chat entry: ChatStarted, then TokenEvent per token, then one FinishEvent.

        The window's worker, the terminal chat, `ask` and the API server all iterate over it. Input is
        checked before ChatStarted (InputError); the engine is taken in arrival order (see FairLock), and a
        request whose cancel is set while it waits ends with no tokens and finish_reason "cancelled".
        """
        chat_input = self.encode_chat(messages, max_new_tokens, truncate)
        events = self.generate(chat_input.input_ids, chat_input.budget["max_new_tokens"], sampling, cancel)
        yield ChatStarted(chat_input.input_ids, chat_input.budget, chat_input.dropped_rounds)
        yield from events

    def chat(self, messages: list[dict], max_new_tokens: int | None = None, sampling: SamplingParams | None = None,
             cancel: threading.Event | None = None) -> Iterator[TokenEvent | FinishEvent]:
        """stream_chat's token and finish events only."""
        return (e for e in self.stream_chat(messages, max_new_tokens, sampling, cancel)
                if not isinstance(e, ChatStarted))

    # ---- generation ----------------------------------------------------------------------------
    def generate(self, input_ids, max_new_tokens: int | None = None, sampling: SamplingParams | None = None,
                 cancel: threading.Event | None = None) -> Iterator[TokenEvent | FinishEvent]:
        """Prefill (reusing the cached prefix), then decode one token at a time, yielding each as it comes."""
        ids, max_new = self.check_request(input_ids, max_new_tokens)
        params = sampling or self.default_sampling()
        params.validate()
        return self._generate(ids, max_new, params, cancel)

    def _generate(self, ids, max_new, params, cancel) -> Iterator[TokenEvent | FinishEvent]:
        queued_at = time.perf_counter()
        if not self._lock.acquire(cancel):  # cancel counts only while queued behind another request
            yield FinishEvent([], "", "cancelled", {"queued_s": time.perf_counter() - queued_at, "ttft_s": 0.0,
                                                    "prompt_tokens": len(ids), "output_tokens": 0,
                                                    "finish_reason": "cancelled"})
            return
        try:
            sampler = Sampler(params, self.config.vocab_size, self.torch_device, decodable=self.tokenizer.vocab_size)
            sampler.start(ids)
            detok = IncrementalDetokenizer(self.tokenizer)
            eos = set(self.defaults.eos_token_ids)
            reused = min(common_prefix_length(self._cached_ids, ids), len(ids) - 1)
            self._cached_ids = []  # invalid until this forward pass completes
            self._sync()
            started = time.perf_counter()
            try:
                logits = self.model(torch.tensor(ids[reused:], device=self.torch_device), reused)
                token = _pick(sampler, logits)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                raise DeviceError(f"out of memory on {self.torch_device} during prefill; "
                                  "shorten the conversation or lower MAX_SEQ_LEN") from None
            self._sync()
            first_at = time.perf_counter()
            self._cached_ids = list(ids)
            output, pieces, reason = [], [], "length"
            while True:
                output.append(token)
                text = "" if token in eos else detok.push(token)
                pieces.append(text)
                yield TokenEvent(token, text, first_at - started if len(output) == 1 else None)
                if token in eos:
                    reason = "stop"
                    break
                if len(output) >= max_new:
                    break
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                position = len(ids) + len(output) - 1
                try:
                    logits = self.model(torch.tensor([token], device=self.torch_device), position)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    raise DeviceError(f"out of memory on {self.torch_device} while generating; "
                                      "shorten the conversation or lower MAX_SEQ_LEN") from None
                self._cached_ids.append(token)
                token = _pick(sampler, logits)
            pieces.append(detok.flush())  # an incomplete UTF-8 tail, if any, reaches the final text only
            self._sync()
            finished = time.perf_counter()
        finally:
            self._lock.release()
        decode_tokens = len(output) - 1
        metrics = {
            "queued_s": started - queued_at,
            "ttft_s": first_at - started,
            "prefill_tokens": len(ids) - reused,
            "prefill_tokens_per_s": (len(ids) - reused) / max(first_at - started, 1e-9),
            "decode_tokens_per_s": decode_tokens / (finished - first_at) if decode_tokens > 0 else 0.0,
            "prompt_tokens": len(ids),
            "cached_prompt_tokens": reused,
            "output_tokens": len(output),
            "total_s": finished - started,
            "finish_reason": reason,
        }
        yield FinishEvent(output, "".join(pieces), reason, metrics)


NON_FINITE = "the model produced non-finite values (NaN or infinity); its weights may be broken"


def _pick(sampler: Sampler, logits: torch.Tensor) -> int:
    """sampler.pick, refusing NaN or infinite logits (one element checked per step: the chosen one; argmax
    picks a NaN or +inf when there is one, and sampling from such logits fails in multinomial). The ids the
    tokenizer cannot decode are masked to -inf by the sampler, and are not counted as non-finite."""
    try:
        token = sampler.pick(logits)
    except RuntimeError:
        if bool(torch.isfinite(logits[:sampler.decodable]).all()):
            raise
        raise ModelOutputError(NON_FINITE) from None
    if not math.isfinite(float(logits[token])):
        raise ModelOutputError(NON_FINITE)
    return token


def _check_max_seq_len(requested: int | None, model_max: int) -> int:
    if requested is None:
        return model_max
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 2:
        raise InputError(f"MAX_SEQ_LEN must be an integer of at least 2, got {requested!r}")
    if requested > model_max:
        raise InputError(f"MAX_SEQ_LEN {requested} exceeds the model's maximum length {model_max}")
    return requested
