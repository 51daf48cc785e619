"""One benchmark subject in its own process (clean RSS): our engine, transformers, or llama.cpp; prints JSON."""
from __future__ import annotations

import dataclasses
import json
import random
import resource
import sys
import time

RESULT_PREFIX = "BENCH_RESULT "


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """This process's high-water RSS (VmHWM). ru_maxrss is not used: Linux carries it over from the parent
    across fork and exec, so a child of a big process would report the parent's peak."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def reset_peak_rss() -> None:
    """Start a new high-water mark at the current RSS (Linux >= 4.0), so a peak is that of what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def module_bytes(module) -> int:
    """Bytes of a module's parameters and buffers (weights, int8 matrices and scales; tied tensors once)."""
    import itertools

    seen, total = set(), 0
    for t in itertools.chain(module.parameters(), module.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def prompt_ids(length: int, vocab: int, seed: int) -> list[int]:
    """Random in-vocabulary ids that are not special (ids below 1000 are the fixture's real pieces)."""
    rng = random.Random(seed)
    return [rng.randrange(1000, vocab) for _ in range(length)]


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summarise(runs: list[dict]) -> dict:
    """Median of each figure over the repeats, plus the best (lowest TTFT, highest rates) and the raw runs."""
    keys = ("ttft_s", "prefill_tokens_per_s", "decode_tokens_per_s")
    out = {k: _median([r[k] for r in runs]) for k in keys}
    out["best"] = {"ttft_s": min(r["ttft_s"] for r in runs),
                   "prefill_tokens_per_s": max(r["prefill_tokens_per_s"] for r in runs),
                   "decode_tokens_per_s": max(r["decode_tokens_per_s"] for r in runs)}
    out["runs"] = runs
    return out


class BandwidthProbe:
    """A read-bandwidth probe kept resident beside a subject, measured just before and after each shape's
    runs: on a shared machine the bandwidth drifts by half within minutes, so each row's roofline uses
    the bandwidth of its own minutes. A sum over 256 MiB on huge pages (how our weights are held), best
    of three. Its bytes are subtracted from the subject's peak RSS (they stay resident throughout)."""

    def __init__(self, device: str, mib: int = 256):
        import torch

        from inference.cpu.hugepages import empty

        self.buffer = empty(((mib << 20) // 4,), torch.float32, "cpu") if device == "cpu" else None
        if self.buffer is not None:
            self.buffer.fill_(1.0)
        self.nbytes = 0 if self.buffer is None else self.buffer.nbytes

    def measure(self) -> float | None:
        from .model import best_seconds

        return None if self.buffer is None else self.nbytes / best_seconds(self.buffer.sum, 3) / 1e9


# ---- our engine -----------------------------------------------------------------------------------
def _ours_load(spec: dict):
    from inference.engine import Engine

    if spec.get("no_quant_cache"):
        # Every load quantizes from the checkpoint and writes no cache entry (the app has no switch for this;
        # a cache hit would time a file read, a store would add writing GBs to the load).
        from inference.cpu.quant_cache import QuantCache

        QuantCache.for_load = classmethod(lambda cls, *args, **kwargs: None)

    kwargs = {"quantize": spec["quantize"]} if spec.get("quantize") else {}
    engine = Engine.load(spec["folder"], device=spec["device"], dtype=spec["dtype"],
                         max_seq_len=spec.get("max_seq_len"), **kwargs)
    # A benchmark decodes a fixed number of tokens: random weights may pick EOS at any step.
    engine.defaults = dataclasses.replace(engine.defaults, eos_token_ids=())
    return engine


def _ours_generate(engine, ids: list[int], new: int) -> dict:
    params = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    finish = None
    for event in engine.generate(ids, new, params):
        finish = event
    m = finish.metrics
    return {"ttft_s": m["ttft_s"], "prefill_tokens_per_s": m["prefill_tokens_per_s"],
            "decode_tokens_per_s": m["decode_tokens_per_s"], "prompt_tokens": m["prompt_tokens"],
            "cached_prompt_tokens": m["cached_prompt_tokens"], "output_ids": finish.output_ids}


def prefix_cache(engine, vocab: int, turns: int = 10, user_tokens: int = 282, answer_tokens: int = 16,
                 repeats: int = 3) -> dict:
    """TTFT of turn `turns` of a ~3,000-token conversation (prefix reused) vs a fresh prompt of the same new length.

    Built at the id level, as the chat rule lays it out: each round is [195] + user ids + [196] + the answer.
    """
    history: list[int] = []
    for turn in range(turns):
        ids = history + [195] + prompt_ids(user_tokens, vocab, 1000 + turn) + [196]
        if turn == turns - 1:
            break
        result = _ours_generate(engine, ids, answer_tokens)
        history = ids + result["output_ids"]
        previous = list(history[: len(ids)])
    last, followups, fresh = ids, [], []
    for _ in range(repeats):
        _ours_generate(engine, previous, answer_tokens)  # the cache now holds turn 9 and its answer
        run = _ours_generate(engine, last, 1)
        followups.append(run)
        new = run["prompt_tokens"] - run["cached_prompt_tokens"]
        fresh.append(_ours_generate(engine, prompt_ids(new, vocab, 7), 1))
    ttft_turn = _median([r["ttft_s"] for r in followups])
    ttft_fresh = _median([r["ttft_s"] for r in fresh])
    return {"conversation_tokens": len(last), "cached_tokens": followups[0]["cached_prompt_tokens"],
            "new_tokens": followups[0]["prompt_tokens"] - followups[0]["cached_prompt_tokens"],
            "ttft_turn_s": ttft_turn, "ttft_fresh_s": ttft_fresh, "ratio": ttft_turn / ttft_fresh,
            "runs_turn_s": [r["ttft_s"] for r in followups], "runs_fresh_s": [r["ttft_s"] for r in fresh]}


def run_ours(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    reset_peak_rss()
    rss0 = rss_bytes()
    started = time.perf_counter()
    engine = _ours_load(spec)
    load_s = time.perf_counter() - started
    result = {"load_s": load_s, "rss_before_load": rss0, "peak_rss_load": peak_rss_bytes(),
              "rss_after_load": rss_bytes(), "weight_bytes": module_bytes(engine.model),
              "kv_cache_bytes": sum(layer.self_attn.k_cache.nbytes + layer.self_attn.v_cache.nbytes
                                    for layer in engine.model.model.layers),
              "dtype": engine.dtype, "device": engine.device, "kernels": engine.kernels}
    vocab = engine.config.vocab_size

    def generate(ids, new):
        run = _ours_generate(engine, ids, new)
        run.pop("output_ids")
        return run

    result["shapes"], result["probe_bytes"] = measure_shapes(generate, spec, vocab)
    if spec.get("prefix_cache"):
        scale = spec.get("prefix_scale", 1.0)
        result["prefix_cache"] = prefix_cache(engine, vocab, user_tokens=max(4, int(282 * scale)),
                                              answer_tokens=max(2, int(16 * scale)))
    return result


# ---- transformers ---------------------------------------------------------------------------------
class _Clock:
    """A generate() streamer that notes when each new token arrives (the first put() is the prompt)."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def run_hf(spec: dict) -> dict:
    import torch

    from .model import hf_llama

    torch.set_num_threads(spec["threads"])
    import transformers  # noqa: F401  (imported before the RSS baseline, as torch is)

    reset_peak_rss()
    rss0 = rss_bytes()
    started = time.perf_counter()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec["dtype"]]
    model = hf_llama(spec["folder"], dtype).to(spec["device"])
    load_s = time.perf_counter() - started
    result = {"load_s": load_s, "rss_before_load": rss0, "peak_rss_load": peak_rss_bytes(),
              "rss_after_load": rss_bytes(), "dtype": spec["dtype"], "device": spec["device"],
              "weight_bytes": module_bytes(model), "transformers": transformers.__version__}
    vocab = model.config.vocab_size

    def generate(ids, new):
        clock = _Clock()
        x = torch.tensor([ids], device=spec["device"])
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, streamer=clock, pad_token_id=0)
        first, last = clock.times[1], clock.times[-1]
        ttft = first - started
        return {"ttft_s": ttft, "prefill_tokens_per_s": len(ids) / ttft,
                "decode_tokens_per_s": (new - 1) / (last - first) if new > 1 else 0.0}

    result["shapes"], result["probe_bytes"] = measure_shapes(generate, spec, vocab)
    return result


def measure_shapes(generate, spec: dict, vocab: int) -> tuple[dict, int]:
    """Warm up once, then generate(ids, new) -> figures for every shape, `repeats` times each, summarised,
    with the read bandwidth measured just before and after (the row's roofline takes the better one).
    Returns the rows and the probe's resident bytes."""
    generate(prompt_ids(64, vocab, 99), 8)  # warm-up: first calls allocate and pick kernels
    probe = BandwidthProbe(spec.get("device", "cpu"))
    shapes = {}
    for n_in, n_out in spec["shapes"]:
        before = probe.measure()
        runs = [generate(prompt_ids(n_in, vocab, n_in * 10 + rep), n_out) for rep in range(spec["repeats"])]
        after = probe.measure()
        shapes[f"{n_in}x{n_out}"] = summarise(runs)
        if before is not None:
            shapes[f"{n_in}x{n_out}"]["bandwidth_GBps"] = max(before, after)
    return shapes, probe.nbytes


# ---- llama.cpp ------------------------------------------------------------------------------------
def run_llamacpp(spec: dict) -> dict:
    """llama.cpp through llama-cpp-python's low-level calls: Llama.eval() for the prompt and each new token,
    greedy pick from the last position's logits (llama_get_logits_ith: without logits_all, Llama.scores is
    never filled). Flash attention on, as llama.cpp's own default (`-fa auto`) resolves on a CPU; the
    bindings would otherwise turn it off. F16 KV cache and the GGUF memory-mapped (read in at load), both
    llama.cpp defaults; the KV cache for the whole context is allocated and cleared at load."""
    import llama_cpp
    import numpy as np

    reset_peak_rss()
    rss0 = rss_bytes()
    started = time.perf_counter()
    llm = llama_cpp.Llama(model_path=spec["gguf"], n_ctx=spec.get("max_seq_len") or 4096, n_threads=spec["threads"],
                          n_threads_batch=spec["threads"], n_batch=512, flash_attn=True, verbose=False)
    load_s = time.perf_counter() - started
    vocab, model = llm.n_vocab(), llm.model
    kv_width = llama_cpp.llama_model_n_embd(model) * llama_cpp.llama_model_n_head_kv(model) \
        // llama_cpp.llama_model_n_head(model)
    result = {"load_s": load_s, "rss_before_load": rss0, "peak_rss_load": peak_rss_bytes(),
              "rss_after_load": rss_bytes(), "gguf_type": spec["gguf_type"],
              "weight_bytes": int(llama_cpp.llama_model_size(model)),
              "kv_cache_bytes": 2 * llama_cpp.llama_model_n_layer(model) * llm.n_ctx() * kv_width * 2,  # K, V in F16
              "llama_cpp_python": llama_cpp.__version__,
              "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}

    def next_token() -> int:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))
        return int(np.argmax(logits))

    def generate(ids, new):
        llm.reset()
        started = time.perf_counter()
        llm.eval(ids)
        token = next_token()
        first = time.perf_counter()
        for _ in range(new - 1):
            llm.eval([token])
            token = next_token()
        last = time.perf_counter()
        return {"ttft_s": first - started, "prefill_tokens_per_s": len(ids) / (first - started),
                "decode_tokens_per_s": (new - 1) / (last - first) if new > 1 else 0.0}

    result["shapes"], result["probe_bytes"] = measure_shapes(generate, spec, vocab)
    return result


def run_bandwidth(spec: dict) -> dict:
    import torch

    from .model import measure_bandwidth, measure_gpu_bandwidth

    torch.set_num_threads(spec["threads"])
    if spec["device"].startswith("cuda"):
        return measure_gpu_bandwidth(spec["device"])
    return measure_bandwidth(spec.get("gib", 1.0))


RUNNERS = {"ours": run_ours, "hf": run_hf, "llamacpp": run_llamacpp, "bandwidth": run_bandwidth}


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    result = RUNNERS[spec["engine"]](spec)
    # The probe stayed resident through the runs: the runs' own peak is the high-water mark less its bytes.
    result["peak_rss"] = max(result.get("peak_rss_load", 0), peak_rss_bytes() - result.get("probe_bytes", 0))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
