"""UI language: English or Simplified Chinese from Qt Linguist .qm files; follows the system, switchable."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from .resources import I18N_DIR

LANGUAGES = {"en": "English", "zh_CN": "简体中文"}
CATALOG = "baichuan_chat"
_installed: list[QTranslator] = []


def system_language() -> str:
    """'zh_CN' when the system locale is Chinese, else 'en'."""
    return "zh_CN" if QLocale.system().language() == QLocale.Language.Chinese else "en"


def resolve(choice: str | None) -> str:
    """A language code for a stored choice ('system', None or a code)."""
    return choice if choice in LANGUAGES else system_language()


def install(language: str) -> bool:
    """Switch the running app's language (widgets get a LanguageChange event); False if no catalog."""
    app = QCoreApplication.instance()
    for translator in _installed:
        app.removeTranslator(translator)
    _installed.clear()
    ours = QTranslator(app)
    if not ours.load(f"{CATALOG}_{language}", str(I18N_DIR)):  # English needs its catalog only for plurals
        QLocale.setDefault(QLocale(QLocale.Language.English))
        return language == "en"
    qt = QTranslator(app)
    if language != "en" and qt.load(f"qtbase_{language}", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        app.installTranslator(qt)
        _installed.append(qt)
    app.installTranslator(ours)
    _installed.append(ours)
    QLocale.setDefault(QLocale(language))
    return True
