"""Ctrl+F in the conversation: a find bar over the chat view that marks every match in the rendered messages, steps
through them (Enter / Shift+Enter, the arrows), says "3 of 12", and closes with Esc."""
from __future__ import annotations

import html
import re

from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor, QKeySequence, QShortcut, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QTextBrowser, QTextEdit, QToolButton

MATCH_COLOR, CURRENT_COLOR = "#ffe36e", "#ff9632"


class _Match:
    """One match: the message widget, and where in its text (a cursor in an answer, an offset in a question)."""

    def __init__(self, widget, cursor: QTextCursor | None = None, start: int = 0, length: int = 0, text: str = ""):
        self.widget, self.cursor, self.start, self.length = widget, cursor, start, length
        self.text = text  # a question's plain text, which the marks turn into rich text


class FindBar(QFrame):
    """Finds text in the messages a ChatView has rendered (older ones load when the user scrolls up)."""

    def __init__(self, view, parent=None):
        super().__init__(parent)
        self.setObjectName("findBar")
        self.view = view
        self.matches: list[_Match] = []
        self.current = -1
        self._marked: set = set()  # widgets whose text carries marks now
        self.field = QLineEdit(objectName="findField", clearButtonEnabled=True)
        self.count = QLabel(objectName="findCount")
        self.previous = QToolButton(objectName="findPrevious", text="↑", autoRaise=True)
        self.next = QToolButton(objectName="findNext", text="↓", autoRaise=True)
        self.close_button = QToolButton(objectName="findClose", text="✕", autoRaise=True)
        row = QHBoxLayout(self)
        row.setContentsMargins(24, 4, 24, 4)
        row.setSpacing(4)
        row.addWidget(self.field, 1)
        row.addWidget(self.count)
        for button in (self.previous, self.next, self.close_button):
            row.addWidget(button)
        self.field.textChanged.connect(self.search)
        self.field.returnPressed.connect(lambda: self.step(1))
        self.field.installEventFilter(self)
        self.previous.clicked.connect(lambda: self.step(-1))
        self.next.clicked.connect(lambda: self.step(1))
        self.close_button.clicked.connect(self.close_bar)
        self.shortcut: QShortcut | None = None
        self.retranslate_ui()
        self.hide()

    def install_shortcut(self, window) -> None:
        """Ctrl+F (the platform's Find key) in the window opens the bar."""
        self.shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), window, self.open)
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.field.setPlaceholderText(self.tr("Find in the conversation"))
        self.previous.setToolTip(self.tr("Previous match (Shift+Enter)"))
        self.next.setToolTip(self.tr("Next match (Enter)"))
        self.close_button.setToolTip(self.tr("Close (Esc)"))
        if self.shortcut is not None:
            self.shortcut.setWhatsThis(self.tr("Find in the conversation"))
        self._show_count()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.field:
            key = getattr(event, "key", lambda: None)()
            if event.type() == QEvent.Type.ShortcutOverride and key == Qt.Key.Key_Escape:
                event.accept()  # Esc closes the bar here; it does not stop the answer
                return True
            if event.type() == QEvent.Type.KeyPress:
                if key == Qt.Key.Key_Escape:
                    self.close_bar()
                    return True
                if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                        event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                    self.step(-1)
                    return True
        return super().eventFilter(watched, event)

    # ---- finding -----------------------------------------------------------------------------
    def open(self) -> None:
        self.show()
        self.field.setFocus()
        self.field.selectAll()
        self.search(self.field.text())

    def close_bar(self) -> None:
        self._unmark()
        self.matches, self.current = [], -1
        self.hide()
        self.view.setFocus()

    def search(self, text: str | None = None) -> int:
        """Find text (case-insensitive) in the rendered messages; the first match at or after the view's top is
        current. Returns the number of matches."""
        text = self.field.text() if text is None else text
        self._unmark()
        self.matches = [match for widget in self.view.widgets for match in _find(widget, text)] if text else []
        self.current = 0 if self.matches else -1
        self._mark()
        self._show_count()
        return len(self.matches)

    def step(self, delta: int) -> None:
        """Go to the next (1) or previous (-1) match, wrapping around."""
        if not self.matches:
            return
        self.current = (self.current + delta) % len(self.matches)
        self._mark()
        self._show_count()

    def _show_count(self) -> None:
        if not self.field.text():
            self.count.setText("")
        elif not self.matches:
            self.count.setText(self.tr("No matches"))
        else:
            self.count.setText(self.tr("{current} of {total}").format(current=self.current + 1,
                                                                       total=len(self.matches)))
        self.previous.setEnabled(len(self.matches) > 1)
        self.next.setEnabled(len(self.matches) > 1)

    # ---- marks -------------------------------------------------------------------------------
    def _mark(self) -> None:
        """Every match marked, the current one in a stronger colour, and scrolled into view."""
        current = self.matches[self.current] if self.matches else None
        by_widget: dict = {}
        for match in self.matches:
            by_widget.setdefault(match.widget, []).append(match)
        for widget, matches in by_widget.items():
            if isinstance(widget.body, QTextBrowser):
                widget.body.setExtraSelections([_selection(m.cursor, m is current) for m in matches])
            else:
                widget.body.setTextFormat(Qt.TextFormat.RichText)
                widget.body.setText(_marked_html(matches[0].text, matches, current))
            self._marked.add(widget)
        if current is not None:
            self._scroll_to(current)

    def _unmark(self) -> None:
        for widget in self._marked:
            try:
                if isinstance(widget.body, QTextBrowser):
                    widget.body.setExtraSelections([])
                else:
                    widget.render()  # back to plain text
            except RuntimeError:  # the message was removed meanwhile
                continue
        self._marked = set()

    def _scroll_to(self, match: _Match) -> None:
        view, widget = self.view, match.widget
        if match.cursor is not None:
            y = widget.body.cursorRect(match.cursor).top()
            point = widget.body.viewport().mapTo(view.widget(), QPoint(0, y))
        else:
            point = widget.mapTo(view.widget(), QPoint(0, 0))
        view.verticalScrollBar().setValue(point.y() - view.viewport().height() // 3)


def _find(widget, text: str) -> list[_Match]:
    """The matches of text in one message (its marks are off: a question's bubble holds its plain text)."""
    body = widget.body
    if isinstance(body, QTextBrowser):
        found, document = [], body.document()
        cursor = document.find(text)
        while not cursor.isNull():
            found.append(_Match(widget, QTextCursor(cursor)))
            cursor = document.find(text, cursor)
        return found
    shown = body.text()
    return [_Match(widget, None, m.start(), m.end() - m.start(), shown)
            for m in re.finditer(re.escape(text), shown, re.IGNORECASE)]


def _selection(cursor: QTextCursor, current: bool) -> QTextEdit.ExtraSelection:
    mark = QTextCharFormat()
    mark.setBackground(QColor(CURRENT_COLOR if current else MATCH_COLOR))
    mark.setForeground(QColor("#000000"))
    selection = QTextEdit.ExtraSelection()
    selection.cursor, selection.format = cursor, mark
    return selection


def _marked_html(text: str, matches: list[_Match], current: _Match | None) -> str:
    parts, last = [], 0
    for match in sorted(matches, key=lambda m: m.start):
        colour = CURRENT_COLOR if match is current else MATCH_COLOR
        parts.append(html.escape(text[last:match.start]))
        parts.append(f'<span style="background-color:{colour}; color:#000000;">'
                     f'{html.escape(text[match.start:match.start + match.length])}</span>')
        last = match.start + match.length
    parts.append(html.escape(text[last:]))
    return '<p style="white-space:pre-wrap; margin:0;">' + "".join(parts) + "</p>"
