"""The message input: Enter sends, Shift+Enter adds a line, Esc stops the answer; grows with its text; holds the
files attached to the message (dropped on it, or added by the paperclip)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QPlainTextEdit

from .attachments import MAX_ATTACHMENTS, Attachment, AttachmentError, compose, read_attachment, split

MIN_LINES, MAX_LINES = 2, 10


class InputBox(QPlainTextEdit):
    """Plain-text editor that turns Enter into send_requested and Esc into stop_requested."""

    send_requested = Signal()
    stop_requested = Signal()
    attachments_changed = Signal()
    attach_failed = Signal(str)  # one sentence per file that could not be attached

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("inputBox")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setTabChangesFocus(True)
        self.attachments: list[Attachment] = []
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event) -> None:
        key, mods = event.key(), event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not mods & (
                Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
                | Qt.KeyboardModifier.AltModifier):
            self.send_requested.emit()
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and mods & Qt.KeyboardModifier.ShiftModifier:
            self.insertPlainText("\n")
            return
        if key == Qt.Key.Key_Escape:
            self.stop_requested.emit()
            return
        super().keyPressEvent(event)

    def text(self) -> str:
        return self.toPlainText()

    # ---- attachments -------------------------------------------------------------------------
    def message_text(self) -> str:
        """What Send sends: the typed text, then the attached files (as the chat rule will get them)."""
        return compose(self.toPlainText().strip(), self.attachments)

    def set_message(self, content: str) -> None:
        """Show a message again (Edit, or a send given back): its attachments return to the attachment row."""
        text, attachments = split(content)
        self.attachments = attachments
        self.setPlainText(text)
        self.attachments_changed.emit()

    def clear(self) -> None:
        """Empty the composer: the text and the attachments."""
        had = bool(self.attachments)
        self.attachments = []
        super().clear()
        if had:
            self.attachments_changed.emit()

    def add_files(self, paths) -> int:
        """Attach files; each one that cannot be attached says why (attach_failed). Returns how many were added."""
        added = 0
        for path in paths:
            if len(self.attachments) >= MAX_ATTACHMENTS:
                self.attach_failed.emit(self.tr("At most %n files can be attached to one message.", "",
                                                MAX_ATTACHMENTS))
                break
            try:
                self.attachments.append(read_attachment(path))
                added += 1
            except AttachmentError as exc:
                self.attach_failed.emit(str(exc))
        if added:
            self._attachments_edited()
        return added

    def remove_attachment(self, index: int) -> None:
        if 0 <= index < len(self.attachments):
            del self.attachments[index]
            self._attachments_edited()

    def _attachments_edited(self) -> None:
        self.attachments_changed.emit()
        self.textChanged.emit()  # the budget (and the draft timer) follow the message, attachments included

    def dragEnterEvent(self, event) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        files = _local_files(event.mimeData())
        if files:
            event.acceptProposedAction()
            self.add_files(files)
        else:
            super().dropEvent(event)

    def _fit(self, *_args) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = min(MAX_LINES, max(MIN_LINES, int(self.document().size().height())))
        margins = self.contentsMargins()
        self.setFixedHeight(lines * line + int(2 * self.document().documentMargin()) + margins.top()
                            + margins.bottom() + 2)


def _local_files(mime) -> list[str]:
    """The local files of a drag (text and links from other programs are typed in as usual)."""
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
