"""The benchmark's Markdown report: the side-by-side table, load figures, prefix cache and the machine."""
from __future__ import annotations

from .model import Shape

LABELS = {
    "ours-bf16": ("ours", "bf16"), "ours-fp32": ("ours", "fp32"), "ours-int8": ("ours", "int8 weight-only"),
    "ours-int4": ("ours", "int4 (groups of 32), head int8"),
    "ours-fp16": ("ours", "fp16"), "hf-bf16": ("transformers", "bf16"), "hf-fp32": ("transformers", "fp32"),
    "hf-fp16": ("transformers", "fp16"), "llamacpp-bf16": ("llama.cpp", "BF16 GGUF"),
    "llamacpp-f32": ("llama.cpp", "F32 GGUF"), "llamacpp-q8_0": ("llama.cpp", "Q8_0 GGUF"),
}


def roofline_tokens_per_s(bandwidth_gbps: float, shape: Shape, bytes_per_weight: float | tuple[float, float]) -> float:
    """Decode ceiling: bandwidth / weight bytes read per token (every matrix and lm_head once).

    bytes_per_weight: one figure for every matrix, or (layers', lm_head's) where the head is stored apart
    (int4 keeps an int8 head)."""
    layers_bpw, head_bpw = bytes_per_weight if isinstance(bytes_per_weight, tuple) else (bytes_per_weight,) * 2
    head = shape.vocab_size * shape.hidden_size
    return bandwidth_gbps * 1e9 / ((shape.matrix_params() - head) * layers_bpw + head * head_bpw)


def _gib(n: float | None) -> str:
    return "–" if n is None else f"{n / 2**30:.2f}"


def markdown(results: dict) -> str:
    from .run import SUBJECTS

    shape = Shape(**results["shape"])
    bandwidth = results.get("bandwidth", {}).get("bandwidth_GBps")
    lines = ["| engine | weights | in → out | TTFT s | prefill tok/s | decode tok/s | read GB/s "
             "| decode % of roofline | peak RSS GiB |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for n_in, n_out in results["shapes"]:
        for name, res in results["subjects"].items():
            who, weights = LABELS.get(name, (name, ""))
            if "error" in res:
                lines.append(f"| {who} | {weights} | {n_in} → {n_out} | failed: {res['error'][:80]} ||||||")
                continue
            row = res["shapes"][f"{n_in}x{n_out}"]
            read = row.get("bandwidth_GBps", bandwidth)  # the probe beside this row's runs, else the run's
            roof = roofline_tokens_per_s(read, shape, SUBJECTS[name][3]) if read else None
            pct = f"{100 * row['decode_tokens_per_s'] / roof:.0f} %" if roof else "–"
            lines.append(f"| {who} | {weights} | {n_in} → {n_out} | {row['ttft_s']:.3f} | "
                         f"{row['prefill_tokens_per_s']:.0f} | {row['decode_tokens_per_s']:.1f} | "
                         f"{f'{read:.1f}' if read else '–'} | {pct} | {_gib(res.get('peak_rss'))} |")
    lines += ["", "| engine | weights | load s | RSS added while loading GiB | weight bytes GiB | ratio |",
              "|---|---|---:|---:|---:|---:|"]
    for name, res in results["subjects"].items():
        if "error" in res:
            continue
        who, weights = LABELS.get(name, (name, ""))
        added = res["peak_rss_load"] - res["rss_before_load"]
        wb = res.get("weight_bytes")
        ratio = f"{added / wb:.2f}×" if wb else "–"
        lines.append(f"| {who} | {weights} | {res['load_s']:.2f} | {_gib(added)} | {_gib(wb)} | {ratio} |")
    kv = {LABELS[n][1]: r for n, r in results["subjects"].items()
          if n.startswith("llamacpp") and "error" not in r and r.get("kv_cache_bytes") and r.get("weight_bytes")}
    if kv:
        without = ", ".join(
            f"{w} {(r['peak_rss_load'] - r['rss_before_load'] - r['kv_cache_bytes']) / r['weight_bytes']:.2f}×"
            for w, r in kv.items())
        lines += ["", f"llama.cpp allocates and clears its F16 KV cache for the whole context at load "
                  f"({_gib(next(iter(kv.values()))['kv_cache_bytes'])} GiB), counted above; without it: {without}."]
    for name, res in results["subjects"].items():
        pc = res.get("prefix_cache") if "error" not in res else None
        if pc:
            rounds = [r for r in res.get("prefix_cache_rounds", []) if r]
            if len(rounds) > 1:
                lines += ["", "Prefix cache, every round (turn / fresh TTFT): " + ", ".join(
                    f"{r['ttft_turn_s']:.3f} / {r['ttft_fresh_s']:.3f} s = {r['ratio']:.2f}×" for r in rounds)
                    + "; the first round in full:"]
            lines += ["", _prefix_line(" ".join(LABELS.get(name, (name, ""))) + ", this model", pc)]
    wide = results.get("prefix_cache_wide")
    if wide and "error" not in wide:
        ws = Shape(**wide["shape"])
        lines += ["", _prefix_line(f"ours bf16, a second model: hidden {ws.hidden_size}, {ws.num_heads} heads, "
                                   f"intermediate {ws.intermediate_size}, {ws.num_layers} layers", wide)]
    elif wide:
        lines += ["", f"Prefix cache on the second model: failed: {wide['error'][:120]}"]
    m, bw = results["machine"], results.get("bandwidth", {})
    roofs = ", ".join(f"{k} {roofline_tokens_per_s(bandwidth, shape, b):.1f} tok/s"
                      for k, b in (("bf16", 2.0), ("fp32", 4.0), ("int8", 1.0))) if bandwidth else "–"
    lines += ["", f"Machine: {m.get('cpu', '?')}, {m.get('physical_cores')} cores "
              f"({', '.join(m.get('isa', []))}), {m.get('memory_GiB', '?')} GiB, {m.get('gpu', 'no GPU')}; "
              f"torch {m['torch']}, {results['threads']} threads.",
              f"Model: hidden {shape.hidden_size}, {shape.num_layers} layers, {shape.num_heads} heads, "
              f"intermediate {shape.intermediate_size}, vocab {shape.vocab_size} "
              f"({shape.total_params() / 1e6:.0f} M parameters, {shape.matrix_params() / 1e6:.0f} M read per token); "
              f"greedy, {results['repeats'] * results.get('rounds', 1)} runs per row (medians"
              + (f" over {results['rounds']} rounds through all subjects" if results.get("rounds", 1) > 1 else "")
              + ").",
              "Bandwidth measured at the start of the run: " + ", ".join(
                  f"{k.removesuffix('_GBps')} {v:.1f} GB/s" for k, v in bw.items() if k.endswith("GBps"))
              + f" (decode roofline at that bandwidth: {roofs}); each row's roofline uses the read probe "
              "measured in its own process just before and after its runs (\"read GB/s\")."]
    return "\n".join(lines)


def _prefix_line(label: str, pc: dict) -> str:
    return (f"Prefix cache ({label}): turn 10 of a {pc['conversation_tokens']}-token conversation reuses "
            f"{pc['cached_tokens']} cached tokens and prefills {pc['new_tokens']}: TTFT {pc['ttft_turn_s']:.3f} s "
            f"vs {pc['ttft_fresh_s']:.3f} s for a fresh {pc['new_tokens']}-token prompt = **{pc['ratio']:.2f}×** "
            "(target ≤ 1.2×).")
