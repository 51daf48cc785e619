"""Perplexity of the demo model (or a folder) on real text at each quantization, and llama.cpp's where installed.

    .venv/bin/python scripts/perplexity.py [--model DIR] [--modes none,int8,int4] [--window 512] [--llamacpp]

The text is the project's own prose that this work does not edit (README.md, docs/SERVING.md, docs/NPU.md at
the current commit; its sha256 is printed): English with code and tables, ~9k SmolLM2 tokens. It is cut into
non-overlapping windows of --window tokens; each window is scored from its second token (every position
predicts the next one), so all modes and llama.cpp score exactly the same token pairs. With --llamacpp the demo
GGUF's source weights are also re-quantized by llama.cpp (Q4_0, Q4_K_M; `make llamacpp`) and scored the same
way. Note: the demo's source weights are themselves Q4_1 (groups of 32), so "bf16" here means those weights
dequantized to bf16.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TEXT_FILES = ("README.md", "docs/SERVING.md", "docs/NPU.md")


def corpus() -> str:
    return "\n\n".join((ROOT / name).read_text(encoding="utf-8") for name in TEXT_FILES)


def windows(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids) - 1, size) if len(ids[i:i + size]) > 1]


def engine_nll(engine, chunks: list[list[int]]) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of every next token in every window, and the count."""
    import torch

    total, count = 0.0, 0
    for chunk in chunks:
        logits = engine.model(torch.tensor(chunk), 0, all_logits=True).double()
        logp = torch.log_softmax(logits[:-1], dim=-1)
        target = torch.tensor(chunk[1:])
        total -= float(logp.gather(1, target[:, None]).sum())
        count += len(chunk) - 1
    return total, count


def llamacpp_nll(gguf_path: Path, chunks: list[list[int]], threads: int) -> tuple[float, int]:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf_path), n_ctx=max(len(c) for c in chunks), logits_all=True, n_threads=threads,
                verbose=False)
    total, count = 0.0, 0
    for chunk in chunks:
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[:len(chunk) - 1], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        total -= float(logp[np.arange(len(chunk) - 1), chunk[1:]].sum())
        count += len(chunk) - 1
    return total, count


def requantize_gguf(source: Path, kind: str, out_dir: Path) -> Path | None:
    """The GGUF re-quantized by llama.cpp's own quantizer (llama_model_quantize), or None where unavailable."""
    try:
        import llama_cpp
    except ImportError:
        return None
    target = out_dir / f"{source.stem}.{kind}.gguf"
    if target.is_file():
        return target
    ftype = {"Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
             "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}[kind]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True  # the demo GGUF is already Q4_1
    out_dir.mkdir(parents=True, exist_ok=True)
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    return target if status == 0 and target.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", metavar="DIR", help="a model folder (default: the demo model)")
    parser.add_argument("--modes", default="none,int8,int4", help="comma-separated: none, int8, int4")
    parser.add_argument("--window", type=int, default=512, help="tokens per window")
    parser.add_argument("--llamacpp", action="store_true", help="also llama.cpp Q4_0 / Q4_K_M / Q8_0 of the demo GGUF")
    parser.add_argument("--json", metavar="FILE", help="write the table as JSON too")
    args = parser.parse_args(argv)

    import torch

    from inference.engine import Engine

    text = corpus()
    rows = []
    chunks = None
    for mode in args.modes.split(","):
        engine = Engine.load(args.model, dtype="bfloat16", max_seq_len=args.window,
                             quantize=None if mode == "none" else mode)
        if chunks is None:
            chunks = windows(engine.tokenizer.encode(text), args.window)
            print(f"text: {' + '.join(TEXT_FILES)} (sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]}), "
                  f"{sum(len(c) - 1 for c in chunks)} scored tokens in {len(chunks)} windows of {args.window}")
        started = time.perf_counter()
        nll, count = engine_nll(engine, chunks)
        rows.append({"subject": f"ours {'bf16' if mode == 'none' else mode}", "ppl": math.exp(nll / count),
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"{rows[-1]['subject']:>18}: perplexity {rows[-1]['ppl']:.4f}", flush=True)
        del engine
    if args.llamacpp and args.model is None:
        from inference.modeling.gguf_model import find_demo_gguf

        source = find_demo_gguf()
        out_dir = Path(torch.hub.get_dir()).parent / "baichuan-chat-perplexity"
        for kind in ("source", "Q8_0", "Q4_0", "Q4_K_M"):
            path = source if kind == "source" else requantize_gguf(source, kind, out_dir)
            if path is None:
                print(f"llama.cpp {kind}: not available (make llamacpp)")
                continue
            nll, count = llamacpp_nll(path, chunks, torch.get_num_threads())
            rows.append({"subject": f"llama.cpp {'Q4_1 (source)' if kind == 'source' else kind}",
                         "ppl": math.exp(nll / count)})
            print(f"{rows[-1]['subject']:>18}: perplexity {rows[-1]['ppl']:.4f}", flush=True)
    base = next((r["ppl"] for r in rows if r["subject"] == "ours bf16"), None)
    if base:
        for r in rows:
            r["vs_bf16_pct"] = round(100 * (r["ppl"] / base - 1), 2)
        print("\n| subject | perplexity | vs ours bf16 |\n|---|---|---|")
        for r in rows:
            print(f"| {r['subject']} | {r['ppl']:.3f} | {r['vs_bf16_pct']:+.2f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
