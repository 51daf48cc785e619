"""Sidebar: the conversation list (date groups, pins, multi-select) with New, full-text search, rename, delete."""
from __future__ import annotations

from PySide6.QtCore import QDate, QEvent, QLocale, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QInputDialog, QLabel, QLineEdit, QListWidget, QListWidgetItem, QMenu,
    QMessageBox, QPushButton, QVBoxLayout, QWidget,
)

from .conversation_delegate import HEADER_ROLE, SNIPPET_ROLE, ConversationDelegate
from .history_groups import MONTH, PINNED, TODAY, WEEK, YESTERDAY, grouped
from .store_search import MARK_END, MARK_START

ID_ROLE = Qt.ItemDataRole.UserRole
HIT_ROLE = Qt.ItemDataRole.UserRole + 3  # the matching message of a search result (None: the title matched)
PINNED_ROLE = Qt.ItemDataRole.UserRole + 4
TITLE_BAR_EXTRA = 160  # a title bar's icon and buttons, beside the title's text


class ConversationList(QWidget):
    """Lists conversations (most recent first); emits what the user asks for, the controller does it."""

    selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    delete_many_requested = Signal(list)  # several selected conversations, confirmed once
    pin_requested = Signal(int, bool)
    hit_selected = Signal(int, int)  # a search result: (conversation id, matching message id)
    search_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.app_title = QLabel(objectName="appTitle")
        self.new_button = QPushButton(objectName="newButton")
        self.new_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.search = QLineEdit(objectName="searchBox")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget(objectName="conversationList")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setItemDelegate(ConversationDelegate(self.list))
        self._rows: list = []
        self._current: int | None = None
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 14, 12, 12)
        layout.setSpacing(10)
        layout.addWidget(self.app_title)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        self._search_timer = QTimer(self, interval=200, singleShot=True)
        self._search_timer.timeout.connect(lambda: self.search_changed.emit(self.search.text()))
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        self.new_button.clicked.connect(self.new_requested)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemDoubleClicked.connect(lambda item: self.ask_rename(item.data(ID_ROLE)))
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.installEventFilter(self)  # Delete deletes the selected conversations
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.app_title.setText(self.tr("Baichuan Chat"))
        self.new_button.setText(self.tr("+  New conversation"))
        self.search.setPlaceholderText(self.tr("Search conversations"))
        if self._rows:
            self.set_conversations(self._rows, self._current)  # the group headings

    def group_title(self, key: str) -> str:
        titles = {PINNED: self.tr("Pinned"), TODAY: self.tr("Today"), YESTERDAY: self.tr("Yesterday"),
                  WEEK: self.tr("Previous 7 days"), MONTH: self.tr("Previous 30 days")}
        if key in titles:
            return titles[key]
        year, month = (int(part) for part in key.split("-"))
        return QLocale().toString(QDate(year, month, 1), "MMMM yyyy")

    def eventFilter(self, watched, event) -> bool:
        if (watched is self.list and event.type() == QEvent.Type.KeyPress
                and QKeySequence(event.keyCombination()).matches(QKeySequence(QKeySequence.StandardKey.Delete))
                == QKeySequence.SequenceMatch.ExactMatch):
            self.ask_delete_selected()
            return True
        return super().eventFilter(watched, event)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def set_conversations(self, conversations, current_id: int | None) -> None:
        """Show (id, title[, info]) rows, info holding "updated" and "pinned" (grouped by date, pinned first) or,
        for search results, "snippet" and "message_id" (in the given order); the current one is highlighted
        without emitting `selected`."""
        self._rows, self._current = list(conversations), current_id
        searching = any(len(row) > 2 and "snippet" in row[2] for row in self._rows)
        groups = [("", self._rows)] if searching else grouped(self._rows)
        self.list.blockSignals(True)
        self.list.clear()
        for key, rows in groups:
            for number, row in enumerate(rows):
                conversation_id, title, info = row[0], row[1], (row[2] if len(row) > 2 else {})
                item = QListWidgetItem(title)
                item.setData(ID_ROLE, conversation_id)
                item.setData(HEADER_ROLE, self.group_title(key) if key and number == 0 else "")
                item.setData(SNIPPET_ROLE, info.get("snippet") or "")
                item.setData(HIT_ROLE, info.get("message_id"))
                item.setData(PINNED_ROLE, bool(info.get("pinned")))
                snippet = (info.get("snippet") or "").replace(MARK_START, "").replace(MARK_END, "")
                item.setToolTip(title + ("\n" + snippet if snippet else ""))
                self.list.addItem(item)
                if conversation_id == current_id:
                    self.list.setCurrentItem(item)
        if current_id is None:
            self.list.setCurrentRow(-1)
        self.list.blockSignals(False)

    def selected_ids(self) -> list[int]:
        return [item.data(ID_ROLE) for item in self.list.selectedItems()]

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else item.data(ID_ROLE)

    def title_of(self, conversation_id: int) -> str:
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == conversation_id:
                return self.list.item(row).text()
        return ""

    def rename_dialog(self, conversation_id: int) -> QInputDialog:
        """The Rename dialog, wide enough for its window title and the whole current title (within 80 % of
        the screen): the default 200 px cut both."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle(self.tr("Rename conversation"))
        dialog.setLabelText(self.tr("Title:"))
        dialog.setTextValue(self.title_of(conversation_id))
        metrics = dialog.fontMetrics()
        needed = max(metrics.horizontalAdvance(dialog.windowTitle()) + TITLE_BAR_EXTRA,
                     metrics.horizontalAdvance(dialog.textValue()) + 80, 360)
        screen = (self.screen() or QApplication.primaryScreen()).availableGeometry()
        dialog.resize(min(needed, int(screen.width() * 0.8)), dialog.sizeHint().height())
        return dialog

    def ask_rename(self, conversation_id: int) -> None:
        dialog = self.rename_dialog(conversation_id)
        title = dialog.textValue() if dialog.exec() == QInputDialog.DialogCode.Accepted else ""
        dialog.deleteLater()
        if title.strip():
            self.rename_requested.emit(conversation_id, title.strip())

    def ask_delete_selected(self) -> None:
        """Delete key / context menu on a selection: one confirmation for all of them."""
        ids = self.selected_ids() or ([self.current_id()] if self.current_id() is not None else [])
        if len(ids) == 1:
            self.ask_delete(ids[0])
        elif ids and QMessageBox.question(
                self, self.tr("Delete conversations"),
                self.tr("Delete %n conversation(s) and all their messages?", "", len(ids))
        ) == QMessageBox.StandardButton.Yes:
            self.delete_many_requested.emit(ids)

    def ask_delete(self, conversation_id: int) -> None:
        answer = QMessageBox.question(
            self, self.tr("Delete conversation"),
            self.tr("Delete “{title}” and all its messages?").format(title=self.title_of(conversation_id)))
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(conversation_id)

    def _current_changed(self, current, _previous) -> None:
        extending = QApplication.keyboardModifiers() & (Qt.KeyboardModifier.ControlModifier
                                                        | Qt.KeyboardModifier.ShiftModifier)
        if current is None or extending:  # Ctrl/Shift+click selects more; it opens nothing
            return
        if current.data(HIT_ROLE) is not None:
            self.hit_selected.emit(current.data(ID_ROLE), current.data(HIT_ROLE))
        else:
            self.selected.emit(current.data(ID_ROLE))

    def _context_menu(self, position) -> None:
        item = self.list.itemAt(position)
        if item is None:
            return
        conversation_id = item.data(ID_ROLE)
        menu = QMenu(self)
        selected = self.selected_ids()
        if len(selected) > 1 and conversation_id in selected:
            menu.addAction(self.tr("Delete %n conversation(s)…", "", len(selected)), self.ask_delete_selected)
            menu.exec(self.list.viewport().mapToGlobal(position))
            return
        pinned = bool(item.data(PINNED_ROLE))
        menu.addAction(self.tr("Unpin") if pinned else self.tr("Pin"),
                       lambda: self.pin_requested.emit(conversation_id, not pinned))
        menu.addAction(self.tr("Rename…"), lambda: self.ask_rename(conversation_id))
        menu.addAction(self.tr("Delete…"), lambda: self.ask_delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))
