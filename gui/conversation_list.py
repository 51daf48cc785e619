"""Sidebar: the conversation list with New, search, rename and delete."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication, QInputDialog, QLabel, QLineEdit, QListWidget, QListWidgetItem, QMenu, QMessageBox, QPushButton,
    QVBoxLayout, QWidget,
)

ID_ROLE = Qt.ItemDataRole.UserRole
TITLE_BAR_EXTRA = 160  # a title bar's icon and buttons, beside the title's text


class ConversationList(QWidget):
    """Lists conversations (most recent first); emits what the user asks for, the controller does it."""

    selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
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
        self.list.setUniformItemSizes(True)
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
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.app_title.setText(self.tr("Baichuan Chat"))
        self.new_button.setText(self.tr("+  New conversation"))
        self.search.setPlaceholderText(self.tr("Search conversations"))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def set_conversations(self, conversations, current_id: int | None) -> None:
        """Show (id, title) pairs; the current one is highlighted without emitting `selected`."""
        self.list.blockSignals(True)
        self.list.clear()
        for conversation_id, title in conversations:
            item = QListWidgetItem(title)
            item.setData(ID_ROLE, conversation_id)
            item.setToolTip(title)
            self.list.addItem(item)
            if conversation_id == current_id:
                self.list.setCurrentItem(item)
        if current_id is None:
            self.list.setCurrentRow(-1)
        self.list.blockSignals(False)

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

    def ask_delete(self, conversation_id: int) -> None:
        answer = QMessageBox.question(
            self, self.tr("Delete conversation"),
            self.tr("Delete “{title}” and all its messages?").format(title=self.title_of(conversation_id)))
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(conversation_id)

    def _current_changed(self, current, _previous) -> None:
        if current is not None:
            self.selected.emit(current.data(ID_ROLE))

    def _context_menu(self, position) -> None:
        item = self.list.itemAt(position)
        if item is None:
            return
        conversation_id = item.data(ID_ROLE)
        menu = QMenu(self)
        menu.addAction(self.tr("Rename…"), lambda: self.ask_rename(conversation_id))
        menu.addAction(self.tr("Delete…"), lambda: self.ask_delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))
