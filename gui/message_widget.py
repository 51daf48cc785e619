"""One chat message: a user bubble or a Markdown-rendered answer, with status, metrics and actions."""
from __future__ import annotations

import html

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QDesktopServices, QFontMetrics, QGuiApplication
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QSizePolicy, QTextBrowser, QToolButton, QVBoxLayout, QWidget,
)

from .markdown_render import IncrementalRenderer, MarkdownRenderer
from .speed_plot import format_metrics

BUBBLE_PADDING = 28  # horizontal padding of the user bubble (QSS) + label margins


class RichText(QTextBrowser):
    """A frameless, transparent QTextBrowser whose height follows its document (no inner scrolling)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("richText")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setOpenLinks(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)

    def _fit(self, size) -> None:
        self.setFixedHeight(int(size.height()) + 4)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.document().setTextWidth(self.viewport().width())

    def wheelEvent(self, event) -> None:
        event.ignore()  # the chat view scrolls, not the message


class MessageWidget(QWidget):
    """Shows one message; assistant text is re-rendered by ChatView's ≤ 60 Hz timer while it streams."""

    regenerate_requested = Signal(int)
    edit_requested = Signal(int)

    def __init__(self, message_id: int, role: str, text: str, status: str, metrics: dict,
                 renderer: MarkdownRenderer, author: str = "", parent=None):
        super().__init__(parent)
        self.message_id, self.role, self.text, self.status = message_id, role, text, status
        self.metrics = dict(metrics or {})
        self.author = author
        self.placeholder = ""
        self.render_count = 0
        self._incremental = IncrementalRenderer(renderer)
        self._renderer = renderer
        self.copy_button = self._action("copy")
        self.edit_button = self._action("edit") if role == "user" else None
        self.regenerate_button = self._action("regenerate") if role == "assistant" else None
        self.status_label = QLabel(objectName="statusBadge")
        self.metrics_label = QLabel(objectName="metricsLabel")
        footer = QHBoxLayout()
        footer.setContentsMargins(4, 0, 4, 0)
        footer.setSpacing(6)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        if role == "user":
            self.body = QLabel(objectName="userText", wordWrap=True, textFormat=Qt.TextFormat.PlainText)
            self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.bubble = QFrame(objectName="userBubble")
            inner = QVBoxLayout(self.bubble)
            inner.setContentsMargins(14, 10, 14, 10)
            inner.addWidget(self.body)
            row = QHBoxLayout()
            row.addStretch(1)
            row.addWidget(self.bubble)
            outer.addLayout(row)
            footer.addStretch(1)
            footer.addWidget(self.status_label)
            footer.addWidget(self.edit_button)
            footer.addWidget(self.copy_button)
        else:
            self.author_label = QLabel(objectName="authorLabel")
            self.body = RichText()
            self.body.document().setDefaultStyleSheet(renderer.stylesheet())
            self.body.anchorClicked.connect(self._link)
            self.bubble = QFrame(objectName="assistantBubble")
            inner = QVBoxLayout(self.bubble)
            inner.setContentsMargins(14, 8, 14, 8)
            inner.setSpacing(2)
            inner.addWidget(self.author_label)
            inner.addWidget(self.body)
            outer.addWidget(self.bubble)
            footer.addWidget(self.status_label)
            footer.addWidget(self.metrics_label)
            footer.addStretch(1)
            footer.addWidget(self.regenerate_button)
            footer.addWidget(self.copy_button)
        outer.addLayout(footer)
        self.retranslate_ui()
        self.placeholder = self._error_text()
        self.render(final=status != "streaming")

    def _error_text(self) -> str:
        return str(self.metrics.get("error", "")) if self.status == "error" else ""

    def _action(self, name: str) -> QToolButton:
        button = QToolButton(objectName="msgAction")
        button.setProperty("action", name)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.setAutoRaise(True)
        handlers = {"copy": self.copy_text, "edit": lambda: self.edit_requested.emit(self.message_id),
                    "regenerate": lambda: self.regenerate_requested.emit(self.message_id)}
        button.clicked.connect(handlers[name])
        return button

    def retranslate_ui(self) -> None:
        self.copy_button.setText(self.tr("Copy"))
        if self.edit_button:
            self.edit_button.setText(self.tr("Edit"))
        if self.regenerate_button:
            self.regenerate_button.setText(self.tr("Regenerate"))
        self._renderer.copy_label = self.tr("Copy")
        self._show_footer()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    # ---- content -----------------------------------------------------------------------------
    def set_text(self, text: str) -> None:
        """New streamed text; the caller schedules render() (≤ 60 Hz)."""
        self.text = text

    def set_renderer(self, renderer: MarkdownRenderer) -> None:
        """Another theme's renderer (code colours); the text is rendered again."""
        self._renderer = renderer
        self._incremental = IncrementalRenderer(renderer)
        if self.role == "assistant":
            self.body.document().setDefaultStyleSheet(renderer.stylesheet())
        self.render(final=self.status != "streaming")

    def set_placeholder(self, text: str) -> None:
        """Grey text shown while the answer is empty (waiting for the model, streaming off...)."""
        self.placeholder = text
        self.render()

    def finish(self, text: str, status: str, metrics: dict) -> None:
        """The answer ended: final text, full render, status badge and metrics."""
        self.text, self.status, self.metrics = text, status, dict(metrics or {})
        self.placeholder = self._error_text()
        self.render(final=True)
        self._show_footer()

    def set_busy(self, busy: bool) -> None:
        """While an answer streams, editing and regenerating are off."""
        for button in (self.edit_button, self.regenerate_button):
            if button:
                button.setEnabled(not busy)

    def render(self, final: bool = False) -> None:
        self.render_count += 1
        if self.role == "user":
            self.body.setText(self.text)
            return
        if not self.text and self.placeholder:
            self.body.setHtml(f'<p style="color:gray;"><i>{html.escape(self.placeholder)}</i></p>')
        elif final:
            self.body.setHtml(self._incremental.render_full(self.text))
        else:
            self.body.setHtml(self._incremental.render(self.text))

    def fit_width(self, available: int) -> None:
        """Size the user bubble to its text, at most ~78 % of the column."""
        if self.role != "user":
            return
        limit = max(160, int(available * 0.78))
        metrics = QFontMetrics(self.body.font())
        natural = max((metrics.horizontalAdvance(line) for line in self.text.splitlines() or [""]), default=0)
        self.body.setFixedWidth(min(natural + 4, limit - BUBBLE_PADDING))

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self.text)

    def _link(self, url) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
        elif url.scheme() == "copy":
            blocks = self._incremental.code_blocks
            index = int(url.path()) if url.path().isdigit() else -1
            if 0 <= index < len(blocks):
                QGuiApplication.clipboard().setText(blocks[index])

    def _show_footer(self) -> None:
        if self.role == "assistant":
            self.author_label.setText(self.author or self.tr("Assistant"))
        labels = {"stopped": self.tr("stopped"), "interrupted": self.tr("interrupted"),
                  "error": self.tr("error"), "streaming": ""}
        badge = labels.get(self.status, "")
        self.status_label.setText(badge)
        self.status_label.setVisible(bool(badge))
        self.status_label.setProperty("status", self.status)
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)
        if self.role == "assistant":
            shown = format_metrics(self.metrics) if self.metrics.get("output_tokens") else None
            self.metrics_label.setText(
                self.tr("TTFT {ttft} · decode {decode} · {tokens}").format(**shown) if shown else "")
