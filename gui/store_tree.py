"""Answer versions and branches: a conversation's messages form a tree, the active path is what is shown; no Qt.

Regenerate adds an answer beside the old ones (same parent: versions); editing a question adds a question beside
it (a branch). The conversation remembers its active leaf; switching to a sibling shows that sibling's newest
continuation.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from gui.store_types import Conversation, Message

ACTIVE: Any = type("ActiveLeaf", (), {"__repr__": lambda self: "ACTIVE"})()  # "after the active leaf"


def children_of(tree: Iterable[Message]) -> dict[int | None, list[Message]]:
    """parent id -> its children, oldest first (by id)."""
    children: dict[int | None, list[Message]] = {}
    for message in sorted(tree, key=lambda m: m.id):
        children.setdefault(message.parent_id, []).append(message)
    return children


def newest_leaf(children: dict[int | None, list[Message]], start: int | None) -> int | None:
    """The leaf reached from `start` by always taking the newest child (None when there is nothing)."""
    node = start
    while children.get(node):
        node = children[node][-1].id
    return node


class TreeOps:
    """Mixed into Store: needs _tx, _get_message, _touch, get_conversation."""

    @staticmethod
    def active_path(tree: Sequence[Message], active_id: int | None
                    ) -> tuple[tuple[Message, ...], dict[int, tuple[int, int]]]:
        """(the messages from the first to the active leaf, {id: (number, count)} of those with siblings); a
        leaf that is gone falls back to the newest continuation from the start."""
        by_id = {m.id: m for m in tree}
        children = children_of(tree)
        if active_id not in by_id:
            active_id = newest_leaf(children, None)
        path, seen, node = [], set(), active_id
        while node is not None and node in by_id and node not in seen:
            seen.add(node)
            path.append(by_id[node])
            node = by_id[node].parent_id
        path.reverse()
        versions = {}
        for depth, message in enumerate(path):
            if message.position != depth:
                path[depth] = message = dataclasses.replace(message, position=depth)
            siblings = children.get(message.parent_id, [])
            if len(siblings) > 1:
                versions[message.id] = ([s.id for s in siblings].index(message.id) + 1, len(siblings))
        return tuple(path), versions

    @staticmethod
    def parents_first(tree: Iterable[Message]) -> list[Message]:
        """The messages ordered so that each comes after its parent."""
        children, ordered = children_of(tree), []
        pending = list(reversed(children.get(None, [])))
        while pending:
            message = pending.pop()
            ordered.append(message)
            pending.extend(reversed(children.get(message.id, [])))
        return ordered

    def _tree(self, conn, conversation_id: int) -> list[Message]:
        from gui.store import _MSG_COLUMNS  # the one column list
        return [self._message(row) for row in conn.execute(
            f"SELECT {_MSG_COLUMNS} FROM messages WHERE conversation_id = ?", (conversation_id,))]

    def siblings(self, message_id: int) -> list[Message]:
        """The versions of a message (itself included), oldest first."""
        with self._tx("") as conn:
            message = self._get_message(conn, message_id)
            return children_of(self._tree(conn, message.conversation_id)).get(message.parent_id, [])

    def switch_to(self, message_id: int) -> Conversation:
        """Make the branch through this message active (down to its newest continuation); the conversation."""
        with self._tx() as conn:
            message = self._get_message(conn, message_id)
            leaf = newest_leaf(children_of(self._tree(conn, message.conversation_id)), message_id)
            conn.execute("UPDATE conversations SET active_id = ? WHERE id = ?", (leaf, message.conversation_id))
        conversation = self.get_conversation(message.conversation_id)
        assert conversation is not None
        return conversation

    def delete_message_tree(self, message_id: int) -> int:
        """Delete a message and everything that follows it in any branch; if the active leaf was among them,
        the newest continuation of what is left becomes active. Returns how many messages went."""
        with self._tx() as conn:
            message = self._get_message(conn, message_id)
            conversation_id = message.conversation_id
            self._touch(conn, conversation_id)
            children = children_of(self._tree(conn, conversation_id))
            doomed, pending = [], [message_id]
            while pending:
                node = pending.pop()
                doomed.append(node)
                pending.extend(child.id for child in children.get(node, []))
            for start in range(0, len(doomed), 500):
                chunk = doomed[start:start + 500]
                conn.execute(f"DELETE FROM messages WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            active = conn.execute("SELECT active_id FROM conversations WHERE id = ?", (conversation_id,)).fetchone()[0]
            if active is None or active in doomed:
                left = children_of(self._tree(conn, conversation_id))
                leaf = newest_leaf(left, message.parent_id)
                conn.execute("UPDATE conversations SET active_id = ? WHERE id = ?", (leaf, conversation_id))
            return len(doomed)

    def delete_messages_from(self, conversation_id: int, position: int) -> int:
        """Delete the active path's message at `position` and all that follows it (every branch below it);
        returns how many messages went (0 when the path is shorter)."""
        conversation = self.get_conversation(conversation_id)
        if conversation is None:
            from gui.store_schema import StoreError
            raise StoreError(f"Conversation {conversation_id} does not exist.")
        path = conversation.messages
        return self.delete_message_tree(path[position].id) if 0 <= position < len(path) else 0
