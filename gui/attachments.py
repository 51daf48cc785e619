"""Files attached to a message: read (text, Markdown, code, PDF) with size caps, and written into the user message.

An attachment travels inside the user message's text, so the model's own chat rule counts and places it like
any other text, and the history, exports and Edit keep it: after the typed text, each file is a header line
`Attached file: NAME` and a fenced block holding its text (the fence longer than any backtick run inside).
No Qt here.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

TEXT_CAP = 2 << 20  # bytes of one text file
PDF_CAP = 64 << 20  # bytes of one PDF file
PDF_PAGE_CAP = 300  # pages of one PDF
MAX_ATTACHMENTS = 10
HEADER = "Attached file: "
ATTACHMENT_MARK = "▤"  # before a file's name in the bubble and the chips (a geometric shape every UI font has)
_LANGUAGES = {
    ".md": "markdown", ".markdown": "markdown", ".py": "python", ".js": "javascript", ".ts": "typescript",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".java": "java", ".go": "go", ".rs": "rust",
    ".rb": "ruby", ".sh": "bash", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".html": "html",
    ".css": "css", ".sql": "sql", ".xml": "xml", ".csv": "csv", ".tex": "latex", ".kt": "kotlin", ".swift": "swift",
}
_BLOCK = re.compile(r"(?:^|\n\n)" + re.escape(HEADER) + r"(?P<name>[^\n]+)\n(?P<fence>`{3,})(?P<lang>[^\n`]*)\n"
                    r"(?P<body>.*?)(?:\n(?P=fence)(?=\n|$)|\Z)", re.DOTALL)


class AttachmentError(Exception):
    """A file that cannot be attached; the message is one sentence naming it."""


@dataclass(frozen=True)
class Attachment:
    """One attached file: its name (no folder) and its text (no trailing newline)."""

    name: str
    text: str
    lang: str = ""

    def block(self) -> str:
        """The attachment as it stands in the message: header line and fenced text."""
        longest = max((len(run) for run in re.findall(r"`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{HEADER}{self.name}\n{fence}{self.lang}\n{self.text}\n{fence}"


def _size(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB" if size >= 1 << 20 else f"{size / 1024:.0f} KB"


def read_attachment(path: str | os.PathLike) -> Attachment:
    """Read a file to attach: a PDF's text (pypdf), or a UTF-8 / GB18030 text file; AttachmentError otherwise."""
    path = Path(path)
    name = " ".join(path.name.split()) or "file"
    try:
        info = os.stat(path)  # never opens: a FIFO cannot block here
    except OSError as exc:
        raise AttachmentError(f"{name} cannot be read ({exc.strerror or exc.__class__.__name__}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise AttachmentError(f"{name} is not a regular file.")
    is_pdf = path.suffix.lower() == ".pdf"
    cap = PDF_CAP if is_pdf else TEXT_CAP
    if info.st_size > cap:
        raise AttachmentError(f"{name} is {_size(info.st_size)}; a {'PDF' if is_pdf else 'text'} file can be "
                              f"attached up to {_size(cap)}.")
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as exc:
        raise AttachmentError(f"{name} cannot be read ({exc.strerror or exc.__class__.__name__}).") from None
    if len(data) > cap:
        raise AttachmentError(f"{name} is larger than the {_size(cap)} a file can be attached up to.")
    if is_pdf or data.startswith(b"%PDF-"):
        return Attachment(name, _pdf_text(name, data))
    return Attachment(name, _decode(name, data), _LANGUAGES.get(path.suffix.lower(), ""))


def _decode(name: str, data: bytes) -> str:
    if b"\x00" in data[:65536]:
        raise AttachmentError(f"{name} is a binary file; only text, Markdown, code and PDF files can be attached.")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise AttachmentError(f"{name} is not UTF-8 or GB18030 text; only text, Markdown, code and PDF files can be "
                              f"attached.")
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    if not text.strip():
        raise AttachmentError(f"{name} is empty.")
    return text


def _pdf_text(name: str, data: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise AttachmentError(f"{name} is a password-protected PDF.")
        pages = len(reader.pages)
        if pages > PDF_PAGE_CAP:
            raise AttachmentError(f"{name} has {pages} pages; a PDF can be attached up to {PDF_PAGE_CAP} pages.")
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
    except AttachmentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, RecursionError, OSError) as exc:
        raise AttachmentError(f"{name} is not a readable PDF ({exc.__class__.__name__}).") from None
    if not any(texts):
        raise AttachmentError(f"{name} has no text to read (a scanned PDF?).")
    return "\n\n".join(f"[page {number}]\n{text}" for number, text in enumerate(texts, 1) if text)


def compose(text: str, attachments: list[Attachment]) -> str:
    """The user message: the typed text, then each attachment's block."""
    parts = ([text] if text else []) + [attachment.block() for attachment in attachments]
    return "\n\n".join(parts)


def split(content: str) -> tuple[str, list[Attachment]]:
    """The typed text and the attachments of a message written by compose() (a plain message: no attachments)."""
    attachments = []
    pieces = []
    last = 0
    for match in _BLOCK.finditer(content):
        pieces.append(content[last:match.start()])
        attachments.append(Attachment(match.group("name"), match.group("body"), match.group("lang")))
        last = match.end()
    pieces.append(content[last:])
    return "\n\n".join(piece.strip("\n") for piece in pieces if piece.strip()), attachments


def bubble_text(content: str) -> str:
    """What the user's bubble shows: the typed text, and a line per attachment instead of its text."""
    text, attachments = split(content)
    lines = [f"{ATTACHMENT_MARK} {attachment.name}" for attachment in attachments]
    return "\n\n".join(part for part in (text, "\n".join(lines)) if part)


def token_counts(tokenizer, content: str) -> list[tuple[str, int]]:
    """(name, tokens) of each attachment in a message, by the model's tokenizer (run off the GUI thread); none
    without a tokenizer (a remote server's model)."""
    if tokenizer is None:
        return []
    return [(attachment.name, len(tokenizer.encode(attachment.block()))) for attachment in split(content)[1]]
