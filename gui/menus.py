"""The main window's menu bar and shortcuts: actions built once, texts set again on a language change."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from .i18n import LANGUAGES
from .shortcuts_dialog import show_shortcuts
from .theme import THEMES

translate = QCoreApplication.translate  # lupdate extracts translate("Menus", ...) calls


class Menus:
    """Creates the File / Model / View / Help menus on a QMainWindow; `actions` maps names to QActions."""

    def __init__(self, window):
        self.window = window
        bar = window.menuBar()
        self.file = bar.addMenu("")
        self.model = bar.addMenu("")
        self.view = bar.addMenu("")
        self.help = bar.addMenu("")
        self.actions: dict[str, QAction] = {}
        add = self._add
        add(self.file, "new", QKeySequence("Ctrl+N"))
        self.file.addSeparator()
        self.export_menu = self.file.addMenu("")
        for name in ("export_md", "export_json", "export_all_md", "export_all_json"):
            add(self.export_menu, name)
        add(self.file, "import_json")
        self.file.addSeparator()
        add(self.file, "quit", QKeySequence("Ctrl+Q"))
        add(self.model, "open_model", QKeySequence("Ctrl+O"))
        add(self.model, "load_demo")
        add(self.model, "cancel_load")
        self.model.addSeparator()
        add(self.model, "connect_server")
        add(self.model, "local_server")
        self.language_menu = self.view.addMenu("")
        self.language_group = QActionGroup(window)
        for code in ("system", *LANGUAGES):
            action = add(self.language_menu, f"lang:{code}", checkable=True)
            action.setData(code)
            self.language_group.addAction(action)
        self.theme_menu = self.view.addMenu("")
        self.theme_group = QActionGroup(window)
        for name in ("system", *THEMES):
            action = add(self.theme_menu, f"theme:{name}", checkable=True)
            action.setData(name)
            self.theme_group.addAction(action)
        self.view.addSeparator()
        add(self.view, "toggle_settings", QKeySequence("Ctrl+,"), checkable=True).setChecked(True)
        add(self.help, "shortcuts", QKeySequence("F1"))
        self.actions["shortcuts"].triggered.connect(lambda: show_shortcuts(window))
        add(self.help, "about")
        self.retranslate()

    def _add(self, menu, name: str, shortcut: QKeySequence | None = None, checkable: bool = False) -> QAction:
        action = QAction(self.window)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.setCheckable(checkable)
        menu.addAction(action)
        self.actions[name] = action
        return action

    def check(self, prefix: str, value: str) -> None:
        """Tick the language or theme entry that is in use."""
        action = self.actions.get(f"{prefix}:{value}")
        if action is not None:
            action.setChecked(True)

    def retranslate(self) -> None:
        self.file.setTitle(translate("Menus", "&File"))
        self.model.setTitle(translate("Menus", "&Model"))
        self.view.setTitle(translate("Menus", "&View"))
        self.help.setTitle(translate("Menus", "&Help"))
        self.export_menu.setTitle(translate("Menus", "Export"))
        self.language_menu.setTitle(translate("Menus", "Language"))
        self.theme_menu.setTitle(translate("Menus", "Theme"))
        texts = {
            "new": translate("Menus", "New conversation"),
            "export_md": translate("Menus", "This conversation as Markdown…"),
            "export_json": translate("Menus", "This conversation as JSON…"),
            "export_all_md": translate("Menus", "All conversations as Markdown…"),
            "export_all_json": translate("Menus", "All conversations as JSON…"),
            "import_json": translate("Menus", "Import JSON…"),
            "quit": translate("Menus", "Quit"),
            "open_model": translate("Menus", "Open model folder…"),
            "load_demo": translate("Menus", "Load demo model"),
            "cancel_load": translate("Menus", "Cancel loading"),
            "connect_server": translate("Menus", "Connect to server…"),
            "local_server": translate("Menus", "Local API server…"),
            "lang:system": translate("Menus", "System language"),
            "theme:system": translate("Menus", "Follow system"),
            "theme:light": translate("Menus", "Light"),
            "theme:dark": translate("Menus", "Dark"),
            "toggle_settings": translate("Menus", "Settings panel"),
            "shortcuts": translate("Menus", "Keyboard shortcuts"),
            "about": translate("Menus", "About Baichuan Chat"),
        }
        for code, name in LANGUAGES.items():
            texts[f"lang:{code}"] = name
        for name, text in texts.items():
            self.actions[name].setText(text)
