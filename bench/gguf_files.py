"""The bench folder's weights as llama-architecture GGUFs for llama.cpp, written tensor by tensor.

F32 and BF16 are streamed from the folder's (memory-mapped) checkpoint in row blocks; Q8_0 / Q4_0 / Q4_1 are
made by llama.cpp's own quantizer from the BF16 GGUF when llama-cpp-python is installed (what a user of
llama.cpp would run: it keeps output.weight at Q6_K for Q4_x, as `llama-quantize` does), else by
gguf.quants per block while streaming (every matrix the same type). Memory stays at a few blocks either way.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

GGUF_TYPES = ("F32", "BF16", "Q8_0", "Q4_0", "Q4_1")
#: llama.cpp's file types (LLAMA_FTYPE_ALL_F32, MOSTLY_BF16, MOSTLY_Q8_0, MOSTLY_Q4_0, MOSTLY_Q4_1).
FILE_TYPES = {"F32": 0, "BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q4_1": 3}
BLOCK_ELEMENTS = 1 << 24  # float32 elements per converted block (64 MiB)
_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
          "lm_head.weight": "output.weight"}
_PER_LAYER = {"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def gguf_path(models: Path, folder: Path, kind: str) -> Path:
    """Where the bench keeps the folder's GGUF of this type."""
    return Path(models) / f"{Path(folder).name}-{kind}.gguf"


def llama_permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rotate-half q/k rows -> llama.cpp's interleaved rotary layout (as convert_hf_to_gguf.py does).
    Each head's rows move among themselves only, so a block of whole heads can be permuted alone."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_vocabulary(writer, path: Path, vocab: int) -> None:
    """The folder's SentencePiece vocabulary (pieces, scores, types), as convert_hf_to_gguf.py writes it."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    if sp.get_piece_size() != vocab:
        raise ValueError(f"{path} has {sp.get_piece_size()} pieces, config.json says {vocab}")
    # gguf's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    def kind(i: int) -> int:
        return (2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                else 5 if sp.is_unused(i) else 1)

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([sp.id_to_piece(i) for i in range(vocab)])
    writer.add_token_scores([sp.get_score(i) for i in range(vocab)])
    writer.add_token_types([kind(i) for i in range(vocab)])
    writer.add_unk_token_id(max(sp.unk_id(), 0))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)  # Baichuan2's tokenizer adds no BOS; the chat rule places its own ids
    writer.add_add_eos_token(False)
    # SentencePiece's add_dummy_prefix (off in Baichuan2's model): llama.cpp would otherwise prepend a space.
    writer.add_add_space_prefix(sp.encode("a", out_type=str)[0].startswith("\u2581"))


def _outputs(name: str, shape: tuple[int, ...], hidden: int, heads: int):
    """(gguf name, rows of the checkpoint tensor, transform of a row block) for one checkpoint tensor."""
    def normalise(block):
        return torch.nn.functional.normalize(block, dim=-1)  # NormHead: the model's rows are unit-norm

    if name in _NAMES:
        yield _NAMES[name], (0, shape[0]), normalise if name == "lm_head.weight" else None
        return
    layer, rest = int(name.split(".")[2]), name.split(".", 3)[3].removesuffix(".weight")
    if rest == "self_attn.W_pack":
        for n, part in enumerate(("q", "k", "v")):
            permute = None if part == "v" else (lambda b: llama_permute(b, b.shape[0] // (hidden // heads)))
            yield f"blk.{layer}.attn_{part}.weight", (n * hidden, (n + 1) * hidden), permute
    else:
        yield f"blk.{layer}.{_PER_LAYER[rest]}.weight", (0, shape[0]), None


def _encode(block: torch.Tensor, kind: str):
    """A float32 row block as the GGUF type's bytes (numpy)."""
    import gguf
    import numpy as np

    if block.dim() == 1 or kind == "F32":
        return block.numpy()
    if kind == "BF16":
        return block.bfloat16().view(torch.int16).numpy().view(np.uint16)
    return gguf.quants.quantize(block.numpy(), getattr(gguf.GGMLQuantizationType, kind))


def _nbytes(shape: tuple[int, ...], kind: str) -> tuple[tuple[int, ...], object, int]:
    """(shape as add_tensor_info takes it, numpy dtype, bytes) of one tensor stored as kind."""
    import gguf
    import numpy as np

    if len(shape) == 1 or kind == "F32":
        return shape, np.float32, 4 * int(np.prod(shape))
    if kind == "BF16":
        return shape, np.uint16, 2 * int(np.prod(shape))
    byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, getattr(gguf.GGMLQuantizationType, kind))
    return byte_shape, np.uint8, int(np.prod(byte_shape))


def _stream(folder: Path, out: Path, kind: str) -> None:
    """Write the GGUF from the folder's checkpoint: tensor infos first (from the headers), then each tensor's
    data in row blocks of whole heads (the q/k permutation and lm_head's row norms are per head / per row)."""
    import gguf

    from inference.modeling.weight_copy import release_pages
    from inference.modeling.weights import checkpoint_shapes, iter_checkpoint

    cfg = json.loads((Path(folder) / "config.json").read_text())
    hidden, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    writer = gguf.GGUFWriter(str(out) + ".part", "llama")
    writer.add_name("baichuan2-bench")
    writer.add_context_length(cfg["model_max_length"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_file_type(FILE_TYPES[kind])
    _add_vocabulary(writer, Path(folder) / "tokenizer.model", cfg["vocab_size"])
    for name, shape in checkpoint_shapes(folder).items():
        for gname, (lo, hi), _ in _outputs(name, shape, hidden, heads):
            info_shape, dtype, nbytes = _nbytes((hi - lo, *shape[1:]), kind)
            writer.add_tensor_info(gname, info_shape, dtype, nbytes,
                                   raw_dtype=None if kind == "F32" or len(shape) == 1
                                   else getattr(gguf.GGMLQuantizationType, kind))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    fout = writer.fout[0]
    head_dim = hidden // heads
    for name, tensor in iter_checkpoint(folder):
        for _gname, (lo, hi), transform in _outputs(name, tuple(tensor.shape), hidden, heads):
            writer.write_padding(fout, fout.tell())
            written = 0
            step = hi - lo if tensor.dim() == 1 else \
                max(head_dim, BLOCK_ELEMENTS // tensor.shape[1] // head_dim * head_dim)
            for start in range(lo, hi, step):
                block = tensor[start:min(start + step, hi)].float()
                data = _encode(transform(block) if transform else block, kind)
                data.tofile(fout)
                written += data.nbytes
            writer.write_padding(fout, written)
        release_pages(tensor)  # the checkpoint's pages were read once; do not keep them resident
        del tensor
    writer.close()


def _quantize_with_llamacpp(source: Path, out: Path, kind: str) -> None:
    """llama.cpp's quantizer (llama_model_quantize) from the BF16 GGUF, in a child process (its log kept)."""
    code = ("import ctypes, sys, llama_cpp\n"
            "p = llama_cpp.llama_model_quantize_default_params()\n"
            "p.ftype = int(sys.argv[3])\n"
            "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(source), str(out) + ".part", str(FILE_TYPES[kind])],
                          capture_output=True, text=True)
    Path(str(out) + ".log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"llama.cpp could not quantize {source.name} to {kind}: {tail}")


def llamacpp_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def write_gguf(folder: Path, out: Path, kind: str = "BF16") -> Path:
    """The folder's model as a GGUF of this type at out (reused when already there); returns out.

    F32 / BF16 matrices (norms in F32) come straight from the checkpoint; a quantized type is made by
    llama.cpp's quantizer from the folder's BF16 GGUF (written beside out, kept for reuse) when
    llama-cpp-python is installed, else by gguf.quants."""
    if kind not in GGUF_TYPES:
        raise ValueError(f"GGUF type must be one of {', '.join(GGUF_TYPES)}, not {kind!r}")
    out = Path(out)
    if out.is_file():
        return out
    if kind in ("F32", "BF16") or not llamacpp_importable():
        _stream(Path(folder), out, kind)
    else:
        source = write_gguf(folder, gguf_path(out.parent, folder, "BF16"), "BF16")
        _quantize_with_llamacpp(source, out, kind)
    Path(str(out) + ".part").rename(out)
    return out
