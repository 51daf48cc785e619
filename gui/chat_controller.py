"""The chat flow around the answers: conversations, stop / edit, drafts, settings and the budget; wires the window's
parts together (sending and answering are AnswerFlow's, in answer_flow.py)."""
from __future__ import annotations

import asyncio

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QTextCursor

from .answer_flow import PARTIAL_SAVE_S, AnswerFlow  # noqa: F401 - PARTIAL_SAVE_S is part of this module's API
from .drafts import Drafts
from .engine_thread import EngineClient
from .preset_flow import PresetFlow
from .save_retry import SaveKeeper
from .store import STATE_LAST_CONVERSATION, Message, Store
from .versions import VersionFlow

BUDGET_DEBOUNCE_MS = 250
DRAFT_DEBOUNCE_MS = 1000
SETTINGS_DEBOUNCE_MS = 400


class ChatController(VersionFlow, PresetFlow, AnswerFlow, QObject):
    """Drives one window's conversation; the async flows run on the qasync loop."""

    conversations_changed = Signal()
    answering_changed = Signal(bool)
    editing_changed = Signal(bool)
    error = Signal(str)

    def __init__(self, store: Store, client: EngineClient, view, settings_panel, budget_bar, speed_panel,
                 input_box, parent=None):
        super().__init__(parent)
        self.store, self.client, self.view = store, client, view
        self.settings_panel, self.budget_bar = settings_panel, budget_bar
        self.speed_panel, self.input = speed_panel, input_box
        self.conversation_id: int | None = None
        self.messages: list[Message] = []
        self.answer = None
        self.editing: Message | None = None
        self._draft_before_edit = ""
        self._draft_ready = False  # nothing to save before the first conversation's draft is shown
        self._fresh_settings = True  # the panel holds defaults the user has not touched: a loaded model's replace them
        self.saver = SaveKeeper(store, self)
        self.saver.problem.connect(self._save_problem)
        self.saver.resolved.connect(lambda: self.budget_bar.set_save_notice(""))
        self.drafts = Drafts(store, self.saver.attempt)
        self._draft_timer = QTimer(self, interval=DRAFT_DEBOUNCE_MS, singleShot=True)
        self._draft_timer.timeout.connect(self.save_draft)
        self.search = ""
        self._task: asyncio.Task | None = None
        self._busy = False  # from _start until the task's done-callback has run (buttons follow it)
        self._budget_timer = QTimer(self, interval=BUDGET_DEBOUNCE_MS, singleShot=True)
        self._budget_timer.timeout.connect(self.request_budget)
        self._settings_timer = QTimer(self, interval=SETTINGS_DEBOUNCE_MS, singleShot=True)
        self._settings_timer.timeout.connect(self._save_settings)
        self._client_slots = [(client.token, self._on_token), (client.speed, speed_panel.add_sample),
                              (client.first_token, speed_panel.show_first_token),
                              (client.budget_ready, self._on_budget), (client.loaded, self.model_loaded),
                              (client.state_changed, self._state_changed)]
        for signal, slot in self._client_slots:
            signal.connect(slot)
        view.regenerate_requested.connect(self.regenerate)
        view.version_requested.connect(self.switch_version)
        view.edit_requested.connect(self.edit)
        continue_requested = getattr(view, "continue_requested", None)  # the view offers Continue on cut answers
        if continue_requested is not None:
            continue_requested.connect(self.continue_answer)
        settings_panel.changed.connect(self._settings_changed)
        self._connect_presets()
        input_box.textChanged.connect(self._budget_timer.start)
        input_box.textChanged.connect(self._draft_timer.start)

    # ---- conversations -----------------------------------------------------------------------
    @property
    def answering(self) -> bool:
        """A send or regenerate is in progress (waiting for the model, or generating)."""
        return self._busy

    def conversation_rows(self) -> list[tuple[int, str, dict]]:
        """(id, title, {"updated", "pinned"[, "snippet", "message_id"]}) for the list: all conversations, or the
        search's hits with a snippet of the matching message."""
        conversations = self.store.list_conversations()
        if not self.search.strip():
            return [(c.id, c.title, {"updated": c.updated, "pinned": c.pinned}) for c in conversations]
        by_id = {c.id: c for c in conversations}
        return [(hit.conversation_id, by_id[hit.conversation_id].title,
                 {"updated": by_id[hit.conversation_id].updated, "pinned": by_id[hit.conversation_id].pinned,
                  "snippet": hit.snippet, "message_id": hit.message_id})
                for hit in self.store.search(self.search) if hit.conversation_id in by_id]

    def restore(self) -> None:
        """Reopen where the user left off: the last conversation, else the most recent, else a new one."""
        last = self.store.get_state(STATE_LAST_CONVERSATION)
        if isinstance(last, int) and self.store.get_conversation(last) is not None:
            self.open_conversation(last)
        else:
            rows = self.conversation_rows()
            self.open_conversation(rows[0][0]) if rows else self.new_conversation()

    def open_conversation(self, conversation_id: int) -> None:
        if self.answering or conversation_id == self.conversation_id:
            self.conversations_changed.emit()  # the list shows the conversation that stays open
            return
        conversation = self.store.get_conversation(conversation_id)
        if conversation is None:
            return
        self.cancel_edit()
        self.save_draft()
        self.conversation_id = conversation.id
        self.show_conversation(conversation)
        self.settings_panel.set_settings(conversation.settings)
        self._fresh_settings = False
        self.saver.attempt(self.store.set_state, STATE_LAST_CONVERSATION, conversation.id)
        self._restore_draft()
        self.conversations_changed.emit()
        self._budget_timer.start()

    def new_conversation(self) -> None:
        """An empty conversation; it is stored when its first message is sent."""
        if self.answering:
            return
        self.cancel_edit()
        self.save_draft()
        keep = self.settings_panel.settings()
        self.conversation_id = None
        self.messages = []
        self.view.clear()
        self.settings_panel.set_settings(self.new_settings(keep))
        self._fresh_settings = True
        self.saver.attempt(self.store.set_state, STATE_LAST_CONVERSATION, None)
        self._restore_draft()
        self.conversations_changed.emit()
        self._budget_timer.start()
        self.input.setFocus()

    def rename(self, conversation_id: int, title: str) -> None:
        self.store.rename_conversation(conversation_id, title)
        self.conversations_changed.emit()

    def delete(self, conversation_id: int) -> None:
        self.delete_many([conversation_id])

    def delete_many(self, conversation_ids) -> None:
        """Delete conversations (one transaction); the one being answered is kept."""
        ids = [i for i in conversation_ids if not (self.answering and i == self.conversation_id)]
        if not ids:
            return
        self.store.delete_conversations(ids)
        for conversation_id in ids:
            self.drafts.put(conversation_id, "")
        if self.conversation_id in ids:
            self.conversation_id = None
            self.restore()
        self.conversations_changed.emit()

    def set_pinned(self, conversation_id: int, pinned: bool) -> None:
        self.store.set_pinned(conversation_id, pinned)
        self.conversations_changed.emit()

    def set_search(self, text: str) -> None:
        self.search = text
        self.conversations_changed.emit()

    # ---- stop and edit -----------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the answer (Esc / Stop): ends within one decode step; the partial answer is kept."""
        if self.answer is None:
            self.cancel_edit()
        elif self.answer.generating:
            self.client.stop()
        elif self._task is not None:
            self._task.cancel()  # still waiting for the model: nothing to stop in the worker

    def edit(self, message_id: int) -> None:
        """Edit-and-resend: the message's text goes to the input box; sending replaces it and what follows."""
        message = self._message(message_id)
        if message is None or self.answering or message.role != "user":
            return
        if self.editing is None:
            self._draft_before_edit = self.input.toPlainText()
        self.editing = message
        self.input.set_message(message.content)  # its attachments go back to the attachment row
        self._caret_to_end()
        self.input.setFocus()
        self.editing_changed.emit(True)
        self._budget_timer.start()

    def cancel_edit(self) -> None:
        if self.editing is not None:
            self.editing = None
            self.input.setPlainText(self._draft_before_edit)
            self._caret_to_end()
            self.editing_changed.emit(False)

    def _caret_to_end(self) -> None:
        self.input.moveCursor(QTextCursor.MoveOperation.End)

    def _start(self, coroutine) -> None:
        self._task = asyncio.ensure_future(coroutine)
        self._task.add_done_callback(self._task_done)
        self._set_answering(True)

    def _task_done(self, task: asyncio.Task) -> None:
        if task is self._task:
            self._set_answering(False)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.error.emit(str(exc) or exc.__class__.__name__)

    def prompt_history(self, before: Message | None = None) -> list[dict]:
        """The conversation as the chat rule gets it (messages without text are left out), up to `before`
        (a message being edited) when given."""
        return [{"role": m.role, "content": m.content} for m in self.messages
                if m.content.strip() and (before is None or m.position < before.position)]

    def _message(self, message_id: int) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def _set_answering(self, answering: bool) -> None:
        self._busy = answering
        self.view.set_busy(answering)
        self.answering_changed.emit(answering)

    def detach(self) -> None:
        """Stop listening to the client (the window closes but the client lives on, e.g. shared in tests)."""
        for signal, slot in self._client_slots:
            signal.disconnect(slot)
        self._client_slots = []
        self._budget_timer.stop()
        self._draft_timer.stop()

    # ---- drafts and the save notice ----------------------------------------------------------
    def save_draft(self) -> None:
        """Remember the input box's unsent text for this conversation (not while editing a sent message)."""
        self._draft_timer.stop()
        if self.editing is None and self._draft_ready:
            self.drafts.put(self.conversation_id, self.input.toPlainText())

    def _restore_draft(self) -> None:
        self._draft_timer.stop()
        self.input.blockSignals(True)  # restoring is no edit: no draft write, no budget count of its own
        try:
            self.input.setPlainText(self.drafts.get(self.conversation_id))
        finally:
            self.input.blockSignals(False)
        self._draft_ready = True
        self._caret_to_end()

    def _save_problem(self, reason: str) -> None:
        """The one notice for history writes that failed; it stays until they go through (no dialogs)."""
        if not reason.startswith(self.tr("Your message")):
            reason = self.tr("Could not save to the history: {reason}. What is shown is kept in this window and "
                             "saved as soon as the history can take it.").format(reason=reason.rstrip("."))
        self.budget_bar.set_save_notice(reason)

    # ---- settings and budget -----------------------------------------------------------------
    def _state_changed(self, state: str) -> None:
        if state != "ready":
            self.budget_bar.clear()

    def _model_defaults(self) -> dict:
        return dict((self.client.info or {}).get("defaults") or {})

    def _settings_changed(self, _settings: dict) -> None:
        self._fresh_settings = False  # the user chose these: a model loaded later keeps them
        self._settings_timer.start()
        self._budget_timer.start()

    def _save_settings(self) -> None:
        if self.conversation_id is not None:
            self.saver.attempt(self.store.update_settings, self.conversation_id, self.settings_panel.settings())

    def save_pending_settings(self) -> None:
        if self._settings_timer.isActive():
            self._settings_timer.stop()
            self._save_settings()

    def model_loaded(self, info: dict) -> None:
        self.settings_panel.set_model_info(info)
        self.view.author = info.get("name", "")
        if self.conversation_id is None or self._fresh_settings:
            # A new conversation (or one sent while the model loaded, settings untouched) takes its preset as
            # resolved against this model's defaults, before a send waiting for the model reads them.
            self.settings_panel.set_settings(self.new_settings(self.settings_panel.settings()))
            self._save_settings()
        self._budget_timer.start()

    def budget_messages(self) -> list[dict]:
        """What the next send would hand the chat rule: the history (cut at an edit) and the input text."""
        return self.prompt_history(self.editing) + [{"role": "user", "content": self.input.message_text()}]

    def request_budget(self) -> None:
        self.client.request_budget(self.budget_messages(), self.settings_panel.settings())

    def _on_budget(self, result: dict) -> None:
        if "error" in result:
            self.budget_bar.clear()
            return
        self.settings_panel.set_max_new_tokens_limit(result["max_new_tokens_limit"])
        self.budget_bar.set_attachments(result.get("attachments", []))
        self.budget_bar.set_budget(result["prompt_tokens"], result["max_new_tokens"], result["max_seq_len"],
                                   result["dropped_rounds"], result.get("cut_tokens", 0))
