"""The conversation pane: a scrolling column of MessageWidgets (a streaming answer renders itself, ≤ 60 Hz).

Only the newest messages get widgets when a conversation opens; older ones are rendered a page at a time
when the user scrolls to the top (or clicks "Load earlier messages"), so 5,000 messages open as fast as 50.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from .markdown_render import MarkdownRenderer
from .message_widget import MessageWidget

COLUMN_MAX_WIDTH = 900
INITIAL_WIDGETS = 40  # the newest messages rendered when a conversation opens
PAGE_WIDGETS = 40  # older messages rendered each time the user reaches the top
TOP_MARGIN_PX = 40
REVEAL_LIMIT = 400  # a search hit further back than this many unrendered messages is not scrolled to  # "at the top" for loading older messages


class ChatView(QScrollArea):
    """Shows one conversation; streamed text goes to the answer's MessageWidget directly, not through here."""

    regenerate_requested = Signal(int)
    edit_requested = Signal(int)
    continue_requested = Signal(int)  # the Continue button of an answer cut at max new tokens
    version_requested = Signal(int, int)  # (message id, -1 / +1): show another version / branch of it

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.renderer = MarkdownRenderer()
        self.widgets: list[MessageWidget] = []  # the rendered messages: the newest len(widgets) of _messages
        self._messages: list[tuple] = []  # every message shown: (id, role, text, status, metrics[, versions])
        self._first = 0  # index in _messages of the first rendered message (= how many are not rendered)
        self._anchor: tuple[MessageWidget, int] | None = None  # keeps a widget still while older ones arrive
        self._busy = False
        self.author = ""
        self._follow = True

        canvas = QWidget(objectName="chatCanvas")
        self.column = QWidget(objectName="chatColumn")
        self.column.setMaximumWidth(COLUMN_MAX_WIDTH)
        self.column_layout = QVBoxLayout(self.column)
        self.column_layout.setContentsMargins(24, 20, 24, 20)
        self.column_layout.setSpacing(16)
        self.load_button = QPushButton(objectName="loadEarlier", flat=True)
        self.load_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.load_button.clicked.connect(lambda: self.load_earlier())
        self.load_button.hide()
        self.column_layout.addWidget(self.load_button, 0, Qt.AlignmentFlag.AlignHCenter)
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
        bar.actionTriggered.connect(self._user_scrolled)
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.empty_label.setText(self.tr(
            "Start the conversation below.\nEnter sends · Shift+Enter adds a line · Esc stops the answer"))
        self.load_button.setText(self.tr("Load earlier messages (%n more)", "", self._first))

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
        self._drop(self.widgets)
        self.widgets, self._messages, self._first, self._anchor = [], [], 0, None
        self._update_top()

    def set_messages(self, messages) -> None:
        """Show a whole conversation: (id, role, text, status, metrics[, (number, count) of its versions]) tuples;
        the newest are rendered."""
        self.clear()
        self._messages = [tuple(message) for message in messages]
        self._first = max(0, len(self._messages) - INITIAL_WIDGETS)
        for message in self._messages[self._first:]:
            self._append(message)
        self._update_top()
        self.scroll_to_bottom()

    def add_message(self, message_id: int, role: str, text: str, status: str = "complete",
                    metrics: dict | None = None, versions: tuple[int, int] | None = None) -> MessageWidget:
        """Append a new message at the bottom (and follow it)."""
        self._messages.append((message_id, role, text, status, metrics, versions))
        widget = self._append(self._messages[-1])
        self._update_top()
        self._anchor = None
        self._follow = True
        return widget

    def load_earlier(self, count: int = PAGE_WIDGETS) -> int:
        """Render up to count older messages above the rendered ones, keeping what is on screen still."""
        if self._first == 0:
            return 0
        start = max(0, self._first - count)
        if self.widgets:
            top = self.widgets[0]
            self._anchor = (top, self._y(top) - self.verticalScrollBar().value())
        self._follow = False
        index = self.column_layout.indexOf(self.empty_label) + 1
        added = [self._make_widget(*message) for message in self._messages[start:self._first]]
        for offset, widget in enumerate(added):
            self.column_layout.insertWidget(index + offset, widget)
        self.widgets[:0] = added
        self._first = start
        self._update_top()
        QTimer.singleShot(0, self._keep_anchor)
        return len(added)

    @property
    def hidden_count(self) -> int:
        """Messages of the conversation that have no widget yet (older than the rendered ones)."""
        return self._first

    def widget_for(self, message_id: int) -> MessageWidget | None:
        """The widget of a rendered message (None for a message not rendered yet, or unknown)."""
        return next((w for w in self.widgets if w.message_id == message_id), None)

    def remove_from(self, message_id: int) -> None:
        """Remove the message with this id and every message after it (ids grow within a conversation,
        so this works for a message not rendered yet too)."""
        ids = [message[0] for message in self._messages]
        index = ids.index(message_id) if message_id in ids else next(
            (i for i, other in enumerate(ids) if other >= message_id), len(ids))
        keep = max(0, index - self._first)
        self._drop(self.widgets[keep:])
        if self._anchor and self._anchor[0] in self.widgets[keep:]:
            self._anchor = None
        self.widgets = self.widgets[:keep]
        self._messages = self._messages[:index]
        self._first = min(self._first, index)
        if not self.widgets and self._first:
            self._first_page()
        self._update_top()

    def replace_from(self, message_id: int, messages) -> None:
        """Another version or branch was chosen at this message: show `messages` (tuples as set_messages takes)
        from there on, keeping the switched message where it was on screen."""
        old = self.widget_for(message_id)
        offset = self._y(old) - self.verticalScrollBar().value() if old is not None else None
        self.remove_from(message_id)
        for message in messages:
            self._messages.append(tuple(message))
            self._append(self._messages[-1])
        self._update_top()
        if offset is not None and self.widgets and len(messages):
            self._anchor, self._follow = (self.widget_for(messages[0][0]), offset), False
            QTimer.singleShot(0, self._keep_anchor)

    def reveal(self, message_id: int, terms=()) -> MessageWidget | None:
        """Render older pages until this message has a widget, scroll it into view and mark the terms in it."""
        index = next((i for i, message in enumerate(self._messages) if message[0] == message_id), None)
        if index is None or self._first - index > REVEAL_LIMIT:
            return None  # not shown, or so far back that rendering all after it would take long
        while self.widget_for(message_id) is None and self._first:
            self.load_earlier()
        widget = self.widget_for(message_id)
        widget.highlight(list(terms))
        self._anchor, self._follow = None, False
        QTimer.singleShot(0, lambda: self.ensureWidgetVisible(widget, 0, 40) if widget in self.widgets else None)
        return widget

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        for widget in self.widgets:
            widget.set_busy(busy)

    def flush(self) -> None:
        """Render streamed text still waiting for its frame now (in tests, or before a screenshot)."""
        for widget in self.widgets:
            widget.flush()

    def scroll_to_bottom(self) -> None:
        self._anchor = None
        self._follow = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))

    # ---- internals ---------------------------------------------------------------------------
    def _make_widget(self, message_id, role, text, status="complete", metrics=None, versions=None) -> MessageWidget:
        widget = MessageWidget(message_id, role, text, status, metrics or {}, self.renderer, self.author,
                               versions=versions)
        widget.version_requested.connect(self.version_requested)
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.edit_requested.connect(self.edit_requested)
        widget.continue_requested.connect(self.continue_requested)
        widget.set_busy(self._busy)
        widget.fit_width(self._available_width())
        return widget

    def _append(self, message: tuple) -> MessageWidget:
        """A widget for this message at the bottom of the column."""
        widget = self._make_widget(*message)
        self.column_layout.insertWidget(self.column_layout.count() - 1, widget)
        self.widgets.append(widget)
        return widget

    def _first_page(self) -> None:
        """Every rendered message was removed: render the newest of those left."""
        start = max(0, self._first - INITIAL_WIDGETS)
        for message in self._messages[start:self._first]:
            self._append(message)
        self._first = start

    def _drop(self, widgets) -> None:
        for widget in widgets:
            widget.setParent(None)
            widget.deleteLater()

    def _update_top(self) -> None:
        """The "load earlier" button, the empty-conversation hint and which message offers Continue."""
        self.load_button.setVisible(self._first > 0)
        self.load_button.setText(self.tr("Load earlier messages (%n more)", "", self._first))
        self.empty_label.setVisible(not self._messages)
        for widget in self.widgets[-2:]:
            widget.set_last(widget is self.widgets[-1])

    def _y(self, widget: QWidget) -> int:
        return widget.mapTo(self.widget(), QPoint(0, 0)).y()

    def _keep_anchor(self) -> None:
        if self._anchor is not None:
            widget, offset = self._anchor
            self.verticalScrollBar().setValue(self._y(widget) - offset)

    def _user_scrolled(self, _action: int) -> None:
        """The user moved the scroll bar (wheel, keys, drag): older messages come at the top."""
        self._anchor = None
        QTimer.singleShot(0, self._load_if_at_top)

    def _load_if_at_top(self) -> None:
        bar = self.verticalScrollBar()
        if self._first and bar.value() <= bar.minimum() + TOP_MARGIN_PX:
            self.load_earlier()

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self._anchor is not None:
            self._keep_anchor()
        elif self._follow:
            self.verticalScrollBar().setValue(maximum)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        available = self._available_width()
        for widget in self.widgets:
            widget.fit_width(available)

    def _available_width(self) -> int:
        margins = self.column_layout.contentsMargins()
        return min(self.viewport().width(), COLUMN_MAX_WIDTH) - margins.left() - margins.right()
