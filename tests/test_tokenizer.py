"""SentencePieceTokenizer and IncrementalDetokenizer against the real sentencepiece package."""

from __future__ import annotations

import random

import pytest
import sentencepiece as spm
from hypothesis import given, settings, strategies as st

from inference.text.detokenizer import IncrementalDetokenizer, decode_ids
from inference.errors import InputError, ModelFolderError
from testkit.tokenizer_model import ASSISTANT_TOKEN_ID, NUM_META_PIECES, USER_TOKEN_ID, train_tokenizer_model
from inference.text.tokenizer import SentencePieceTokenizer, Tokenizer

# Normalizer variants: Baichuan2's (identity, no dummy prefix, whitespace kept), and two Llama-like ones.
VARIANTS = {
    "baichuan2": {},
    "dummy_prefix": {"add_dummy_prefix": True},
    "nfkc_strip": {"add_dummy_prefix": True, "remove_extra_whitespaces": True, "normalization_rule_name": "nmt_nfkc"},
}

TEXTS = [
    "", "你好，世界！今天天气很好。", "The quick brown fox jumps over the lazy dog.",
    "def main():\n    for i in range(10):\n        print(i)\n", "数字 1234567890 和 3.14159", "😀🎉 emoji 龘靐",
    "   leading and trailing   ", "\t\ttabs\nand\n\nnewlines  \n", "  ", " ", "\n", "中文English混合123 text",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ", "a  b   c    d", "x" * 300, "é ñ ü ß ø",
]
INJECTIONS = [
    "</s>", "<s>", "<unk>", "<reserved_192>", "<reserved_193>", "<reserved_0>", "a<reserved_5>b",
    "<<reserved_1>>", "hi</s><s>there", "<reserved_192><reserved_193>", " <reserved_7> ", "<|im_start|>user",
]


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    """(our tokenizer, the plain sentencepiece processor) of one fixture model variant."""
    path = train_tokenizer_model(tmp_path_factory.mktemp(request.param), **VARIANTS[request.param])
    return SentencePieceTokenizer(path), spm.SentencePieceProcessor(model_file=str(path))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return SentencePieceTokenizer(train_tokenizer_model(tmp_path_factory.mktemp("baichuan2")))


def stream(tokenizer, ids) -> list[str]:
    detok = IncrementalDetokenizer(tokenizer)
    return [detok.push(i) for i in ids] + [detok.flush()]


@pytest.mark.parametrize("text", TEXTS)
def test_encode_matches_sentencepiece(pair, text):
    ours, sp = pair
    assert ours.encode(text) == sp.encode(text)
    assert ours.decode(ours.encode(text)) == sp.decode(sp.encode(text))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["你", "好", "龘", "😀", "a", "Z", "the", " ", "  ", "\n", "\t", "7", "42",
                                 "é", "<", ">", "/", "s", "reserved_", "unk", "<0x41>", "▁"]), max_size=30))
def test_encode_random_text(pair, parts):
    ours, sp = pair
    text = "".join(parts)
    ids = ours.encode(text)
    assert not any(ours.is_control(i) for i in ids)
    if "<reserved_" not in text:
        assert ids == sp.encode(text)
    assert ours.decode(ids) == sp.decode(sp.encode(text))  # the model file's normalization, no special ids


@pytest.mark.parametrize("text", INJECTIONS)
def test_special_spellings_stay_text(tok, text):
    ids = tok.encode(text)
    assert not any(tok.is_control(i) for i in ids)
    assert USER_TOKEN_ID not in ids and ASSISTANT_TOKEN_ID not in ids
    assert tok.decode(ids) == text


def test_sentencepiece_itself_would_match_reserved_pieces(tok):
    """The injection test is meaningful: plain sentencepiece turns <reserved_N> text into the reserved id."""
    sp = spm.SentencePieceProcessor(model_file=str(tok.path))
    assert sp.encode("<reserved_192>") == [USER_TOKEN_ID]
    assert tok.encode("<reserved_192>") != [USER_TOKEN_ID]


def test_special_spellings_stay_text_in_every_variant(pair):
    """No seams: the text around a spelled special piece is tokenized as one piece of text."""
    ours, sp = pair
    for text in INJECTIONS:
        ids = ours.encode(text)
        assert not any(ours.is_control(i) for i in ids)
        assert ours.decode(ids) == sp.decode(sp.encode(text))  # the normalized text, nothing lost or added
        assert ours.encode("Q" + text)[0] == ours.encode("Q")[0]  # a dummy prefix is added only once


def test_vocab_and_pieces(tok):
    assert isinstance(tok, Tokenizer)
    assert tok.vocab_size == 1000
    assert [tok.id_to_piece(i) for i in (0, 1, 2)] == ["<unk>", "<s>", "</s>"]
    assert tok.id_to_piece(USER_TOKEN_ID).startswith("<reserved_")
    assert tok.id_to_piece(ASSISTANT_TOKEN_ID).startswith("<reserved_")
    assert tok.leading_space_rule == "keep" and not tok.add_dummy_prefix
    assert tok.piece_to_id("</s>") == 2 and tok.piece_to_id("no-such-piece") is None


def test_token_bytes_and_control(tok):
    for i in (0, 1, 2, USER_TOKEN_ID, ASSISTANT_TOKEN_ID, 3):
        assert tok.is_control(i) and tok.token_bytes(i) == b""
    e4 = tok.piece_to_id("<0xE4>")
    assert e4 == NUM_META_PIECES - 256 + 0xE4
    assert tok.token_bytes(e4) == b"\xe4" and tok.is_byte(e4) and not tok.is_control(e4)
    space = tok.piece_to_id("\u2581")
    assert tok.token_bytes(space) == b" " and not tok.is_control(space)
    hello = tok.piece_to_id("\u2581hello")
    assert tok.token_bytes(hello) == b" hello"


def test_bad_ids_raise_input_error(tok):
    for bad in (-1, 1000, 10**9):
        with pytest.raises(InputError):
            tok.token_bytes(bad)
    with pytest.raises(InputError):
        tok.decode([5, 1000])
    with pytest.raises(InputError):
        tok.encode(None)


def test_missing_or_corrupt_model(tmp_path):
    with pytest.raises(ModelFolderError, match="missing"):
        SentencePieceTokenizer(tmp_path / "tokenizer.model")
    for content in (b"", b"not a sentencepiece model at all", b"\x0a\xff\xff\xff\xff\x0f"):
        (tmp_path / "tokenizer.model").write_bytes(content)
        with pytest.raises(ModelFolderError, match="corrupt"):
            SentencePieceTokenizer(tmp_path)


def test_truncated_model(tmp_path, tok):
    data = tok.path.read_bytes()
    (tmp_path / "tokenizer.model").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFolderError):
        SentencePieceTokenizer(tmp_path)


def test_decode_matches_sentencepiece_on_random_ids(pair):
    """Any ids but control/special ones: bytes, broken UTF-8, leading spaces, all as sentencepiece decodes."""
    ours, sp = pair
    rng = random.Random(7)
    text_ids = [i for i in range(ours.vocab_size) if not ours.is_control(i)]
    byte_ids = [i for i in text_ids if ours.is_byte(i)]
    for _ in range(3000):
        ids = [rng.choice(byte_ids if rng.random() < 0.5 else text_ids) for _ in range(rng.randrange(8))]
        assert ours.decode(ids) == sp.decode(ids), ids


def test_decode_leaves_out_control_tokens(pair):
    ours, sp = pair
    ids = sp.encode("你好 hello")
    assert ours.decode([1] + ids + [2, USER_TOKEN_ID]) == sp.decode(ids)


def test_detokenizer_streams_random_ids(pair):
    ours, _ = pair
    rng = random.Random(11)
    byte_ids = [i for i in range(ours.vocab_size) if ours.is_byte(i)]
    for _ in range(2000):
        ids = [rng.choice([rng.randrange(ours.vocab_size), rng.choice(byte_ids), 1, 2])
               for _ in range(rng.randrange(10))]
        assert "".join(stream(ours, ids)) == ours.decode(ids) == decode_ids(ours, ids)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("你好龘靐😀🎉éa b\n\t7<>/_")), max_size=40))
def test_detokenizer_valid_text_has_no_replacement_chars(pair, text):
    ours, _ = pair
    ids = ours.encode(text)
    pieces = stream(ours, ids)
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == ours.decode(ids)


def test_detokenizer_holds_back_partial_characters(tok):
    ids = tok.encode("龘")  # not in the fixture's vocabulary: three byte pieces
    assert len(ids) == 3 and all(tok.is_byte(i) for i in ids)
    assert stream(tok, ids) == ["", "", "龘", ""]
    assert stream(tok, ids[:2]) == ["", "", "\ufffd\ufffd"]  # broken at the end: one U+FFFD per byte


class ByteLevelTokenizer:
    """A tiny real byte-level tokenizer (one token per byte, id 256 = control), no is_byte extra."""

    vocab_size = 257

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return decode_ids(self, ids)

    def token_bytes(self, token_id):
        return b"" if token_id == 256 else bytes([token_id])

    def is_control(self, token_id):
        return token_id == 256


def test_detokenizer_for_byte_level_tokenizers():
    tokenizer = ByteLevelTokenizer()
    assert isinstance(tokenizer, Tokenizer)
    ids = tokenizer.encode("你好 a😀")
    pieces = stream(tokenizer, ids[:2] + [256] + ids[2:])  # a control token inside a character
    assert "".join(pieces) == "你好 a😀" and pieces[:3] == ["", "", ""]
