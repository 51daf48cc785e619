"""VersionSwitcher: the ‹ 2/3 › under an answer (its versions) or "branch ‹ 1/2 ›" under an edited question, and
the search-term marking of a message's text."""
from __future__ import annotations

import html
import re

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QTextCharFormat
from PySide6.QtWidgets import QHBoxLayout, QLabel, QTextBrowser, QTextEdit, QToolButton, QWidget


class VersionSwitcher(QWidget):
    """‹ 2/3 › under an answer (its versions) or "branch ‹ 1/2 ›" under an edited question (its branches)."""

    step = Signal(int)

    def __init__(self, role: str, parent=None):
        super().__init__(parent)
        self.setObjectName("versionSwitcher")
        self.role = role
        self.kind = QLabel(objectName="versionKind")
        self.previous = QToolButton(objectName="versionButton", text="\u2039", autoRaise=True)
        self.label = QLabel(objectName="versionLabel")
        self.next = QToolButton(objectName="versionButton", text="\u203a", autoRaise=True)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        for widget in (self.kind, self.previous, self.label, self.next):
            row.addWidget(widget)
        self.previous.clicked.connect(lambda: self.step.emit(-1))
        self.next.clicked.connect(lambda: self.step.emit(1))
        self.kind.setVisible(role == "user")
        self.retranslate_ui()
        self.show_versions(1, 1)

    def retranslate_ui(self) -> None:
        self.kind.setText(self.tr("branch"))
        self.previous.setToolTip(self.tr("Previous branch") if self.role == "user" else self.tr("Previous version"))
        self.next.setToolTip(self.tr("Next branch") if self.role == "user" else self.tr("Next version"))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def show_versions(self, number: int, count: int) -> None:
        self.label.setText(f"{number}/{count}")
        self.previous.setEnabled(number > 1)
        self.next.setEnabled(number < count)
        self.setVisible(count > 1)

    @staticmethod
    def highlight(body, terms) -> int:
        """Give every occurrence of the terms a marker background in a message's text; how many."""
        terms = [t for t in terms if t]
        if isinstance(body, QTextBrowser):
            selections = []
            mark = QTextCharFormat()
            mark.setBackground(QColor("#ffd54f"))
            mark.setForeground(QColor("#000000"))
            for term in terms:
                cursor = body.document().find(term)
                while not cursor.isNull():
                    selection = QTextEdit.ExtraSelection()
                    selection.cursor, selection.format = cursor, mark
                    selections.append(selection)
                    cursor = body.document().find(term, cursor)
            body.setExtraSelections(selections)
            return len(selections)
        text = body.text()
        pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE) if terms else None
        if pattern is None or not pattern.search(text):
            return 0
        marked = pattern.sub(lambda m: "\x00" + m.group(0) + "\x01", text)
        escaped = html.escape(marked).replace("\x00", '<span style="background:#ffd54f;color:#000;">')
        body.setTextFormat(Qt.TextFormat.RichText)
        body.setText(escaped.replace("\x01", "</span>").replace("\n", "<br>"))
        return len(pattern.findall(text))
