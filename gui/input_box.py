"""The message input: Enter sends, Shift+Enter adds a line, Esc stops the answer; grows with its text."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QPlainTextEdit

MIN_LINES, MAX_LINES = 2, 10


class InputBox(QPlainTextEdit):
    """Plain-text editor that turns Enter into send_requested and Esc into stop_requested."""

    send_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("inputBox")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setTabChangesFocus(True)
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

    def _fit(self, *_args) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = min(MAX_LINES, max(MIN_LINES, int(self.document().size().height())))
        margins = self.contentsMargins()
        self.setFixedHeight(lines * line + int(2 * self.document().documentMargin()) + margins.top()
                            + margins.bottom() + 2)
