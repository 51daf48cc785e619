"""Unsent input text per conversation, remembered in the history's app state across restarts."""
from __future__ import annotations

from .store import Store

STATE_DRAFTS = "drafts"  # app_state key: {"<conversation id>" or "new": text}
NEW = "new"  # the draft of the conversation that is not stored yet


class Drafts:
    """get/put the draft of a conversation (None = the new, unsaved one); empty text removes it."""

    def __init__(self, store: Store, write):
        self.store = store
        self._write = write  # SaveKeeper.attempt: a full disk becomes the one notice, never a dialog

    @staticmethod
    def key(conversation_id: int | None) -> str:
        return NEW if conversation_id is None else str(conversation_id)

    def _all(self) -> dict:
        drafts = self.store.get_state(STATE_DRAFTS)
        return dict(drafts) if isinstance(drafts, dict) else {}

    def get(self, conversation_id: int | None) -> str:
        text = self._all().get(self.key(conversation_id), "")
        return text if isinstance(text, str) else ""

    def put(self, conversation_id: int | None, text: str) -> None:
        drafts = self._all()
        key = self.key(conversation_id)
        if drafts.get(key, "") == text:
            return
        if text:
            drafts[key] = text
        else:
            drafts.pop(key, None)
        self._write(self.store.set_state, STATE_DRAFTS, drafts or None)
