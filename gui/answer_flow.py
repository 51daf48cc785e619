"""The answering half of the chat controller: Send (the input box's signal lands here), then one answer (new,
regenerated or continued) streamed into its MessageWidget, saved and finished."""
from __future__ import annotations

import asyncio
import dataclasses
import sys
import time

from PySide6.QtWidgets import QMessageBox

from .attachment_bar import refuse_unfit
from .engine_thread import WorkerError
from .store import STATE_LAST_CONVERSATION, Message, StoreError
from .store_tree import ACTIVE

PARTIAL_SAVE_S = 0.5  # a streaming answer is saved at least this often, so a kill -9 keeps it
BUDGET_COUNT_TIMEOUT_S = 10.0
TITLE_LENGTH = 48


class _Answer:
    """The answer being produced: its message, widget and the text streamed so far (after `prefix`, the text
    it already had when it is a continuation)."""

    def __init__(self, message_id: int, widget, stream: bool, prefix: str = ""):
        self.message_id, self.widget, self.stream, self.prefix = message_id, widget, stream, prefix
        self.text = ""
        self.token_ids: list[int] = []
        self.saved_at = time.monotonic()
        self.generating = False

    @property
    def full_text(self) -> str:
        return self.prefix + self.text


class AnswerFlow:
    """Mixed into ChatController: needs store, saver, drafts, client, view, input, settings_panel, speed_panel,
    messages, editing and _start."""

    answer: _Answer | None = None
    confirm_box: QMessageBox | None = None

    def send(self) -> None:
        """Send the input box's text (Enter); while the model loads, the answer waits for it. If the text is not
        sent after all (the user declines a cut, or the history cannot store it) it comes back to the box."""
        text = self.input.message_text()  # the typed text and the attached files
        if not text or self.answering:
            return
        editing = self.editing
        self._draft_before_edit = ""
        self.input.clear()
        if editing is not None:
            self.editing = None
            self.editing_changed.emit(False)
        self._start(self._send_flow(text, editing))

    async def _send_flow(self, text: str, editing: Message | None) -> None:
        history = self.prompt_history(editing)
        ready = self.client.state == "ready"
        if ready and await refuse_unfit(self, history + [{"role": "user", "content": text}]):
            self._give_back(text, editing)  # attachments that do not fit: never cut, the budget bar says why
            return
        if ready and not await self._confirm_cut(history + [{"role": "user", "content": text}],
                                                 self.settings_panel.settings()):
            self._give_back(text, editing)
            return
        try:
            message = await self._store_question(text, editing)
        except StoreError as exc:
            self._save_problem(self.tr("Your message could not be saved ({reason}); it is back in the input box.")
                               .format(reason=str(exc).rstrip(".")))
            self._give_back(text, editing)
            return
        self.drafts.put(self.conversation_id, "")
        self.drafts.put(None, "")
        self.messages.append(message)
        self.view.add_message(message.id, "user", text, versions=self.versions_of(message))
        await self._answer_flow(self.conversation_id, retract=message, checked=ready)

    async def _store_question(self, text: str, editing: Message | None) -> Message:
        """Commit the question (an edit: a new branch beside the edited one, which stays); StoreError leaves
        the shown conversation as it was."""
        if self.conversation_id is None:
            title = " ".join(text.split())[:TITLE_LENGTH] or "…"
            model = (self.client.info or {}).get("name", "")
            created = self.store.create_conversation(title, settings=self.settings_panel.settings(), model_name=model)
            self.conversation_id = created.id
            self.saver.attempt(self.store.set_state, STATE_LAST_CONVERSATION, created.id)
            self.conversations_changed.emit()
        branch = editing is not None and editing.conversation_id == self.conversation_id
        message = await asyncio.to_thread(self.store.add_message, self.conversation_id, "user", text,
                                          **({"parent_id": editing.parent_id} if branch else {}))
        if branch:
            self.messages = [m for m in self.messages if m.position < editing.position]
            self.view.remove_from(editing.id)
        if self.saver.failing and not self.saver.pending:
            self.saver.retry()  # a write went through again: clear the notice
        return message

    def _give_back(self, text: str, editing: Message | None = None) -> None:
        """A message that was not sent goes back into the input box (before anything typed since)."""
        typed = self.input.toPlainText()
        self.input.set_message(text + ("\n\n" + typed if typed.strip() else ""))
        self._caret_to_end()
        if editing is not None and self.editing is None and editing in self.messages:
            self.editing = editing  # still editing that message: Enter tries again
            self.editing_changed.emit(True)

    async def _answer_flow(self, conversation_id: int, retract: Message | None = None, checked: bool = False,
                           resume: Message | None = None, parent=ACTIVE) -> None:
        """Answer the conversation. `retract`: the user message just sent (back into the input box if the user
        declines a prompt that would be cut); `checked`: that was asked already; `resume`: an assistant
        message to continue in place; `parent`: the question a regenerated answer is a new version of."""
        history = self.prompt_history()
        if resume is None:
            begun = await asyncio.to_thread(self.store.begin_assistant_message, conversation_id, parent)
            widget = self.view.add_message(begun.id, "assistant", "", "streaming", versions=self.versions_of(begun))
        else:
            begun = await asyncio.to_thread(self.store.resume_streaming, resume.id)
            self.messages = [m for m in self.messages if m.id != resume.id]
            widget = self.view.widget_for(resume.id)
        answer = self.answer = _Answer(begun.id, widget, True, begun.content if resume is not None else "")
        self.view.set_busy(True)
        status, text, metrics, failure, declined = "stopped", "", {}, "", False
        try:
            if self.client.state != "ready":
                widget.set_placeholder(self.tr("Waiting for the model to load…"))
            await self.client.wait_ready()
            # Read only now: a model that finished loading meanwhile has put its own defaults in the panel.
            settings = self.settings_panel.settings()
            answer.stream = bool(settings["stream"])
            if resume is None and not checked and not await self._confirm_cut(history, settings):
                raise _Declined()
            widget.set_placeholder("" if answer.stream else self.tr("Generating… (streaming is off)"))
            self.speed_panel.start()
            answer.generating = True
            result = await self.client.generate(history, settings)
            text, metrics = result["text"], dict(result["metrics"])
            metrics["finish_reason"] = result["finish_reason"]
            status = "stopped" if result["finish_reason"] == "cancelled" else "complete"
            self.speed_panel.show_metrics(metrics)
        except _Declined:
            declined = True
        except asyncio.CancelledError:
            text = answer.text
        except WorkerError as exc:
            text, status, failure = answer.text, "error", str(exc)
            metrics = {"error": failure}
        finally:
            if declined:
                self._take_back(begun, retract)
            else:
                self._finish_answer(begun, widget, answer.prefix + text, status, metrics)
        if failure:
            self.error.emit(failure)

    def _finish_answer(self, begun: Message, widget, text: str, status: str, metrics: dict) -> None:
        model = (self.client.info or {}).get("name", "")
        if model:
            metrics = {**metrics, "model": model}
        final = self.saver.finish(begun.id, text, status, metrics)
        if final is None:  # not written (disk full...): the window keeps it, the saver writes it later
            final = dataclasses.replace(begun, content=text, status=status, metrics=metrics)
        self.messages.append(final)
        self._fresh_settings = False  # answered with these settings: they stay this conversation's
        widget.finish(text, status, metrics)
        self._show_author(final)
        self.answer = None
        self.conversations_changed.emit()
        self._budget_timer.start()

    def _take_back(self, begun: Message, retract: Message | None) -> None:
        """The user declined sending a prompt that would be cut: nothing was sent (the new answer, and the new
        question, go; an earlier version or branch is shown again), the text goes back."""
        self.answer = None
        gone = retract if isinstance(retract, Message) else begun
        self.saver.attempt(self.store.delete_message_tree, gone.id)
        self.messages = [m for m in self.messages if m.position < gone.position]
        self.view.remove_from(gone.id)
        self.reload()
        if isinstance(retract, Message):
            self._give_back(retract.content)

    async def _confirm_cut(self, history: list[dict], settings: dict) -> bool:
        """True to go on; when the newest message will be cut to fit, the user decides (default: no)."""
        cut = await self._cut_tokens(history, settings)
        if not cut:
            return True
        box = self.confirm_box = QMessageBox(
            QMessageBox.Icon.Warning, self.tr("Message too long"),
            self.tr("This message does not fit in MAX_SEQ_LEN with the answer's max new tokens: the model will "
                    "not see its first %n token(s). Send it cut anyway? (Shorten it, or lower Max new tokens, to "
                    "send all of it.)", "", cut),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self.input.window())
        box.button(QMessageBox.StandardButton.Yes).setText(self.tr("Send cut"))
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        done = asyncio.get_event_loop().create_future()
        box.finished.connect(lambda code: done.done() or done.set_result(code))
        box.open()
        try:
            code = await done
        finally:
            self.confirm_box = None
            box.deleteLater()
        return code == QMessageBox.StandardButton.Yes

    async def _cut_tokens(self, history: list[dict], settings: dict) -> int:
        self._budget_timer.stop()
        for _ in range(3):  # a newer count may replace ours before the worker gets to it
            try:
                result = await asyncio.wait_for(self.client.count_budget(history, settings), BUDGET_COUNT_TIMEOUT_S)
            except asyncio.TimeoutError:
                return 0
            if result is not None:
                return 0 if "error" in result else int(result.get("cut_tokens", 0))
        return 0

    def continue_answer(self, message_id: int) -> None:
        """Continue an answer that stopped at max new tokens, in place: the history ends with it, so the chat
        rule adds no new assistant turn and the model goes on where it stopped."""
        message = self._message(message_id)
        if (message is None or self.answering or message.role != "assistant" or not self.messages
                or self.messages[-1].id != message_id or not message.content):
            return
        self._start(self._answer_flow(self.conversation_id, resume=message))

    def _on_token(self, text: str, token_id: int) -> None:
        answer = self.answer
        if answer is None:
            return
        answer.text += text
        answer.token_ids.append(token_id)
        if answer.stream:
            answer.widget.stream_text(answer.full_text)  # rendered at its next frame (≤ 60 Hz)
        now = time.monotonic()
        if now - answer.saved_at >= PARTIAL_SAVE_S:
            answer.saved_at = now
            self.saver.partial(answer.message_id, answer.full_text)  # a failure: the text stays here, one notice

    def finish_now(self) -> None:
        """The window closes: stop a running answer and commit its partial text as stopped, synchronously; keep
        the draft; one last try at answers the history refused earlier."""
        self.save_draft()
        if self.answer is not None:
            self.client.stop()
            self.saver.finish(self.answer.message_id, self.answer.full_text, "stopped", {})
        if self.answering:
            self._task.cancel()
        if not self.saver.retry():
            print(f"baichuan-chat: {len(self.saver.pending)} answer(s) could not be saved to the history",
                  file=sys.stderr, flush=True)
        self.saver.stop()

    def _show_author(self, message: Message) -> None:
        """The model that wrote an answer, as stored with it (the view otherwise shows the current model)."""
        model = message.metrics.get("model") if isinstance(message.metrics, dict) else None
        widget = self.view.widget_for(message.id) if message.role == "assistant" and model else None
        if widget is not None and getattr(widget, "author", None) != model:
            widget.author = model
            widget.retranslate_ui()


class _Declined(Exception):
    """The user chose not to send a prompt that would be cut."""
