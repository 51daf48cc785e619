"""Help → Keyboard shortcuts: every shortcut of the window, read from its actions and QShortcuts, plus the
input box's own keys."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout,
)

translate = QCoreApplication.translate  # lupdate extracts translate("ShortcutsDialog", ...) calls


def _key_text(sequence: QKeySequence) -> str:
    return sequence.toString(QKeySequence.SequenceFormat.NativeText)


def known_descriptions() -> dict[str, str]:
    """What the QShortcuts made without a text do, by key (portable text)."""
    return {
        "Esc": translate("ShortcutsDialog", "Stop the answer, or cancel editing a message"),
    }


def shortcut_rows(window) -> list[tuple[str, str]]:
    """(keys, what they do) for the window: menu actions, QShortcuts, then the input box's keys."""
    rows: list[tuple[str, str]] = [
        ("Enter", translate("ShortcutsDialog", "Send the message")),
        ("Shift+Enter", translate("ShortcutsDialog", "New line in the message")),
        (_key_text(QKeySequence(QKeySequence.StandardKey.Delete)),
         translate("ShortcutsDialog", "Delete the selected conversations (in the list)")),
    ]
    known = known_descriptions()
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            text = action.text().replace("&", "").rstrip("…").strip()
            if text and not sequence.isEmpty():
                rows.append((_key_text(sequence), text))
    for shortcut in window.findChildren(QShortcut):
        sequence = shortcut.key()
        if sequence.isEmpty():
            continue
        portable = sequence.toString(QKeySequence.SequenceFormat.PortableText)
        text = shortcut.whatsThis() or known.get(portable, "")
        if text:
            rows.append((_key_text(sequence), text))
    seen, unique = set(), []
    for keys, text in rows:
        if (keys, text) not in seen:
            seen.add((keys, text))
            unique.append((keys, text))
    return unique


class ShortcutsDialog(QDialog):
    """A read-only two-column table: keys, and what they do."""

    def __init__(self, window):
        super().__init__(window)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle(translate("ShortcutsDialog", "Keyboard shortcuts"))
        self.table = QTableWidget(0, 2, self)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.fill(window)
        self.resize(520, 420)

    def fill(self, window) -> None:
        self.table.setHorizontalHeaderLabels([translate("ShortcutsDialog", "Keys"),
                                              translate("ShortcutsDialog", "Action")])
        rows = shortcut_rows(window)
        self.table.setRowCount(len(rows))
        for row, (keys, text) in enumerate(rows):
            for column, value in enumerate((keys, text)):
                item = QTableWidgetItem(value)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                self.table.setItem(row, column, item)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]


def show_shortcuts(window) -> ShortcutsDialog:
    """Open (or bring up, refreshed) the window's shortcuts list; it does not block the window."""
    dialog = getattr(window, "shortcuts_dialog", None)
    if dialog is None:
        dialog = window.shortcuts_dialog = ShortcutsDialog(window)
    else:
        dialog.fill(window)
    dialog.show()
    dialog.raise_()
    return dialog
