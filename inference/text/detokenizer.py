"""Streaming detokenizer: token ids in, only complete UTF-8 text out, equal to a one-shot decode."""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

_ERRORS = "inference-replace-per-byte"


def _replace_per_byte(exc: UnicodeError) -> tuple[str, int]:
    """One U+FFFD per invalid byte, as SentencePiece decodes broken byte-fallback runs."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd" * (exc.end - exc.start), exc.end


codecs.register_error(_ERRORS, _replace_per_byte)


class IncrementalDetokenizer:
    """Turn a stream of ids into text, holding back bytes of a character split across tokens.

    Works from the Tokenizer protocol: ``token_bytes`` and ``is_control``, plus the optional
    ``is_byte(id)`` and ``leading_space_rule`` ("keep" | "strip_once" | "strip_all"), which reproduce
    SentencePiece's removal of the dummy-prefix space at the start of decoded text.
    """

    def __init__(self, tokenizer: "Tokenizer"):
        self._tokenizer = tokenizer
        self._rule = getattr(tokenizer, "leading_space_rule", "keep")
        self._is_byte = getattr(tokenizer, "is_byte", None)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors=_ERRORS)
        self._at_start = True  # no text yet and no leading space consumed: strip a leading space
        self._space_seen = False  # the previous piece had its leading space stripped
        self._has_text = False

    def push(self, token_id: int) -> str:
        """Add one id; return the text that is now complete (possibly "")."""
        data = self._tokenizer.token_bytes(token_id)
        text = ""
        if self._is_byte is not None:  # SentencePiece byte fallback: characters split only into byte pieces
            if self._is_byte(token_id):
                self._has_text = True
                return self._decoder.decode(data)
            # Any other piece ends a run of byte pieces: bytes still held back are broken (U+FFFD each).
            text = self._decoder.decode(b"", final=True)
        if self._space_seen or self._has_text:
            self._at_start = False
        self._space_seen = False
        if self._at_start and self._rule != "keep" and data.startswith(b" "):
            data = data[1:]
            self._space_seen = self._rule == "strip_once"
        if data:
            self._has_text = True
            text += self._decoder.decode(data)
        return text

    def flush(self) -> str:
        """Return what is held back at the end of the stream (broken bytes become U+FFFD, one per byte)."""
        return self._decoder.decode(b"", final=True)


def decode_ids(tokenizer: "Tokenizer", ids: Iterable[int]) -> str:
    """Decode ids in one go exactly as IncrementalDetokenizer streams them (for Tokenizer.decode)."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    return "".join(detokenizer.push(token_id) for token_id in ids) + detokenizer.flush()
