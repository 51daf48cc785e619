"""One chat message: a user bubble or a Markdown-rendered answer, with status, metrics and actions."""
from __future__ import annotations

import html

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QDesktopServices, QFontMetrics, QGuiApplication
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QSizePolicy, QTextBrowser, QToolButton, QToolTip, QVBoxLayout, QWidget,
)

from .attachments import bubble_text
from .markdown_render import IncrementalRenderer, MarkdownRenderer
from .speed_plot import format_metrics
from .text_viewer import TextViewer
from .version_switcher import VersionSwitcher

BUBBLE_PADDING = 28  # horizontal padding of the user bubble (QSS) + label margins
# Characters of one message that are rendered; the rest is behind "Show all" (a 50 MB message froze the
# window for minutes). Copy, export and the model always get the whole text.
RENDER_CAP = 30_000
COPIED_MS = 1500  # how long the Copy button says "Copied"
FRAME_MS = 16  # a streaming answer is rendered at most ~60 times a second, however fast tokens arrive


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
    """Shows one message; while an answer streams, its text is re-rendered by its own ≤ 60 Hz frame timer."""

    regenerate_requested = Signal(int)
    edit_requested = Signal(int)
    continue_requested = Signal(int)  # an answer cut at max new tokens: go on from where it stopped
    version_requested = Signal(int, int)  # (this message's id, -1 / +1): show the previous / next version

    def __init__(self, message_id: int, role: str, text: str, status: str, metrics: dict,
                 renderer: MarkdownRenderer, author: str = "", parent=None, versions: tuple[int, int] | None = None):
        super().__init__(parent)
        self.message_id, self.role, self.text, self.status = message_id, role, text, status
        self.versions = versions or (1, 1)  # (this one's number, how many versions / branches there are)
        self.metrics = dict(metrics or {})
        self.author = (metrics or {}).get("model") or author  # the model that wrote it, stored with it
        self.placeholder = ""
        self.render_count = 0
        self.viewer: TextViewer | None = None
        self._last = False  # the conversation's last message (only it offers Continue)
        self._shown = None  # the (capped) text last rendered
        self._incremental = IncrementalRenderer(renderer)
        self._renderer = renderer
        self._copied = QTimer(self, interval=COPIED_MS, singleShot=True)
        self._copied.timeout.connect(self.retranslate_ui)
        self._frame = QTimer(self, interval=FRAME_MS, singleShot=True)  # the next streamed frame
        self._frame.timeout.connect(self.render)
        self.copy_button = self._action("copy")
        self.edit_button = self._action("edit") if role == "user" else None
        self.regenerate_button = self._action("regenerate") if role == "assistant" else None
        self.continue_button = self._action("continue") if role == "assistant" else None
        self.switcher = VersionSwitcher(role, self)
        self.switcher.step.connect(lambda delta: self.version_requested.emit(self.message_id, delta))
        self.status_label = QLabel(objectName="statusBadge")
        self.metrics_label = QLabel(objectName="metricsLabel")
        self.cap_note = QLabel(objectName="capNote", wordWrap=True)
        self.show_all_button = self._action("show_all")
        cap_row = QHBoxLayout()
        cap_row.setContentsMargins(4, 0, 4, 0)
        cap_row.addWidget(self.cap_note, 1)
        cap_row.addWidget(self.show_all_button)
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
            footer.addWidget(self.switcher)
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
            footer.addWidget(self.switcher)
            footer.addWidget(self.status_label)
            footer.addWidget(self.metrics_label)
            footer.addStretch(1)
            footer.addWidget(self.continue_button)
            footer.addWidget(self.regenerate_button)
            footer.addWidget(self.copy_button)
        outer.addLayout(cap_row)
        outer.addLayout(footer)
        self.retranslate_ui()
        self.switcher.show_versions(*self.versions)
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
                    "regenerate": lambda: self.regenerate_requested.emit(self.message_id),
                    "continue": lambda: self.continue_requested.emit(self.message_id),
                    "show_all": self.show_all}
        button.clicked.connect(handlers[name])
        return button

    def retranslate_ui(self) -> None:
        self.copy_button.setText(self.tr("Copied") if self._copied.isActive() else self.tr("Copy"))
        if self.edit_button:
            self.edit_button.setText(self.tr("Edit"))
        if self.regenerate_button:
            self.regenerate_button.setText(self.tr("Regenerate"))
            self.continue_button.setText(self.tr("Continue"))
            self.continue_button.setToolTip(self.tr("Go on from where the answer was cut"))
        self.show_all_button.setText(self.tr("Show all"))
        self._renderer.copy_label = self.tr("Copy")
        self._show_footer()
        self._show_cap_note()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
            if self.role == "assistant":  # code blocks carry a translated Copy link
                self._shown = None
                self.render(final=self.status != "streaming")
        super().changeEvent(event)

    # ---- content -----------------------------------------------------------------------------
    def stream_text(self, text: str) -> None:
        """New streamed text (per token): shown at the next frame, so at most ~60 renders a second."""
        self.text = text
        if not self._frame.isActive():
            self._frame.start()

    def flush(self) -> None:
        """Render streamed text still waiting for its frame now."""
        if self._frame.isActive():
            self._frame.stop()
            self.render()

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
        self._frame.stop()  # the final render below replaces a frame still pending
        self.text, self.status, self.metrics = text, status, dict(metrics or {})
        self.placeholder = self._error_text()
        self.render(final=True)
        self._show_footer()

    def set_busy(self, busy: bool) -> None:
        """While an answer streams, editing, regenerating, continuing and switching versions are off."""
        for button in (self.edit_button, self.regenerate_button, self.continue_button):
            if button:
                button.setEnabled(not busy)
        self.switcher.setEnabled(not busy)

    def set_versions(self, number: int, count: int) -> None:
        """Which version (answer) or branch (question) this is, of how many; the switcher shows when > 1."""
        self.versions = (number, count)
        self.switcher.show_versions(number, count)

    def highlight(self, terms) -> int:
        """Mark every occurrence of the search terms in the shown text (a search hit opened); how many."""
        return self.switcher.highlight(self.body, terms)

    def set_last(self, last: bool) -> None:
        """Whether this is the conversation's last message (a cut answer offers Continue only there)."""
        self._last = last
        self._show_footer()

    @property
    def cut(self) -> bool:
        """The answer ended because it reached max new tokens."""
        return self.status == "complete" and self.metrics.get("finish_reason") == "length"

    @property
    def capped(self) -> bool:
        return len(self.text) > RENDER_CAP

    def render(self, final: bool = False) -> None:
        self.render_count += 1
        shown = self.text[:RENDER_CAP]
        self._show_cap_note()
        if self.role == "user":
            self.body.setTextFormat(Qt.TextFormat.PlainText)  # a search highlight made it rich text
            self.body.setText(bubble_text(shown))  # an attached file shows as its name; Copy gives all of it
            return
        if not shown and self.placeholder:
            self._shown = None
            self.body.setHtml(f'<p style="color:gray;"><i>{html.escape(self.placeholder)}</i></p>')
        elif shown == self._shown and not final:
            return  # a capped stream: the rendered start no longer changes
        elif final:
            self.body.setHtml(self._incremental.render_full(shown))
        else:
            self.body.setHtml(self._incremental.render(shown))
        self._shown = shown

    def fit_width(self, available: int) -> None:
        """Size the user bubble to its text, at most ~78 % of the column."""
        if self.role != "user":
            return
        limit = max(160, int(available * 0.78))
        metrics = QFontMetrics(self.body.font())
        lines = bubble_text(self.text[:RENDER_CAP]).splitlines() or [""]
        natural = max((metrics.horizontalAdvance(line[:2000]) for line in lines), default=0)
        self.body.setFixedWidth(min(natural + 4, limit - BUBBLE_PADDING))

    def copy_text(self) -> None:
        """The whole text to the clipboard (also the part not rendered); the button says "Copied" a moment."""
        QGuiApplication.clipboard().setText(self.text)
        self._copied.start()
        self.retranslate_ui()

    def show_all(self) -> None:
        """Open the whole text in a read-only viewer (it handles texts far too long to render)."""
        if self.viewer is None or self.viewer.text is not self.text:
            self.viewer = TextViewer(self.text, self.author_label.text() if self.role == "assistant" else "", self)
        self.viewer.show()
        self.viewer.raise_()

    def _link(self, url) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
        elif url.scheme() == "copy":
            blocks = self._incremental.code_blocks
            index = int(url.path()) if url.path().isdigit() else -1
            if 0 <= index < len(blocks):
                QGuiApplication.clipboard().setText(blocks[index])
                QToolTip.showText(QCursor.pos(), self.tr("Copied"), self.body)

    def _show_footer(self) -> None:
        if self.role == "assistant":
            self.author_label.setText(self.author or self.tr("Assistant"))
        labels = {"stopped": self.tr("stopped"), "interrupted": self.tr("interrupted"),
                  "error": self.tr("error"), "length": self.tr("cut at max new tokens"), "streaming": ""}
        status = "length" if self.cut else self.status
        badge = labels.get(status, "")
        self.status_label.setText(badge)
        self.status_label.setVisible(bool(badge))
        self.status_label.setProperty("status", status)
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)
        if self.role == "assistant":
            self.continue_button.setVisible(self.cut and self._last)
            tokens = int(self.metrics.get("output_tokens") or 0)
            shown = format_metrics(self.metrics) if tokens else None
            if not shown:
                text = ""
            elif tokens < 2:  # one token has no decode speed to speak of
                text = self.tr("TTFT {ttft} · {tokens}").format(**shown)
            else:
                text = self.tr("TTFT {ttft} · decode {decode} · {tokens}").format(**shown)
            self.metrics_label.setText(text)

    def _show_cap_note(self) -> None:
        capped = self.capped
        if capped:
            self.cap_note.setText(self.tr("Showing the first {shown} of {total} characters.").format(
                shown=f"{RENDER_CAP:,}", total=f"{len(self.text):,}"))
        self.cap_note.setVisible(capped)
        self.show_all_button.setVisible(capped)
