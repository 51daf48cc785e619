"""Tokenizer protocol and the SentencePiece tokenizer of Baichuan/Baichuan2 model folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence, runtime_checkable

import sentencepiece as spm

from .detokenizer import decode_ids
from ..errors import InputError, ModelFolderError
from ..modeling.safe_read import TOKENIZER_CAP, read_capped

#: How a tokenizer treats whitespace at the very start of decoded text (the optional
#: ``leading_space_rule`` attribute of a Tokenizer): "keep" it, strip the first leading space of the
#: first visible piece ("strip_once", SentencePiece's add_dummy_prefix), or strip leading spaces of
#: pieces until text appears ("strip_all", SentencePiece's remove_extra_whitespaces).
LEADING_SPACE_RULES = ("keep", "strip_once", "strip_all")


@runtime_checkable
class Tokenizer(Protocol):
    """What the engine, chat formats and the detokenizer need from a tokenizer.

    Optional extras read with ``getattr`` by :mod:`inference.text.detokenizer`: ``is_byte(id) -> bool``
    (a byte-fallback piece, never subject to leading-space stripping; default: no byte pieces) and
    ``leading_space_rule`` (one of LEADING_SPACE_RULES; default "keep"). ``decode`` must equal the
    streamed detokenizer output; ``inference.text.detokenizer.decode_ids`` implements it from these members.
    """

    @property
    def vocab_size(self) -> int:
        """Number of ids (0 .. vocab_size-1)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Ids of plain text; never yields control ids, even when the text spells a special token."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids; control tokens contribute nothing."""
        ...

    def token_bytes(self, token_id: int) -> bytes:
        """The raw UTF-8 bytes one token contributes to the text (b"" for control tokens)."""
        ...

    def is_control(self, token_id: int) -> bool:
        """True for tokens that are never text (BOS, EOS, role markers, reserved and unknown tokens)."""
        ...


# --- minimal protobuf wire format, enough for sentencepiece's ModelProto (no protobuf dependency) ------

_PIECE_NORMAL, _PIECE_UNKNOWN, _PIECE_CONTROL, _PIECE_USER_DEFINED, _PIECE_UNUSED, _PIECE_BYTE = 1, 2, 3, 4, 5, 6


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes, int, int]]:
    """Yield a protobuf message's fields as (field number, wire type, value, start offset, end offset)."""
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        key = data[pos]
        if key < 0x80:  # one-byte varints are the common case: skip the call
            pos += 1
        else:
            key, pos = _read_varint(data, pos)
        wire = key & 7
        value: int | bytes
        if wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated field")
        yield key >> 3, wire, value, start, pos


@dataclass(frozen=True)
class _ModelInfo:
    pieces: list[str]
    piece_types: list[int]
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool


def _parse_model(data: bytes) -> _ModelInfo:
    pieces: list[str] = []
    types: list[int] = []
    normalizer = {3: True, 4: True}  # add_dummy_prefix, remove_extra_whitespaces (proto defaults: true)
    for number, wire, value, _, _ in _fields(data):
        if number == 1 and wire == 2:
            piece, piece_type = b"", _PIECE_NORMAL
            for sub_number, sub_wire, sub_value, _, _ in _fields(value):
                if sub_number == 1 and sub_wire == 2:
                    piece = sub_value
                elif sub_number == 3 and sub_wire == 0:
                    piece_type = sub_value
            pieces.append(piece.decode("utf-8"))
            types.append(piece_type)
        elif number == 3 and wire == 2:
            for sub_number, sub_wire, sub_value, _, _ in _fields(value):
                if sub_number in normalizer and sub_wire == 0:
                    normalizer[sub_number] = bool(sub_value)
    return _ModelInfo(pieces, types, normalizer[3], normalizer[4])


def _with_pieces_as_control(data: bytes, ids: set[int]) -> bytes:
    """Return the ModelProto bytes with the pieces at ``ids`` retyped CONTROL (unreachable from text)."""
    out = bytearray()
    copied = index = 0
    for number, wire, value, start, end in _fields(data):
        if number == 1 and wire == 2:
            if index in ids:
                body = b"".join(value[a:b] for n, _, _, a, b in _fields(value) if n != 3)
                body += b"\x18" + _write_varint(_PIECE_CONTROL)
                out += data[copied:start] + b"\x0a" + _write_varint(len(body)) + body
                copied = end
            index += 1
    return bytes(out + data[copied:])


# --- the tokenizer ----------------------------------------------------------------------------------

#: User-defined pieces spelled like markup (``<reserved_12>``, ``<|im_start|>``) are special tokens:
#: they are never produced from text and never shown. Other user-defined pieces stay ordinary text.
_SPECIAL_SPELLING = re.compile(r"<[^<>\s]+>")
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class SentencePieceTokenizer:
    """A folder's tokenizer.model, encoded with the model file's own normalizer settings.

    ``encode`` equals SentencePiece's own encoding, except that special pieces spelled in the text stay
    plain text: the model is loaded with its special user-defined pieces retyped as control pieces,
    which SentencePiece never matches in text, so the text needs no splitting (and has no seams).
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.model"
        data = read_capped(path, "tokenizer.model", TOKENIZER_CAP)
        try:
            info = _parse_model(data)
            if not info.piece_types:  # refused here: SentencePiece would print its own log lines first
                raise ValueError("no pieces")
            special = {i for i, (t, piece) in enumerate(zip(info.piece_types, info.pieces))
                       if t == _PIECE_USER_DEFINED and _SPECIAL_SPELLING.fullmatch(piece)}
            self._sp = spm.SentencePieceProcessor(model_proto=_with_pieces_as_control(data, special))
        except (ValueError, RuntimeError, OSError, UnicodeDecodeError):
            raise ModelFolderError(f"tokenizer.model is corrupt or not a SentencePiece model: {path}") from None
        if self._sp.get_piece_size() != len(info.piece_types) or not info.piece_types:
            raise ModelFolderError(f"tokenizer.model is corrupt or not a SentencePiece model: {path}")
        self.path = path
        self._add_dummy_prefix = info.add_dummy_prefix  # (the parsed piece list itself is not kept: ~6 MB)
        self.leading_space_rule = ("strip_all" if info.remove_extra_whitespaces
                                   else "strip_once" if info.add_dummy_prefix else "keep")
        self._bytes: list[bytes] = []
        self._control = bytearray(len(info.piece_types))
        self._byte = bytearray(len(info.piece_types))
        for i, (piece, piece_type) in enumerate(zip(info.pieces, info.piece_types)):
            if piece_type in (_PIECE_CONTROL, _PIECE_UNKNOWN) or i in special:
                self._control[i] = 1
                self._bytes.append(b"")
            elif piece_type == _PIECE_BYTE and (match := _BYTE_PIECE.fullmatch(piece)):
                self._byte[i] = 1
                self._bytes.append(bytes([int(match.group(1), 16)]))
            else:
                self._bytes.append(piece.replace("\u2581", " ").encode("utf-8"))

    @property
    def vocab_size(self) -> int:
        """Number of pieces in tokenizer.model."""
        return len(self._bytes)

    @property
    def add_dummy_prefix(self) -> bool:
        """The model file's normalizer_spec.add_dummy_prefix."""
        return self._add_dummy_prefix

    def encode(self, text: str) -> list[int]:
        """Ids of plain text (no BOS/EOS); special pieces spelled in the text come out as ordinary tokens."""
        if not isinstance(text, str):
            raise InputError(f"text to encode must be a string, not {type(text).__name__}")
        return self._sp.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids as SentencePiece decodes it, with control, unknown and special tokens left out."""
        return decode_ids(self, ids)

    def _check(self, token_id: int) -> int:
        if isinstance(token_id, bool) or not 0 <= int(token_id) < len(self._bytes):
            raise InputError(f"token id {token_id} is outside the vocabulary (0..{len(self._bytes) - 1})")
        return int(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes the token contributes: '▁' as a space, <0xAB> as that byte, b"" for control tokens."""
        return self._bytes[self._check(token_id)]

    def is_control(self, token_id: int) -> bool:
        """True for control, unknown and special (markup-spelled user-defined) pieces."""
        return bool(self._control[self._check(token_id)])

    def is_byte(self, token_id: int) -> bool:
        """True for byte-fallback pieces <0x00>..<0xFF>."""
        return bool(self._byte[self._check(token_id)])

    def id_to_piece(self, token_id: int) -> str:
        """The piece string of an id, e.g. '▁hello', '<0xE4>', '</s>'."""
        return self._sp.id_to_piece(self._check(token_id))

    def piece_to_id(self, piece: str) -> int | None:
        """The id of a piece string, or None when the vocabulary lacks it."""
        token_id = self._sp.piece_to_id(piece)
        return None if token_id == self._sp.unk_id() and piece != self._sp.id_to_piece(token_id) else token_id
