"""The Local server panel (Model → Local API server…): port, API key, reach, on/off, status and the URL to copy;
and the status-bar indicator that shows the server is on (and how many API requests it has)."""
from __future__ import annotations

import secrets

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
    QToolButton, QVBoxLayout,
)

COPIED_MS = 1500


class ServerPanel(QDialog):
    """Non-modal. `start_requested(port, key, lan)` / `stop_requested()` go to the LocalServer; the panel shows
    its state whenever it changes."""

    start_requested = Signal(int, str, bool)
    stop_requested = Signal()

    def __init__(self, server, settings: dict, parent=None):
        super().__init__(parent)
        self.setObjectName("serverPanel")
        self.server = server
        self.setMinimumWidth(560)
        self.intro = QLabel(wordWrap=True)
        self.port = QSpinBox(objectName="serverPort", minimum=1, maximum=65535, value=settings["port"])
        self.key = QLineEdit(settings["api_key"], objectName="serverKey")
        self.generate = QPushButton()
        self.generate.clicked.connect(lambda: self.key.setText(secrets.token_urlsafe(24)))
        self.key_note = QLabel(wordWrap=True, objectName="serverKeyNote")
        self.lan = QCheckBox(objectName="serverLan", checked=settings["lan"])
        self.toggle = QPushButton(objectName="serverToggle", checkable=True)
        self.toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.toggle.clicked.connect(self._toggled)
        self.status = QLabel(wordWrap=True, objectName="serverStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.url = QLineEdit(objectName="serverUrl", readOnly=True)
        self.copy = QPushButton(objectName="serverCopy")
        self.copy.clicked.connect(self.copy_url)
        self._copied = QTimer(self, singleShot=True, interval=COPIED_MS)
        self._copied.timeout.connect(self.retranslate_ui)
        self.last = QLabel(wordWrap=True, objectName="serverLast")
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.generate)
        url_row = QHBoxLayout()
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.copy)
        self.port_label, self.key_label = QLabel(), QLabel()
        self.form = QFormLayout()
        self.form.addRow(self.port_label, self.port)
        self.form.addRow(self.key_label, key_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(self.form)
        layout.addWidget(self.key_note)
        layout.addWidget(self.lan)
        layout.addWidget(self.toggle)
        layout.addWidget(self.status)
        layout.addLayout(url_row)
        layout.addWidget(self.last)
        layout.addWidget(buttons)
        server.changed.connect(self.refresh)
        self.retranslate_ui()

    def settings(self) -> dict:
        return {"port": self.port.value(), "api_key": self.key.text().strip(), "lan": self.lan.isChecked()}

    def _toggled(self, on: bool) -> None:
        if on:
            self.start_requested.emit(self.port.value(), self.key.text().strip(), self.lan.isChecked())
        else:
            self.stop_requested.emit()
        self.refresh()

    def copy_url(self) -> None:
        if self.url.text():
            QGuiApplication.clipboard().setText(self.url.text())
            self._copied.start()
            self.retranslate_ui()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def retranslate_ui(self) -> None:
        self.setWindowTitle(self.tr("Local API server"))
        self.intro.setText(self.tr(
            "Other programs (editors, scripts, Open WebUI, the openai Python package) can use the model loaded in "
            "this window through an OpenAI-compatible API (/v1/chat/completions). No second copy is loaded: API "
            "requests and this window take turns, first come, first served."))
        self.port_label.setText(self.tr("Port"))
        self.key_label.setText(self.tr("API key"))
        self.key.setPlaceholderText(self.tr("optional on this computer; required for other computers"))
        self.generate.setText(self.tr("Generate"))
        self.key_note.setText(self.tr("Clients send it as “Authorization: Bearer KEY”. It is stored on this "
                                      "computer in plain text."))
        self.lan.setText(self.tr("Allow other computers on the network (needs an API key; plain HTTP)"))
        self.copy.setText(self.tr("Copied") if self._copied.isActive() else self.tr("Copy"))
        self.refresh()

    def refresh(self) -> None:
        server = self.server
        on = server.state in ("on", "starting")
        self.toggle.setChecked(on)
        self.toggle.setText(self.tr("Stop the server") if on else self.tr("Start the server"))
        self.toggle.setEnabled(server.state not in ("starting", "stopping"))
        for widget in (self.port, self.key, self.generate, self.lan):
            widget.setEnabled(server.state in ("off", "error"))
        self.url.setText(server.url)
        self.copy.setEnabled(bool(server.url))
        self.status.setText(status_text(self, server))
        self.status.setStyleSheet("color: #d9534f;" if server.state == "error" else "")
        self.last.setText(self.tr("Last API answer: {line}").format(line=server.last_line) if server.last_line
                          else "")
        self.last.setVisible(bool(server.last_line))
        self._fit()

    def _fit(self) -> None:
        """Grow to show every line (wrapped labels change height as the status changes); never shrink."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        wanted = layout.heightForWidth(self.width()) if layout.hasHeightForWidth() else layout.sizeHint().height()
        if wanted > self.height():
            self.resize(self.width(), wanted)


def status_text(widget, server) -> str:
    """One line about the server for the panel (tr through the given widget's context)."""
    tr = widget.tr
    if server.state == "error":
        return tr("Not running: {error}").format(error=server.error)
    if server.state == "starting":
        return tr("Starting…")
    if server.state == "stopping":
        return tr("Stopping (answers in flight are cancelled)…")
    if server.state != "on":
        return tr("Off.")
    engine = server.client.local_engine()
    if engine is None:
        return tr("Listening, but no local model is loaded: requests get 503 until one is.")
    if server.active:
        return tr("Listening · %n API request(s) answering or waiting", "", server.active)
    return tr("Listening · idle")


class ServerIndicator(QToolButton):
    """Status-bar button shown while the server is on: 'API :8000 · N'; clicking opens the panel."""

    def __init__(self, server, parent=None):
        super().__init__(parent)
        self.setObjectName("serverIndicator")
        self.setAutoRaise(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.server = server
        server.changed.connect(self.refresh)
        self.refresh()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.refresh()
        super().changeEvent(event)

    def refresh(self) -> None:
        server = self.server
        self.setVisible(server.state in ("on", "error"))
        if server.state == "error":
            self.setText(self.tr("API server: error"))
        elif server.active:
            self.setText(self.tr("API server :{port} · %n request(s)", "", server.active).format(port=server.port))
        else:
            self.setText(self.tr("API server :{port}").format(port=server.port))
        self.setToolTip(server.url or server.error)
