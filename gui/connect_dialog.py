"""Model → Connect to server…: URL (recent servers offered), API key (remembered only if the user wants, in plain
text), and the model picked from the server's /v1/models, fetched off the GUI thread."""
from __future__ import annotations

import threading

from PySide6.QtCore import QEvent, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
    QVBoxLayout,
)

from .remote_state import recent_servers

FETCH_DEBOUNCE_MS = 600


def fetch_models(url: str, api_key: str) -> list[str]:
    """The ids the server lists at /v1/models (a RemoteError with one sentence when it cannot be asked)."""
    from inference.remote import RemoteEngine

    return [m["id"] for m in RemoteEngine(url, api_key or None).models]


class ConnectDialog(QDialog):
    """`choice()` after accept: {"url", "api_key", "model", "remember_key"}. The models come from the server."""

    _fetched = Signal(int, object)  # (fetch number, list of ids or the error sentence), from the fetch thread

    def __init__(self, recent=None, parent=None):
        super().__init__(parent)
        self.setObjectName("connectDialog")
        self.setMinimumWidth(600)
        self.recent = recent_servers(recent)
        self.intro = QLabel(wordWrap=True)
        self.url = QComboBox(objectName="connectUrl", editable=True)
        self.url.addItems([entry["url"] for entry in self.recent])
        self.url.setCurrentIndex(-1 if not self.recent else 0)
        self.key = QLineEdit(objectName="connectKey", echoMode=QLineEdit.EchoMode.Password)
        self.remember = QCheckBox(objectName="connectRemember", checked=True)
        self.model = QComboBox(objectName="connectModel", editable=True)
        self.refresh_button = QPushButton()
        self.refresh_button.clicked.connect(self.fetch)
        self.status = QLabel(wordWrap=True, objectName="connectStatus")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.refresh_button)
        self.labels = [QLabel() for _ in range(3)]  # Server URL, API key, Model
        self.form = QFormLayout()
        self.form.addRow(self.labels[0], self.url)
        self.form.addRow(self.labels[1], self.key)
        self.form.addRow(QLabel(), self.remember)
        self.form.addRow(self.labels[2], model_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(self.form)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.models: list[str] | None = None
        self.fetching = False
        self._fetch_id = 0
        self._fetched.connect(self._on_fetched)
        self._debounce = QTimer(self, singleShot=True, interval=FETCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.fetch)
        self.url.currentIndexChanged.connect(self._recent_picked)
        self.url.editTextChanged.connect(lambda _text: self._debounce.start())
        self.key.editingFinished.connect(self._debounce.start)
        self.retranslate_ui()
        if self.recent:
            self._recent_picked(0)

    def choice(self) -> dict:
        return {"url": self.url.currentText().strip(), "api_key": self.key.text().strip(),
                "model": self.model.currentText().strip(), "remember_key": self.remember.isChecked()}

    def _recent_picked(self, index: int) -> None:
        if not 0 <= index < len(self.recent):
            return
        entry = self.recent[index]
        self.key.setText(entry.get("api_key") or "")
        self.model.clear()
        if entry.get("model"):
            self.model.addItem(entry["model"])
        self._debounce.start()

    def fetch(self) -> None:
        """Ask the server for its models in a thread; the answer comes back as _fetched."""
        self._debounce.stop()
        url = self.url.currentText().strip()
        if not url:
            return
        self._fetch_id += 1
        self.fetching, self.models = True, None
        self.status.setText(self.tr("Asking {url} for its models…").format(url=url))
        self.status.setStyleSheet("")
        fetch_id, key = self._fetch_id, self.key.text().strip()

        def work():
            try:
                result = fetch_models(url, key)
            except Exception as exc:  # noqa: BLE001 - shown in the dialog as one sentence
                from .engine_loading import user_message

                result = user_message(exc)
            try:
                self._fetched.emit(fetch_id, result)
            except RuntimeError:  # the dialog was closed and deleted meanwhile
                pass

        threading.Thread(target=work, daemon=True, name="fetch-models").start()

    def _on_fetched(self, fetch_id: int, result) -> None:
        if fetch_id != self._fetch_id:
            return  # a newer URL or key was asked about meanwhile
        self.fetching = False
        if isinstance(result, str):
            self.status.setText(result)
            self.status.setStyleSheet("color: #d9534f;")
            return
        self.models = list(result)
        wanted = self.model.currentText().strip()
        self.model.clear()
        self.model.addItems(self.models)
        if wanted in self.models:
            self.model.setCurrentText(wanted)
        self.status.setText(self.tr("The server serves %n model(s).", "", len(self.models)))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def retranslate_ui(self) -> None:
        self.setWindowTitle(self.tr("Connect to server"))
        self.intro.setText(self.tr(
            "Chat with a model served by vLLM, vllm-ascend, MindIE, llama.cpp's server or another Baichuan Chat, "
            "through their OpenAI-compatible API. The model loaded in this window is released once connected."))
        for label, text in zip(self.labels, (self.tr("Server URL"), self.tr("API key"), self.tr("Model"))):
            label.setText(text)
        self.url.lineEdit().setPlaceholderText("http://127.0.0.1:8000/v1")
        self.key.setPlaceholderText(self.tr("none"))
        self.remember.setText(self.tr("Remember the key (stored on this computer in plain text)"))
        self.refresh_button.setText(self.tr("Refresh"))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(self.tr("Connect"))
