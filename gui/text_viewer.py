"""A read-only viewer for a message too long to render: plain text, one page of characters at a time."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QHBoxLayout, QLabel, QMessageBox, QPlainTextEdit, QPushButton, QVBoxLayout,
)

PAGE_CHARS = 500_000  # QPlainTextEdit lays out ~0.5 M characters in well under a second; 50 M took 20-40 s


class TextViewer(QDialog):
    """Shows a long text page by page (Previous / Next), with Copy all and Save as…; never edits it."""

    def __init__(self, text: str, title: str = "", parent=None, page_chars: int = PAGE_CHARS):
        super().__init__(parent)
        self.setObjectName("textViewer")
        self.text, self.page_chars, self.page = text, max(1, page_chars), 0
        self.setWindowTitle(title or self.tr("Message text"))
        self.editor = QPlainTextEdit(readOnly=True, objectName="viewerText")
        self.position = QLabel(objectName="viewerPosition")
        self.previous_button = QPushButton(self.tr("◀ Previous"))
        self.next_button = QPushButton(self.tr("Next ▶"))
        self.copy_button = QPushButton(self.tr("Copy all"))
        self.save_button = QPushButton(self.tr("Save as…"))
        close = QPushButton(self.tr("Close"))
        self.previous_button.clicked.connect(lambda: self.show_page(self.page - 1))
        self.next_button.clicked.connect(lambda: self.show_page(self.page + 1))
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text))
        self.save_button.clicked.connect(self._ask_save)
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        for widget in (self.previous_button, self.position, self.next_button):
            row.addWidget(widget)
        row.addStretch(1)
        for widget in (self.copy_button, self.save_button, close):
            row.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addWidget(self.editor, 1)
        layout.addLayout(row)
        paged = self.pages > 1
        for widget in (self.previous_button, self.position, self.next_button):
            widget.setVisible(paged)
        self.resize(820, 620)
        self.show_page(0)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.text) // self.page_chars))

    def show_page(self, page: int) -> None:
        """Show one page of the text (pages are page_chars characters long)."""
        self.page = min(max(0, page), self.pages - 1)
        start = self.page * self.page_chars
        end = min(len(self.text), start + self.page_chars)
        self.editor.setPlainText(self.text[start:end])
        self.position.setText(self.tr("characters {start}–{end} of {total}").format(
            start=f"{start + 1 if end else 0:,}", end=f"{end:,}", total=f"{len(self.text):,}"))
        self.previous_button.setEnabled(self.page > 0)
        self.next_button.setEnabled(self.page < self.pages - 1)

    def save_to(self, path: str) -> None:
        """Write the whole text to a UTF-8 file (raises OSError)."""
        Path(path).write_text(self.text, encoding="utf-8")

    def _ask_save(self) -> None:
        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Save the message as text"),
                                              str(Path(folder) / "message.txt"), self.tr("Text (*.txt)"))
        if not path:
            return
        try:
            self.save_to(path)
        except OSError as exc:
            QMessageBox.warning(self, self.tr("Save the message as text"),
                                self.tr("Could not save: {reason}").format(reason=exc.strerror or exc))
