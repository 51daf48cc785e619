"""Byte-level BPE tokenizer (GPT-2 style) built from a GGUF file's vocab and merges with `tokenizers`."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from ..errors import InputError, ModelFolderError

# llama.cpp token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control, 4 user-defined,
# 5 unused, 6 byte. Control tokens (<|im_start|>, <|endoftext|>...) are never produced from text.
TOKEN_TYPE_CONTROL = 3

# tokenizer.ggml.pre -> whether each digit is split off before the GPT-2 regex. llama.cpp groups these
# (STARCODER, REFACT, COMMAND_R, SMOLLM, ...: "\p{N}" first, then the GPT-2 regex); the original SmolLM2
# tokenizer.json says the same with Digits(individual_digits=True) followed by ByteLevel(use_regex=True).
PRE_TOKENIZERS = {
    "smollm": True,
    "starcoder": True,
    "refact": True,
    "gpt2": False,
    "default": False,
}


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte to a printable character (the alphabet of the vocab)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    """Inverse of byte_to_unicode: a vocab character back to its raw byte."""
    return {ch: b for b, ch in byte_to_unicode().items()}


class GGUFTokenizer:
    """The Tokenizer protocol (vocab_size, encode, decode, token_bytes, is_control) for a GPT-2 BPE vocab."""

    leading_space_rule = "keep"  # byte-level BPE spells every space; nothing to strip when decoding

    def __init__(self, tokens: list[str], token_types: list[int], merges: list[str], pre: str = "default"):
        if not tokens:
            raise ModelFolderError("The GGUF file holds an empty tokenizer vocabulary.")
        if len(token_types) != len(tokens):
            raise ModelFolderError("The GGUF tokenizer's token types do not match its vocabulary.")
        if pre not in PRE_TOKENIZERS:
            raise ModelFolderError(f"The GGUF tokenizer's pre-tokenizer {pre!r} is not supported.")
        self.tokens = list(tokens)
        self.vocab_size = len(tokens)
        self._control = [int(t) == TOKEN_TYPE_CONTROL for t in token_types]
        self._bytes = self._token_bytes_table()
        self._ids = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise ModelFolderError("The GGUF tokenizer's vocabulary has duplicate tokens.")
        self._backend = self._build_backend(merges, PRE_TOKENIZERS[pre])

    def _token_bytes_table(self) -> list[bytes]:
        table = unicode_to_byte()
        out: list[bytes] = []
        for i, tok in enumerate(self.tokens):
            if self._control[i]:
                out.append(b"")
                continue
            try:
                out.append(bytes(table[ch] for ch in tok))
            except KeyError:
                raise ModelFolderError(
                    f"The GGUF vocabulary token {i} is not spelled in the byte-level alphabet."
                ) from None
        return out

    def _build_backend(self, merges: list[str], split_digits: bool) -> Tokenizer:
        pairs = []
        for line in merges:
            left, sep, right = line.partition(" ")
            if not sep or not left or not right or " " in right:
                raise ModelFolderError(f"The GGUF tokenizer has a malformed merge rule {line!r}.")
            pairs.append((left, right))
        try:
            bpe = models.BPE(vocab=dict(self._ids), merges=pairs, fuse_unk=False, byte_fallback=False)
        except Exception as exc:  # tokenizers raises its own exception type for a bad vocab/merge pair
            raise ModelFolderError(f"The GGUF tokenizer's vocab and merges do not fit together ({exc}).") from None
        backend = Tokenizer(bpe)
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
        if split_digits:
            backend.pre_tokenizer = pre_tokenizers.Sequence(
                [pre_tokenizers.Digits(individual_digits=True), byte_level]
            )
        else:
            backend.pre_tokenizer = byte_level
        backend.decoder = decoders.ByteLevel()
        # Control tokens are deliberately NOT registered as added tokens: text that spells <|im_end|> is
        # split by the pre-tokenizer into ordinary pieces ("<|", "im", "_", "end", "|>") and never merges back.
        return backend

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text; control tokens spelled in the text stay text."""
        if not text:
            return []
        return self._backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids, exactly as the streaming detokenizer yields it (control tokens add nothing)."""
        from .detokenizer import decode_ids

        return decode_ids(self, ids)

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes this token adds to the text; b'' for control tokens."""
        return self._bytes[self._check(token_id)]

    def is_control(self, token_id: int) -> bool:
        """True for tokens such as <|im_start|>, <|im_end|> and <|endoftext|>."""
        return self._control[self._check(token_id)]

    def token_id(self, token: str) -> int | None:
        """Id of a token by its vocabulary spelling (e.g. '<|im_end|>'), or None."""
        return self._ids.get(token)

    def _check(self, token_id: int) -> int:
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise InputError(f"Token id {token_id} is outside the vocabulary (0..{self.vocab_size - 1}).")
        return token_id
