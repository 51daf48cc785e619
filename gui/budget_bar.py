"""Token budget of the next send (prompt + max new tokens against MAX_SEQ_LEN, dropped rounds, tokens that will be
cut, what attached files cost and whether they fit), and the composer's one save notice (history writes that
failed)."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPainterPath
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

PROMPT_COLOR = QColor("#4f7cff")
NEW_COLOR = QColor("#27b59a")
WARNING_COLOR = QColor("#d9534f")


class _Bar(QWidget):
    """The drawn bar: prompt part, reserved-for-answer part, free part."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedHeight(6)
        self.fractions = (0.0, 0.0)
        self.warning = False

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect())
        clip = QPainterPath()
        clip.addRoundedRect(rect, 3, 3)
        painter.setClipPath(clip)
        track = self.palette().mid().color()
        track.setAlpha(70)
        painter.fillRect(rect, track)
        prompt, new = self.fractions
        width = rect.width()
        painter.fillRect(QRectF(0, 0, width * prompt, rect.height()), WARNING_COLOR if self.warning else PROMPT_COLOR)
        painter.fillRect(QRectF(width * prompt, 0, width * new, rect.height()), NEW_COLOR)


class BudgetBar(QWidget):
    """Shows the engine's chat-rule count for the next send; numbers come from engine.encode_chat."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("budgetBar")
        self.values: dict | None = None
        self.cut_tokens = 0
        self.attachments: list[tuple[str, int]] = []  # (file name, tokens) of the next send's attachments
        self.estimate = ""  # how a remote model's count was estimated ('' = counted by the model's tokenizer)
        self.bar = _Bar()
        self.label = QLabel(objectName="budgetLabel")
        self.notice = QLabel(objectName="budgetNotice")
        self.notice.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.save_notice = QLabel(objectName="saveNotice", wordWrap=True)
        self.save_notice.setStyleSheet(f"color: {WARNING_COLOR.name()};")
        self.save_notice.hide()
        self.attachment_label = QLabel(objectName="budgetAttachments", wordWrap=True)
        self.attachment_label.hide()
        self.refusal_label = QLabel(objectName="attachmentRefusal", wordWrap=True)
        self.refusal_label.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.notice)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.setSpacing(3)
        layout.addWidget(self.save_notice)
        layout.addWidget(self.bar)
        layout.addLayout(row)
        layout.addWidget(self.attachment_label)
        layout.addWidget(self.refusal_label)
        self._show()

    def set_budget(self, prompt_tokens: int, max_new_tokens: int, max_seq_len: int, dropped_rounds: int,
                   cut_tokens: int = 0) -> None:
        """Show one encode_chat result for the next send (cut_tokens: the start of the message that won't fit)."""
        self.values = {"prompt_tokens": int(prompt_tokens), "max_new_tokens": int(max_new_tokens),
                       "max_seq_len": int(max_seq_len), "dropped_rounds": int(dropped_rounds)}
        self.cut_tokens = int(cut_tokens)
        self._show()

    def set_attachments(self, counts) -> None:
        """What each attachment of the next send costs: (file name, tokens) pairs from the model's tokenizer."""
        self.attachments = [(str(name), int(tokens)) for name, tokens in counts]
        self._show()

    def refusal(self) -> str:
        """The sentence that stops a send whose attachments do not fit ('' when they fit, or there are none)."""
        v = self.values
        if v is None or not self.cut_tokens or not self.attachments:
            return ""
        name, tokens = max(self.attachments, key=lambda pair: pair[1])
        room = v["max_seq_len"] - v["max_new_tokens"]
        return self.tr("{name} ({tokens} tokens) does not fit: with {new} max new tokens, the prompt can hold {room} "
                       "of MAX_SEQ_LEN {m} tokens and this message needs {cut} more. Remove the file, shorten the "
                       "message or lower Max new tokens; attachments are never cut.").format(
            name=name, tokens=f"{tokens:,}", new=f"{v['max_new_tokens']:,}", room=f"{room:,}",
            m=f"{v['max_seq_len']:,}", cut=f"{self.cut_tokens:,}")

    def flash(self) -> None:
        """Draw the eye to the notice (a send was refused): bold for a moment."""
        self.refusal_label.setStyleSheet(f"color: {WARNING_COLOR.name()}; font-weight: bold;")
        QTimer.singleShot(1500, self._show)

    def set_estimate(self, note: str) -> None:
        """Mark the shown count as an estimate, e.g. 'estimated: ~chars/3' ('' = exact)."""
        self.estimate = note
        self._show()

    def set_save_notice(self, text: str) -> None:
        """The one non-modal notice about the history (empty hides it); a new text replaces the old one."""
        self.save_notice.setText(text)
        self.save_notice.setVisible(bool(text))

    def clear(self) -> None:
        """No model: nothing to count against."""
        self.values = None
        self.cut_tokens = 0
        self.attachments = []
        self._show()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._show()
        super().changeEvent(event)

    def _show(self) -> None:
        v = self.values
        if v is None:
            self.bar.fractions = (0.0, 0.0)
            self.bar.warning = False
            self.notice.setStyleSheet("")
            self.label.setText(self.tr("Token budget: waiting for the model"))
            self.notice.setText("")
        else:
            total = max(1, v["max_seq_len"])
            prompt = min(1.0, v["prompt_tokens"] / total)
            self.bar.fractions = (prompt, min(1.0 - prompt, v["max_new_tokens"] / total))
            self.label.setText(self.tr("Prompt {p} + max new {n} of MAX_SEQ_LEN {m} tokens").format(
                p=v["prompt_tokens"], n=v["max_new_tokens"], m=v["max_seq_len"]))
            if self.estimate:  # a remote model without its tokenizer here: say so (sending is never blocked on it)
                self.label.setText(f"≈ {self.label.text()} ({self.estimate})")
            dropped, cut = v["dropped_rounds"], self.cut_tokens
            if cut and self.attachments:
                self.notice.setText("")  # the refusal below says it: attachments are never cut
            elif cut:
                self.notice.setText(self.tr("%n token(s) will be cut from the start of your message", "", cut))
            else:
                self.notice.setText(self.tr("%n old round(s) will be dropped", "", dropped) if dropped else "")
            self.bar.warning = bool(cut)
            self.notice.setStyleSheet(f"color: {WARNING_COLOR.name()};" if cut else "")
        refusal = self.refusal()
        self.refusal_label.setText(refusal)
        self.refusal_label.setStyleSheet(f"color: {WARNING_COLOR.name()};")
        self.refusal_label.setVisible(bool(refusal))
        shown = ", ".join(self.tr("{name} {tokens} tokens").format(name=name, tokens=f"{tokens:,}")
                          for name, tokens in self.attachments)
        self.attachment_label.setText(self.tr("Attachments: {files}").format(files=shown) if shown else "")
        self.attachment_label.setVisible(bool(shown) and v is not None)
        self.bar.update()
