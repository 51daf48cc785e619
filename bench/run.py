"""`python -m bench` (`make bench`): our engine vs transformers (and llama.cpp when installed) on the same weights."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .model import DEFAULT_SHAPE, SHAPE_7B, Shape

#: name -> (runner, dtype, quantize or GGUF type, bytes read per matrix weight)
SUBJECTS = {
    "ours-bf16": ("ours", "bfloat16", None, 2.0),
    "ours-fp32": ("ours", "float32", None, 4.0),
    "ours-int8": ("ours", "bfloat16", "int8", 1.0),
    "ours-int4": ("ours", "bfloat16", "int4", (20 / 32, 1.0)),  # inference.cpu.int4: 4 bits + 2 fp16 per 32; head int8
    "ours-fp16": ("ours", "float16", None, 2.0),
    "hf-bf16": ("hf", "bfloat16", None, 2.0),
    "hf-fp32": ("hf", "float32", None, 4.0),
    "hf-fp16": ("hf", "float16", None, 2.0),
    "llamacpp-bf16": ("llamacpp", None, "BF16", 2.0),
    "llamacpp-f32": ("llamacpp", None, "F32", 4.0),
    "llamacpp-q8_0": ("llamacpp", None, "Q8_0", 34 / 32),
    # llama.cpp's quantizer keeps output.weight at Q6_K (210 bytes per 256) for the Q4 types, as llama-quantize does
    "llamacpp-q4_0": ("llamacpp", None, "Q4_0", (18 / 32, 210 / 256)),
    "llamacpp-q4_1": ("llamacpp", None, "Q4_1", (20 / 32, 210 / 256)),
}
CPU_DEFAULT = ["ours-bf16", "ours-fp32", "ours-int8", "hf-bf16", "hf-fp32",
               "llamacpp-bf16", "llamacpp-f32", "llamacpp-q8_0"]
GPU_DEFAULT = ["ours-fp16", "ours-int8", "hf-fp16"]
CPU_7B_DEFAULT = ["ours-bf16", "ours-int8", "ours-int4", "llamacpp-bf16", "llamacpp-q8_0", "llamacpp-q4_0"]
#: A subject is skipped when its weights times this exceed the memory available when it would start.
MEMORY_MARGIN = 1.15
TINY_SHAPE = dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, vocab_size=1024)


def _prefix_shape(text: str) -> tuple[int, int, int, int] | None:
    if text == "none":
        return None
    try:
        hidden, layers, heads, intermediate = (int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("give hidden,layers,heads,intermediate (e.g. 4096,2,32,11008) or none")
    return hidden, layers, heads, intermediate


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: a CUDA GPU when present (7B-shaped fp16 model), else the CPU")
    p.add_argument("--shape", choices=["default", "7b"], default="default",
                   help="7b: Baichuan2-7B's own shape (15 GB of bf16 .bin shards; 128x16 and the 7B subjects by "
                        "default on the CPU); default: Baichuan2's vocabulary with a small body (the GPU runs 7b)")
    p.add_argument("--hidden", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--intermediate", type=int)
    p.add_argument("--vocab", type=int)
    p.add_argument("--shapes", help="prompt x new tokens, comma-separated (default 512x64,2048x64 on CPU)")
    p.add_argument("--engines", help=f"comma-separated, from: {', '.join(SUBJECTS)}")
    p.add_argument("--threads", type=int, help="torch / llama.cpp threads (default: physical cores)")
    p.add_argument("--repeats", type=int, default=3, help="runs per shape per round; the table shows medians")
    p.add_argument("--rounds", type=int, default=1, help="passes over all subjects (spreads a noisy machine's load)")
    p.add_argument("--out", default="bench-results", help="folder for the model, GGUFs and JSON results")
    p.add_argument("--no-prefix-cache", action="store_true", help="skip the prefix-cache measurements")
    p.add_argument("--prefix-shape", default="4096,2,32,11008", type=_prefix_shape,
                   help="hidden,layers,heads,intermediate of a second, 7B-wide model on which the prefix cache is "
                        "also measured (on the small default shape attention is half the work of a cached turn); "
                        "'none' skips it")
    p.add_argument("--tiny", action="store_true", help="a toy model and short shapes (a smoke test of this tool)")
    p.add_argument("--prepare-only", action="store_true",
                   help="only write (or reuse) the model folder and the chosen subjects' GGUFs, then stop")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed to each subject")
    return p.parse_args(argv)


def physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def machine_info(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "logical_cpus": os.cpu_count(), "physical_cores": physical_cores()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                           if line.startswith("model name"))
        flags = next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split()
        info["isa"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
                       if f in flags]
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    try:
        import psutil

        info["memory_GiB"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def weight_bytes(name: str, shape: Shape) -> float:
    """Bytes a subject's weights take in memory (matrices at its bytes per weight, the rest 16- or 32-bit)."""
    runner, dtype, _, bpw = SUBJECTS[name]
    layers_bpw, head_bpw = bpw if isinstance(bpw, tuple) else (bpw, bpw)
    head = shape.vocab_size * shape.hidden_size
    rest = shape.total_params() - shape.matrix_params()
    return (shape.matrix_params() - head) * layers_bpw + head * head_bpw + rest * (4 if "32" in name else 2)


def memory_guard(name: str, shape: Shape) -> str | None:
    """Why a subject cannot run here (its weights × MEMORY_MARGIN over the available memory), else None."""
    try:
        import psutil
    except ImportError:
        return None
    need, available = weight_bytes(name, shape) * MEMORY_MARGIN, psutil.virtual_memory().available
    if need <= available:
        return None
    return f"skipped: needs ~{need / 2**30:.1f} GiB ({MEMORY_MARGIN}× its weights), {available / 2**30:.1f} GiB available"


def run_subject(spec: dict, threads: int, timeout: float) -> dict:
    """Run one subject in a fresh interpreter (clean RSS); its result, or {'error': ...}."""
    from .worker import RESULT_PREFIX

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.worker", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(Path(__file__).resolve().parent.parent))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:300]}"}


def merge_rounds(previous: dict | None, result: dict) -> dict:
    """One subject's results over rounds: shape figures re-summarised over all runs, the rest from the first."""
    from .worker import _median, summarise

    if previous is None or "error" in previous:
        return result
    if "error" in result:
        return previous
    for key, row in previous["shapes"].items():
        new = result["shapes"][key]
        rounds = row.get("bandwidth_rounds_GBps", [row["bandwidth_GBps"]] if "bandwidth_GBps" in row else [])
        rounds += [new["bandwidth_GBps"]] if "bandwidth_GBps" in new else []
        previous["shapes"][key] = summarise(row["runs"] + new["runs"])
        if rounds:  # the row's decode is a median over the rounds' runs: so is the bandwidth it is held to
            previous["shapes"][key]["bandwidth_rounds_GBps"] = rounds
            previous["shapes"][key]["bandwidth_GBps"] = _median(rounds)
    previous["peak_rss"] = max(previous["peak_rss"], result["peak_rss"])
    previous.setdefault("rounds", [previous.get("load_s")]).append(result.get("load_s"))
    if "prefix_cache" in result:
        previous.setdefault("prefix_cache_rounds", [previous.get("prefix_cache")]).append(result["prefix_cache"])
    return previous


def run_prefix_wide(args, shape: Shape, out: Path, threads: int) -> dict:
    """The prefix-cache measurement on a model as wide as Baichuan2-7B (few layers: the ratio is per layer)."""
    import torch

    from .model import write_bench_folder

    hidden, layers, heads, intermediate = (128, 1, 4, 256) if args.tiny else args.prefix_shape
    wide = Shape(hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=intermediate,
                 vocab_size=shape.vocab_size, model_max_length=shape.model_max_length)
    print(f"prefix cache on {wide.key}: writing/reusing the folder, then running …", flush=True)
    folder = write_bench_folder(out / "models", wide, torch.bfloat16)
    spec = {"engine": "ours", "dtype": "bfloat16", "device": "cpu", "threads": threads, "folder": str(folder),
            "shapes": [], "repeats": args.repeats, "max_seq_len": wide.model_max_length, "quantize": None,
            "prefix_cache": True, "prefix_scale": 0.05 if args.tiny else 1.0}
    result = run_subject(spec, threads, args.timeout)
    if "error" in result:
        print(f"prefix cache on {wide.key}: {result['error']}", flush=True)
        return result
    return {"shape": wide.__dict__, **result["prefix_cache"]}


def llamacpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def choose(args) -> tuple[str, Shape, list[tuple[int, int]], list[str]]:
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    seven = args.shape == "7b" and not args.tiny
    base = TINY_SHAPE if args.tiny else SHAPE_7B if device == "cuda" or seven else DEFAULT_SHAPE
    shape = Shape(hidden_size=args.hidden or base["hidden_size"], num_layers=args.layers or base["num_layers"],
                  num_heads=args.heads or base["num_heads"],
                  intermediate_size=args.intermediate or base["intermediate_size"],
                  vocab_size=args.vocab or base["vocab_size"], model_max_length=256 if args.tiny else 4096)
    default_shapes = ("16x4" if args.tiny else "2048x64" if device == "cuda" else "128x16" if seven
                      else "512x64,2048x64")
    try:
        shapes = [tuple(int(n) for n in s.lower().split("x")) for s in (args.shapes or default_shapes).split(",")]
        assert all(len(s) == 2 and s[0] > 0 and s[1] > 1 for s in shapes)
    except (ValueError, AssertionError):
        raise SystemExit("error: --shapes must look like 512x64,2048x64 (prompt x new tokens, new > 1)")
    names = (args.engines.split(",") if args.engines else GPU_DEFAULT if device == "cuda"
             else CPU_7B_DEFAULT if seven else CPU_DEFAULT)
    unknown = [n for n in names if n not in SUBJECTS]
    if unknown:
        raise SystemExit(f"error: unknown engine {unknown[0]!r}; choose from {', '.join(SUBJECTS)}")
    if not llamacpp_available():
        names = [n for n in names if not n.startswith("llamacpp")]
    return device, shape, shapes, names


def prepare(args, device: str, shape: Shape, shapes, names: list[str], out: Path, threads: int):
    """Write (or reuse) the model folder and each llama.cpp subject's GGUF; the folder and each subject's spec."""
    import torch

    from .gguf_files import gguf_path, write_gguf
    from .model import write_bench_folder

    ckpt_dtype = torch.float16 if device == "cuda" else torch.bfloat16
    print(f"model {shape.key}: {shape.total_params() / 1e6:.0f} M parameters; writing/reusing the folder …",
          flush=True)
    t = time.perf_counter()
    folder = write_bench_folder(out / "models", shape, ckpt_dtype)
    print(f"folder {folder} ready in {time.perf_counter() - t:.0f} s", flush=True)
    first_ours = next((n for n in names if n.startswith("ours")), None)
    specs = {}
    for name in names:
        runner, dtype, variant, _ = SUBJECTS[name]
        spec = {"engine": runner, "dtype": dtype, "device": device, "threads": threads, "folder": str(folder),
                "shapes": [list(s) for s in shapes], "repeats": args.repeats, "max_seq_len": shape.model_max_length}
        if runner == "ours":
            spec["quantize"] = variant
            spec["no_quant_cache"] = True  # every load quantizes from the checkpoint (bench.worker)
            spec["prefix_cache"] = name == first_ours and not args.no_prefix_cache
            spec["prefix_scale"] = 0.05 if args.tiny else 1.0
        if runner == "llamacpp":
            print(f"{name}: writing/reusing the {variant} GGUF …", flush=True)
            t = time.perf_counter()
            spec["gguf"] = str(write_gguf(folder, gguf_path(out / "models", folder, variant), variant))
            spec["gguf_type"] = variant
            print(f"{name}: {spec['gguf']} ready in {time.perf_counter() - t:.0f} s", flush=True)
        specs[name] = spec
    return folder, specs


def run_rounds(args, shape: Shape, specs: dict, threads: int, results: dict) -> None:
    """Every subject in turn, round after round, in the order that puts compared pairs side by side; each
    round's own figures kept for the same-phase ratios (bench.pairs)."""
    from .pairs import order_subjects

    order = order_subjects(list(specs))
    results["order"], results["per_round"] = order, []
    for round_number in range(args.rounds):
        figures = {}
        for name in order:
            print(f"{name}: running" + (f" (round {round_number + 1}/{args.rounds})" if args.rounds > 1 else "")
                  + " …", flush=True)
            skip = memory_guard(name, shape)
            result = {"error": skip, "skipped": True} if skip else run_subject(specs[name], threads, args.timeout)
            if "error" in result:
                print(f"{name}: {result['error']}", flush=True)
            else:
                figures[name] = {key: {f: row[f] for f in ("decode_tokens_per_s", "prefill_tokens_per_s")}
                                 for key, row in result["shapes"].items()}
            results["subjects"][name] = merge_rounds(results["subjects"].get(name), result)
        results["per_round"].append(figures)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    device, shape, shapes, names = choose(args)
    threads = args.threads or physical_cores()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    folder, specs = prepare(args, device, shape, shapes, names, out, threads)
    if args.prepare_only:
        for path in sorted(folder.glob("*.bin")) + [Path(s["gguf"]) for s in specs.values() if "gguf" in s]:
            print(f"{path}: {path.stat().st_size / 1e9:.2f} GB")
        return 0
    results = {"machine": machine_info(device), "device": device, "threads": threads, "shape": shape.__dict__,
               "shapes": [list(s) for s in shapes], "repeats": args.repeats, "rounds": args.rounds,
               "folder": str(folder),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "subjects": {}}
    bandwidth = run_subject({"engine": "bandwidth", "device": device, "threads": threads,
                             "gib": 0.25 if args.tiny else 1.0}, threads, args.timeout)
    results["bandwidth"] = bandwidth
    print(f"bandwidth: {bandwidth.get('bandwidth_GBps', float('nan')):.1f} GB/s "
          f"({', '.join(f'{k} {v:.1f}' for k, v in bandwidth.items() if k.endswith('GBps'))})", flush=True)
    run_rounds(args, shape, specs, threads, results)
    first_ours = next((n for n in names if n.startswith("ours")), None)
    if device == "cpu" and first_ours and not args.no_prefix_cache and args.prefix_shape is not None:
        results["prefix_cache_wide"] = run_prefix_wide(args, shape, out, threads)
    results["seconds"] = time.perf_counter() - started
    from .report import markdown

    table = markdown(results)
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (out / f"bench-{stamp}.json", out / "latest.json"):
        path.write_text(json.dumps(results, indent=1) + "\n")
    (out / "latest.md").write_text(table + "\n")
    print(f"results: {out / f'bench-{stamp}.json'} (table in {out / 'latest.md'})")
    return 0 if not any("error" in r and not r.get("skipped") for r in results["subjects"].values()) else 1
