"""The chat flow: conversations, send / stop / regenerate / edit, streaming into the view, history commits."""
from __future__ import annotations

import asyncio
import time

from PySide6.QtCore import QObject, QTimer, Signal

from .engine_client import EngineClient, WorkerError
from .settings_panel import default_settings
from .store import STATE_LAST_CONVERSATION, Message, Store

PARTIAL_SAVE_S = 0.5  # a streaming answer is saved at least this often, so a kill -9 keeps it
BUDGET_DEBOUNCE_MS = 250
SETTINGS_DEBOUNCE_MS = 400
TITLE_LENGTH = 48


class _Answer:
    """The answer being produced: its message, widget and the text streamed so far."""

    def __init__(self, message_id: int, widget, stream: bool):
        self.message_id, self.widget, self.stream = message_id, widget, stream
        self.text = ""
        self.token_ids: list[int] = []
        self.saved_at = time.monotonic()
        self.generating = False


class ChatController(QObject):
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
        self.answer: _Answer | None = None
        self.editing: Message | None = None
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
        view.edit_requested.connect(self.edit)
        settings_panel.changed.connect(self._settings_changed)
        input_box.textChanged.connect(self._budget_timer.start)

    # ---- conversations -----------------------------------------------------------------------
    @property
    def answering(self) -> bool:
        """A send or regenerate is in progress (waiting for the model, or generating)."""
        return self._busy

    def conversation_rows(self) -> list[tuple[int, str]]:
        return [(c.id, c.title) for c in self.store.list_conversations(self.search)]

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
        self.conversation_id = conversation.id
        self.messages = list(conversation.messages)
        self.view.set_messages([(m.id, m.role, m.content, m.status, m.metrics) for m in self.messages])
        self.settings_panel.set_settings(conversation.settings)
        self.store.set_state(STATE_LAST_CONVERSATION, conversation.id)
        self.conversations_changed.emit()
        self._budget_timer.start()

    def new_conversation(self) -> None:
        """An empty conversation; it is stored when its first message is sent."""
        if self.answering:
            return
        self.cancel_edit()
        keep = self.settings_panel.settings()
        self.conversation_id = None
        self.messages = []
        self.view.clear()
        self.settings_panel.set_settings({**default_settings(self._model_defaults()),
                                          "system_prompt": keep["system_prompt"], "stream": keep["stream"]})
        self.store.set_state(STATE_LAST_CONVERSATION, None)
        self.conversations_changed.emit()
        self._budget_timer.start()
        self.input.setFocus()

    def rename(self, conversation_id: int, title: str) -> None:
        self.store.rename_conversation(conversation_id, title)
        self.conversations_changed.emit()

    def delete(self, conversation_id: int) -> None:
        if self.answering and conversation_id == self.conversation_id:
            return
        self.store.delete_conversation(conversation_id)
        if conversation_id == self.conversation_id:
            self.conversation_id = None
            self.restore()
        self.conversations_changed.emit()

    def set_search(self, text: str) -> None:
        self.search = text
        self.conversations_changed.emit()

    # ---- sending -----------------------------------------------------------------------------
    def send(self) -> None:
        """Send the input box's text (Enter); while the model loads, the answer waits for it."""
        text = self.input.toPlainText().strip()
        if not text or self.answering:
            return
        self.input.clear()
        self._start(self._send_flow(text, self.editing))
        if self.editing is not None:
            self.editing = None
            self.editing_changed.emit(False)

    def stop(self) -> None:
        """Stop the answer (Esc / Stop): ends within one decode step; the partial answer is kept."""
        if self.answer is None:
            self.cancel_edit()
        elif self.answer.generating:
            self.client.stop()
        elif self._task is not None:
            self._task.cancel()  # still waiting for the model: nothing to stop in the worker

    def regenerate(self, message_id: int) -> None:
        """Answer again from this assistant message (it and later messages are removed)."""
        message = self._message(message_id)
        if message is None or self.answering or message.role != "assistant":
            return
        self._truncate(message)
        self._start(self._answer_flow(self.conversation_id))

    def edit(self, message_id: int) -> None:
        """Edit-and-resend: the message's text goes to the input box; sending replaces it and what follows."""
        message = self._message(message_id)
        if message is None or self.answering or message.role != "user":
            return
        self.editing = message
        self.input.setPlainText(message.content)
        self.input.setFocus()
        self.editing_changed.emit(True)
        self._budget_timer.start()

    def cancel_edit(self) -> None:
        if self.editing is not None:
            self.editing = None
            self.input.clear()
            self.editing_changed.emit(False)

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

    async def _send_flow(self, text: str, editing: Message | None) -> None:
        if editing is not None and editing.conversation_id == self.conversation_id:
            self._truncate(editing)
        if self.conversation_id is None:
            title = " ".join(text.split())[:TITLE_LENGTH] or "…"
            model = (self.client.info or {}).get("name", "")
            created = self.store.create_conversation(title, settings=self.settings_panel.settings(), model_name=model)
            self.conversation_id = created.id
            self.store.set_state(STATE_LAST_CONVERSATION, created.id)
            self.conversations_changed.emit()
        message = await asyncio.to_thread(self.store.add_message, self.conversation_id, "user", text)
        self.messages.append(message)
        self.view.add_message(message.id, "user", text)
        await self._answer_flow(self.conversation_id)

    async def _answer_flow(self, conversation_id: int) -> None:
        history = self.prompt_history()
        settings = self.settings_panel.settings()
        begun = await asyncio.to_thread(self.store.begin_assistant_message, conversation_id)
        widget = self.view.add_message(begun.id, "assistant", "", "streaming")
        answer = self.answer = _Answer(begun.id, widget, bool(settings["stream"]))
        self.view.set_busy(True)
        status, text, metrics, failure = "stopped", "", {}, ""
        try:
            if self.client.state != "ready":
                widget.set_placeholder(self.tr("Waiting for the model to load…"))
            await self.client.wait_ready()
            widget.set_placeholder("" if answer.stream else self.tr("Generating… (streaming is off)"))
            self.speed_panel.start()
            answer.generating = True
            result = await self.client.generate(history, settings)
            text, metrics = result["text"], dict(result["metrics"])
            status = "stopped" if result["finish_reason"] == "cancelled" else "complete"
            self.speed_panel.show_metrics(metrics)
        except asyncio.CancelledError:
            text = answer.text
        except WorkerError as exc:
            text, status, failure = answer.text, "error", str(exc)
            metrics = {"error": failure}
        finally:
            self.view.flush()
            final = await asyncio.to_thread(self.store.finish_message, begun.id, text, status, metrics)
            self.messages.append(final)
            widget.finish(text, status, metrics)
            self.answer = None
            self.conversations_changed.emit()
            self._budget_timer.start()
        if failure:
            self.error.emit(failure)

    def prompt_history(self) -> list[dict]:
        """The conversation as the chat rule gets it (messages without text are left out)."""
        return [{"role": m.role, "content": m.content} for m in self.messages if m.content.strip()]

    def _truncate(self, message: Message) -> None:
        self.store.delete_messages_from(message.conversation_id, message.position)
        self.messages = [m for m in self.messages if m.position < message.position]
        self.view.remove_from(message.id)

    def _message(self, message_id: int) -> Message | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def _set_answering(self, answering: bool) -> None:
        self._busy = answering
        self.view.set_busy(answering)
        self.answering_changed.emit(answering)

    def _on_token(self, text: str, token_id: int) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.text += text
        answer.token_ids.append(token_id)
        if answer.stream:
            self.view.update_text(answer.widget, answer.text)
        now = time.monotonic()
        if now - answer.saved_at >= PARTIAL_SAVE_S:
            answer.saved_at = now
            self.store.update_streaming_content(answer.message_id, answer.text)

    def detach(self) -> None:
        """Stop listening to the client (the window closes but the client lives on, e.g. shared in tests)."""
        for signal, slot in self._client_slots:
            signal.disconnect(slot)
        self._client_slots = []
        self._budget_timer.stop()

    def finish_now(self) -> None:
        """The window closes mid-answer: stop it and commit the partial text as stopped, synchronously."""
        if self.answer is not None:
            self.client.stop()
            self.store.finish_message(self.answer.message_id, self.answer.text, "stopped", {})
        if self.answering:
            self._task.cancel()

    # ---- settings and budget -----------------------------------------------------------------
    def _state_changed(self, state: str) -> None:
        if state != "ready":
            self.budget_bar.clear()

    def _model_defaults(self) -> dict:
        return dict((self.client.info or {}).get("defaults") or {})

    def _settings_changed(self, _settings: dict) -> None:
        self._settings_timer.start()
        self._budget_timer.start()

    def _save_settings(self) -> None:
        if self.conversation_id is not None:
            self.store.update_settings(self.conversation_id, self.settings_panel.settings())

    def save_pending_settings(self) -> None:
        if self._settings_timer.isActive():
            self._settings_timer.stop()
            self._save_settings()

    def model_loaded(self, info: dict) -> None:
        self.settings_panel.set_model_info(info)
        self.view.author = info.get("name", "")
        if self.conversation_id is None:
            current = self.settings_panel.settings()
            self.settings_panel.set_settings({**default_settings(info.get("defaults")),
                                              "system_prompt": current["system_prompt"],
                                              "stream": current["stream"]})
        self._budget_timer.start()

    def budget_messages(self) -> list[dict]:
        """What the next send would hand the chat rule: the history (cut at an edit) and the input text."""
        history = self.messages
        if self.editing is not None:
            history = [m for m in history if m.position < self.editing.position]
        messages = [{"role": m.role, "content": m.content} for m in history if m.content.strip()]
        return messages + [{"role": "user", "content": self.input.toPlainText().strip()}]

    def request_budget(self) -> None:
        self.client.request_budget(self.budget_messages(), self.settings_panel.settings())

    def _on_budget(self, result: dict) -> None:
        if "error" in result:
            self.budget_bar.clear()
            return
        self.settings_panel.set_max_new_tokens_limit(result["max_new_tokens_limit"])
        self.budget_bar.set_budget(result["prompt_tokens"], result["max_new_tokens"], result["max_seq_len"],
                                   result["dropped_rounds"])
