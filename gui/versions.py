"""The chat controller's versions and branches: regenerate beside the old answer, switch ‹ › , open a search hit."""
from __future__ import annotations

from .store import Conversation, Message, StoreError
from .store_search import search_terms


def shown(messages, versions) -> list[tuple]:
    """Messages as ChatView takes them: (id, role, text, status, metrics, (number, count) or None)."""
    return [(m.id, m.role, m.content, m.status, m.metrics, versions.get(m.id)) for m in messages]


class VersionFlow:
    """Mixed into ChatController: needs store, view, messages, conversation_id, answering, _start, _answer_flow."""

    def regenerate(self, message_id: int) -> None:
        """Answer again: a new version beside this answer (the old one stays, reachable with ‹ ›)."""
        message = self._message(message_id)
        if message is None or self.answering or message.role != "assistant":
            return
        self.messages = [m for m in self.messages if m.position < message.position]
        self.view.remove_from(message.id)
        self._start(self._answer_flow(self.conversation_id, parent=message.parent_id))

    def versions_of(self, message: Message) -> tuple[int, int] | None:
        """(number, count) of a message among its versions; None when it is the only one."""
        ids = [m.id for m in self.store.siblings(message.id)]
        return (ids.index(message.id) + 1, len(ids)) if len(ids) > 1 else None

    def switch_version(self, message_id: int, delta: int) -> None:
        """Show the previous (-1) or next (+1) version of an answer, or branch of an edited question, with what
        follows it; the prompt of the next send is that path."""
        message = self._message(message_id)
        if message is None or self.answering:
            return
        siblings = [m.id for m in self.store.siblings(message_id)]
        index = siblings.index(message_id) + delta
        if not 0 <= index < len(siblings):
            return
        self.cancel_edit()
        self._show_from(self.store.switch_to(siblings[index]), message)

    def _show_from(self, conversation: Conversation, replaced: Message) -> None:
        """The path changed from `replaced` on: show the new one from there, keeping the view where it is."""
        self.messages = list(conversation.messages)
        tail = [m for m in self.messages if m.position >= replaced.position]
        self.view.replace_from(replaced.id, shown(tail, conversation.versions))
        for message in tail:
            self._show_author(message)
        self._budget_timer.start()

    def show_conversation(self, conversation: Conversation) -> None:
        """Show a conversation's active path from the start (opened, or changed under the view)."""
        self.messages = list(conversation.messages)
        self.view.set_messages(shown(self.messages, conversation.versions))
        for message in self.messages:
            self._show_author(message)

    def reload(self) -> None:
        conversation = self.store.get_conversation(self.conversation_id) if self.conversation_id else None
        if conversation is not None:
            self.show_conversation(conversation)

    def open_hit(self, conversation_id: int, message_id: int | None) -> None:
        """Open a search result: its conversation on the branch that holds the hit, scrolled to the message,
        the searched words marked."""
        if self.answering:
            self.conversations_changed.emit()
            return
        self.open_conversation(conversation_id)
        if self.conversation_id != conversation_id or message_id is None:
            return
        if self._message(message_id) is None:
            try:
                self.cancel_edit()
                self.show_conversation(self.store.switch_to(message_id))
            except StoreError:
                return  # deleted meanwhile: the conversation is open, that is all
        self.view.reveal(message_id, search_terms(self.search))
