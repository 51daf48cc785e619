"""The settings panel's preset row: choose a preset; its ⋯ menu has Save as preset…, Delete, Make default."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QInputDialog, QMenu, QMessageBox, QToolButton, QWidget

from .presets import BALANCED, BUILTINS, CREATIVE, PRECISE, USER, user_name


class PresetPicker(QWidget):
    """Shows the presets; emits what the user asks for (the controller does it)."""

    chosen = Signal(str)  # a preset id picked from the list: apply it
    save_requested = Signal(str)  # a name: save the current settings under it
    delete_requested = Signal(str)  # a user preset id
    default_requested = Signal(str)  # a preset id new conversations should start from

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("presetPicker")
        self.combo = QComboBox(objectName="presetCombo")
        self.menu_button = QToolButton(objectName="presetMenu", text="\u22ef", autoRaise=True)
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self)
        self.save_action = QAction(self, triggered=self.ask_save)
        self.delete_action = QAction(self, triggered=self.ask_delete)
        self.default_action = QAction(self, triggered=lambda: self.current()
                                      and self.default_requested.emit(self.current()))
        for action in (self.save_action, self.delete_action, self.default_action):
            self.menu.addAction(action)
        self.menu_button.setMenu(self.menu)
        self._ids: list[str] = []
        self._user: list[str] = []
        self.default_id = BALANCED
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.menu_button)
        self.combo.activated.connect(lambda index: self.chosen.emit(self._ids[index]))
        self.combo.currentIndexChanged.connect(lambda _index: self._enable())
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.combo.setPlaceholderText(self.tr("Custom settings"))
        self.combo.setToolTip(self.tr("Presets: named settings (system prompt, sampling, max new tokens)"))
        self.menu_button.setToolTip(self.tr("Save, delete, or make this preset the one new conversations start from"))
        self.save_action.setText(self.tr("Save as preset…"))
        self.delete_action.setText(self.tr("Delete preset…"))
        self.default_action.setText(self.tr("Make default (for new conversations)"))
        self._fill()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def builtin_name(self, preset_id: str) -> str:
        return {PRECISE: self.tr("Precise (greedy)"), BALANCED: self.tr("Balanced (model defaults)"),
                CREATIVE: self.tr("Creative")}[preset_id]

    def set_presets(self, user_names, default_id: str) -> None:
        """The user's preset names and the default preset's id (the shown choice stays)."""
        self._user, self.default_id = list(user_names), default_id
        self._fill()

    def _fill(self) -> None:
        keep = self.current()
        self._ids = [*BUILTINS, *(USER + name for name in self._user)]
        self.combo.blockSignals(True)
        self.combo.clear()
        for preset_id in self._ids:
            name = self.builtin_name(preset_id) if preset_id in BUILTINS else user_name(preset_id)
            self.combo.addItem(self.tr("{name} (default)").format(name=name) if preset_id == self.default_id
                               else name)
        self.combo.blockSignals(False)
        self.select(keep)

    def current(self) -> str:
        index = self.combo.currentIndex()
        return self._ids[index] if 0 <= index < len(self._ids) else ""

    def select(self, preset_id: str) -> None:
        """Show this preset as the conversation's (none: "Custom settings"); emits nothing."""
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(self._ids.index(preset_id) if preset_id in self._ids else -1)
        self.combo.blockSignals(False)
        self._enable()

    def _enable(self) -> None:
        current = self.current()
        self.delete_action.setEnabled(current.startswith(USER))
        self.default_action.setEnabled(bool(current) and current != self.default_id)

    def ask_save(self) -> None:
        current = self.current()
        name, ok = QInputDialog.getText(self, self.tr("Save as preset"), self.tr("Preset name:"),
                                        text=user_name(current))
        name = " ".join(name.split())
        if not ok or not name:
            return
        if name in self._user and QMessageBox.question(
                self, self.tr("Save as preset"),
                self.tr("Replace the preset “{name}”?").format(name=name)) != QMessageBox.StandardButton.Yes:
            return
        self.save_requested.emit(name)

    def ask_delete(self) -> None:
        current = self.current()
        if current.startswith(USER) and QMessageBox.question(
                self, self.tr("Delete preset"),
                self.tr("Delete the preset “{name}”?").format(name=user_name(current))) == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(current)
