"""The benchmark's Markdown report: the side-by-side table, load figures, prefix cache and the machine."""
from __future__ import annotations

from .model import Shape

LABELS = {
    "ours-bf16": ("ours", "bf16"), "ours-fp32": ("ours", "fp32"), "ours-int8": ("ours", "int8 weight-only"),
    "ours-int4": ("ours", "int4 (groups of 32), head int8"),
    "ours-fp16": ("ours", "fp16"), "hf-bf16": ("transformers", "bf16"), "hf-fp32": ("transformers", "fp32"),
    "hf-fp16": ("transformers", "fp16"), "llamacpp-bf16": ("llama.cpp", "BF16 GGUF"),
    "llamacpp-f32": ("llama.cpp", "F32 GGUF"), "llamacpp-q8_0": ("llama.cpp", "Q8_0 GGUF"),
    "llamacpp-q4_0": ("llama.cpp", "Q4_0 GGUF, output Q6_K"), "llamacpp-q4_1": ("llama.cpp", "Q4_1 GGUF, output Q6_K"),
}


def roofline_tokens_per_s(bandwidth_gbps: float, shape: Shape, bytes_per_weight: float | tuple[float, float],
                          context: float = 0, kv_element_size: int = 2) -> float:
    """Decode ceiling: bandwidth / bytes read per token: every matrix and lm_head once, plus the KV cache
    of `context` positions (a decode step's attention reads K and V of every earlier position).

    bytes_per_weight: one figure for every matrix, or (layers', lm_head's) where the head is stored apart
    (int4 keeps an int8 head). context: the decode's mean context, prompt + new / 2."""
    layers_bpw, head_bpw = bytes_per_weight if isinstance(bytes_per_weight, tuple) else (bytes_per_weight,) * 2
    head = shape.vocab_size * shape.hidden_size
    weights = (shape.matrix_params() - head) * layers_bpw + head * head_bpw
    return bandwidth_gbps * 1e9 / (weights + context * shape.kv_bytes_per_position(kv_element_size))


def kv_element_size(name: str) -> int:
    """Bytes per KV-cache element: llama.cpp's F16 cache, else the subject's dtype (int8/int4 keep bf16)."""
    from .run import SUBJECTS

    runner, dtype, _, _ = SUBJECTS[name]
    return 2 if runner == "llamacpp" else 4 if dtype == "float32" else 2


def row_roofline(name: str, shape: Shape, n_in: int, n_out: int, bandwidth_gbps: float | None) -> float | None:
    """A row's decode ceiling at its bandwidth, KV cache at the mean context of its decode counted."""
    from .run import SUBJECTS

    if not bandwidth_gbps:
        return None
    return roofline_tokens_per_s(bandwidth_gbps, shape, SUBJECTS[name][3], n_in + n_out / 2, kv_element_size(name))


def _gib(n: float | None) -> str:
    return "–" if n is None else f"{n / 2**30:.2f}"


def markdown(results: dict) -> str:
    shape = Shape(**results["shape"])
    bandwidth = results.get("bandwidth", {}).get("bandwidth_GBps")
    lines = ["| engine | weights | in → out | TTFT s | prefill tok/s | decode tok/s | read GB/s "
             "| decode % of roofline | peak RSS GiB |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for n_in, n_out in results["shapes"]:
        for name, res in results["subjects"].items():
            who, weights = LABELS.get(name, (name, ""))
            if "error" in res:
                what = res["error"] if res.get("skipped") else f"failed: {res['error']}"
                lines.append(f"| {who} | {weights} | {n_in} → {n_out} | {what[:100]} ||||||")
                continue
            row = res["shapes"][f"{n_in}x{n_out}"]
            read = row.get("bandwidth_GBps", bandwidth)  # the probe beside this row's runs, else the run's
            roof = row_roofline(name, shape, n_in, n_out, read)
            pct = f"{100 * row['decode_tokens_per_s'] / roof:.0f} %" if roof else "–"
            lines.append(f"| {who} | {weights} | {n_in} → {n_out} | {row['ttft_s']:.3f} | "
                         f"{row['prefill_tokens_per_s']:.0f} | {row['decode_tokens_per_s']:.1f} | "
                         f"{f'{read:.1f}' if read else '–'} | {pct} | {_gib(res.get('peak_rss'))} |")
    lines += same_phase_table(results, shape)
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
              "measured in its own process just before and after its runs (\"read GB/s\"). The roofline counts "
              "the bytes read per decoded token: every matrix and lm_head once, plus the KV cache at the decode's "
              "mean context (prompt + new / 2 positions × 2 × layers × hidden × 2 bytes, 4 for fp32)."]
    return "\n".join(lines)


def same_phase_table(results: dict, shape: Shape) -> list[str]:
    """Each compared pair's ratios: the median over rounds of the per-round ratio (bench.pairs)."""
    from .pairs import pair_ratios

    ratios = pair_ratios(results.get("per_round", []), results.get("order", list(results["subjects"])))
    if not ratios:
        return []
    lines = ["", "Same-phase ratios: per round, each pair's ratio of the two subjects' figures (run one after the "
             "other when adjacent); the median over rounds, each round's in brackets; roofline % is each row's own.",
             "", "| pair | in → out | adjacent | decode ratio | prefill ratio | decode % of roofline |",
             "|---|---|---|---:|---:|---:|"]
    for r in ratios:
        (a, b), key = r["pair"], r["shape"]
        n_in, n_out = (int(n) for n in key.split("x"))
        pcts = []
        for name in (a, b):
            row = results["subjects"][name]["shapes"][key]
            roof = row_roofline(name, shape, n_in, n_out, row.get("bandwidth_GBps"))
            pcts.append(f"{100 * row['decode_tokens_per_s'] / roof:.0f} %" if roof else "–")

        def cell(figure):
            f = r[figure]
            return "–" if f["median"] is None else \
                f"{f['median']:.2f}× ({', '.join(f'{x:.2f}' for x in f['rounds'])})"

        label = f"{' '.join(LABELS.get(a, (a, ''))) } / {' '.join(LABELS.get(b, (b, '')))}"
        lines.append(f"| {label} | {n_in} → {n_out} | {'yes' if r['adjacent'] else 'no'} | "
                     f"{cell('decode_tokens_per_s')} | {cell('prefill_tokens_per_s')} | {pcts[0]} / {pcts[1]} |")
    return lines


def _prefix_line(label: str, pc: dict) -> str:
    return (f"Prefix cache ({label}): turn 10 of a {pc['conversation_tokens']}-token conversation reuses "
            f"{pc['cached_tokens']} cached tokens and prefills {pc['new_tokens']}: TTFT {pc['ttft_turn_s']:.3f} s "
            f"vs {pc['ttft_fresh_s']:.3f} s for a fresh {pc['new_tokens']}-token prompt = **{pc['ratio']:.2f}×** "
            "(target ≤ 1.2×).")
