"""The conversation pane: a scrolling column of MessageWidgets, re-rendered by one ≤ 60 Hz timer."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from .markdown_render import MarkdownRenderer
from .message_widget import MessageWidget

FRAME_MS = 16  # at most ~60 renders per second, however fast tokens arrive
COLUMN_MAX_WIDTH = 900


class ChatView(QScrollArea):
    """Shows one conversation; streaming text is applied by a frame timer, not per token."""

    regenerate_requested = Signal(int)
    edit_requested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.renderer = MarkdownRenderer()
        self.widgets: list[MessageWidget] = []
        self.author = ""
        self._dirty: set[MessageWidget] = set()
        self._follow = True
        self._timer = QTimer(self, interval=FRAME_MS, singleShot=True)
        self._timer.timeout.connect(self._render_dirty)

        canvas = QWidget(objectName="chatCanvas")
        self.column = QWidget(objectName="chatColumn")
        self.column.setMaximumWidth(COLUMN_MAX_WIDTH)
        self.column_layout = QVBoxLayout(self.column)
        self.column_layout.setContentsMargins(24, 20, 24, 20)
        self.column_layout.setSpacing(16)
        self.empty_label = QLabel(objectName="emptyLabel", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.column_layout.addWidget(self.empty_label)
        self.column_layout.addStretch(1)
        row = QHBoxLayout(canvas)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        row.addWidget(self.column, 100)
        row.addStretch(1)
        self.setWidget(canvas)
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._range_changed)
        bar.valueChanged.connect(lambda value: setattr(self, "_follow", value >= bar.maximum() - 8))
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.empty_label.setText(self.tr(
            "Start the conversation below.\nEnter sends · Shift+Enter adds a line · Esc stops the answer"))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def set_dark(self, dark: bool) -> None:
        """Switch code highlighting colours with the theme (messages are re-rendered)."""
        if dark != self.renderer.dark:
            self.renderer = MarkdownRenderer(dark=dark, copy_label=self.renderer.copy_label)
            for widget in self.widgets:
                widget.set_renderer(self.renderer)

    # ---- content -----------------------------------------------------------------------------
    def clear(self) -> None:
        self._dirty.clear()
        for widget in self.widgets:
            widget.setParent(None)
            widget.deleteLater()
        self.widgets = []
        self.empty_label.show()

    def set_messages(self, messages) -> None:
        """Show a whole conversation: (id, role, text, status, metrics) tuples."""
        self.clear()
        for message in messages:
            self.add_message(*message)
        self.scroll_to_bottom()

    def add_message(self, message_id: int, role: str, text: str, status: str = "complete",
                    metrics: dict | None = None) -> MessageWidget:
        widget = MessageWidget(message_id, role, text, status, metrics or {}, self.renderer, self.author)
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.edit_requested.connect(self.edit_requested)
        self.column_layout.insertWidget(self.column_layout.count() - 1, widget)
        self.widgets.append(widget)
        self.empty_label.hide()
        widget.fit_width(self._available_width())
        self._follow = True
        return widget

    def widget_for(self, message_id: int) -> MessageWidget | None:
        return next((w for w in self.widgets if w.message_id == message_id), None)

    def remove_from(self, message_id: int) -> None:
        """Remove the message with this id and every message after it."""
        index = next((i for i, w in enumerate(self.widgets) if w.message_id == message_id), len(self.widgets))
        for widget in self.widgets[index:]:
            self._dirty.discard(widget)
            widget.setParent(None)
            widget.deleteLater()
        self.widgets = self.widgets[:index]
        self.empty_label.setVisible(not self.widgets)

    def set_busy(self, busy: bool) -> None:
        for widget in self.widgets:
            widget.set_busy(busy)

    def update_text(self, widget: MessageWidget, text: str) -> None:
        """Streamed text for a message; shown at the next frame (≤ 60 Hz)."""
        widget.set_text(text)
        self._dirty.add(widget)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Render pending text now (before a final render, or in tests)."""
        self._timer.stop()
        self._render_dirty()

    def scroll_to_bottom(self) -> None:
        self._follow = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))

    # ---- internals ---------------------------------------------------------------------------
    def _render_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for widget in dirty:
            widget.render()

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        available = self._available_width()
        for widget in self.widgets:
            widget.fit_width(available)

    def _available_width(self) -> int:
        margins = self.column_layout.contentsMargins()
        return min(self.viewport().width(), COLUMN_MAX_WIDTH) - margins.left() - margins.right()
