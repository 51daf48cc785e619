"""History that scales: full-text search (FTS5 trigram, LIKE for words under 3 characters), pins, bulk delete."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gui.store_types import clean_text, now_iso

MARK_START, MARK_END = "\x02", "\x03"  # around each match in a snippet
SNIPPET_CONTEXT = 36  # characters shown before the first match
SNIPPET_LENGTH = 140
TRIGRAM = 3  # the index finds words of at least this many characters; shorter ones are scanned for


@dataclass(frozen=True)
class SearchHit:
    """The best hit of one conversation: the newest matching message (None when only the title matched) and a
    one-line snippet of it with each match between MARK_START and MARK_END."""

    conversation_id: int
    message_id: int | None
    snippet: str


def search_terms(query: str) -> list[str]:
    """The words of a search (whitespace separated, each once, in order)."""
    return list(dict.fromkeys(clean_text(query).split()))


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def snippet(text: str, terms: Iterable[str]) -> str:
    """One line of `text` around the first match, every match marked; case-insensitive."""
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    flat = " ".join(text.split())
    first = pattern.search(flat)
    start = max(0, first.start() - SNIPPET_CONTEXT) if first else 0
    part = flat[start:start + SNIPPET_LENGTH]
    marked = pattern.sub(lambda m: MARK_START + m.group(0) + MARK_END, part)
    return ("…" if start else "") + marked + ("…" if start + SNIPPET_LENGTH < len(flat) else "")


class SearchQueries:
    """Mixed into Store: needs _tx and full_text (whether the FTS5 index exists)."""

    full_text = False

    def _matching(self, conn, table: str, index: str, column: str, terms: list[str], select: str) -> list[tuple]:
        """Rows of `table` whose `column` holds every term: long terms through the FTS index, short ones by LIKE."""
        long_terms = [t for t in terms if len(t) >= TRIGRAM] if self.full_text else []
        short = [t for t in terms if t not in long_terms]
        where = [f"t.{column} LIKE ? ESCAPE '\\'" for _ in short]
        args: list = [_like(t) for t in short]
        source = f"{table} t"
        if long_terms:
            source = f"{index} JOIN {table} t ON t.id = {index}.rowid"
            where.insert(0, f"{index} MATCH ?")
            args.insert(0, " ".join('"' + t.replace('"', '""') + '"' for t in long_terms))
        return conn.execute(f"SELECT {select} FROM {source} WHERE {' AND '.join(where)}", args).fetchall()

    def search(self, query: str) -> list[SearchHit]:
        """Conversations whose title, or one message, holds every word of `query` (substrings, case-insensitive,
        Chinese included), most recently updated first, each with its newest matching message and a snippet."""
        terms = search_terms(query)
        if not terms:
            return []
        with self._tx("") as conn:
            newest = self._newest_hits(conn, terms)
            titles = {row[0]: row[1] for row in self._matching(conn, "conversations", "titles_fts", "title", terms,
                                                               "t.id, t.title")}
            texts = {}
            ids = list(newest.values())
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                texts.update(conn.execute(
                    f"SELECT id, content FROM messages WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
            order = [row[0] for row in conn.execute("SELECT id FROM conversations ORDER BY updated DESC, id DESC")]
        hits = []
        for conversation_id in order:
            if conversation_id in newest:
                message_id = newest[conversation_id]
                hits.append(SearchHit(conversation_id, message_id, snippet(texts[message_id], terms)))
            elif conversation_id in titles:
                hits.append(SearchHit(conversation_id, None, snippet(titles[conversation_id], terms)))
        return hits

    def _newest_hits(self, conn, terms: list[str]) -> dict[int, int]:
        """conversation id -> its newest message holding every term."""
        rows = self._matching(conn, "messages", "messages_fts", "content", terms, "t.conversation_id, t.id")
        newest: dict[int, int] = {}
        for conversation_id, message_id in rows:
            if message_id > newest.get(conversation_id, -1):
                newest[conversation_id] = message_id
        return newest

    def set_pinned(self, conversation_id: int, pinned: bool) -> None:
        """Pin a conversation to the top of the list (or unpin it); its updated time stays."""
        with self._tx() as conn:
            conn.execute("UPDATE conversations SET pinned = ? WHERE id = ?", (now_iso() if pinned else None,
                                                                             conversation_id))

    def delete_conversations(self, conversation_ids: Iterable[int]) -> int:
        """Delete these conversations and their messages in one transaction; how many there were."""
        ids, deleted = list(conversation_ids), 0
        with self._tx() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                deleted += conn.execute(f"DELETE FROM conversations WHERE id IN ({', '.join('?' * len(chunk))})",
                                        chunk).rowcount
        return deleted
