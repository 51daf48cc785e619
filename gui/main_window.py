"""The main window: sidebar, chat pane with composer and budget, settings and speed panel, menus, model loading."""
from __future__ import annotations

import asyncio
import base64

from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication, QFrame, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton, QScrollArea,
    QSplitter, QVBoxLayout, QWidget,
)

from inference.compute_path import describe as describe_compute
from inference.version import __version__

from . import i18n, theme
from .attachment_bar import AttachmentBar
from .budget_bar import BudgetBar
from .chat_controller import ChatController
from .chat_view import ChatView
from .conversation_list import ConversationList
from .engine_thread import EngineClient, LoadCancelled, WorkerError
from .export_flow import ExportFlow
from .find_bar import FindBar
from .input_box import InputBox
from .logging_setup import log_path, logger
from .menus import Menus
from .model_dialog import LoadStatus, ModelBanner, ModelDialog
from .model_finder import add_recent
from .serving_ui import ServingUi
from .settings_panel import SettingsPanel
from .speed_plot import SpeedPanel
from .store import STATE_LANGUAGE, STATE_LAST_MODEL_DIR, STATE_THEME, STATE_WINDOW_GEOMETRY, Store

STATE_DEVICE, STATE_DTYPE, STATE_QUANTIZE, STATE_BROWSE_DIR = "device", "dtype", "quantize", "last_browse_dir"
STATE_RECENT_MODELS = "recent_model_dirs"  # model folders loaded, newest first (the model dialog lists them)


class MainWindow(ExportFlow, QMainWindow):
    """One chat window over a Store and an EngineClient (the client may be shared, e.g. by tests)."""

    def __init__(self, store: Store, client: EngineClient | None = None, owns_client: bool | None = None):
        super().__init__()
        self.setObjectName("mainWindow")
        self.store = store
        self.client = client or EngineClient()
        self.owns_client = client is None if owns_client is None else owns_client
        self.error_box: QMessageBox | None = None
        self._tasks: set[asyncio.Task] = set()
        self._build()
        self.menus = Menus(self)
        self.controller = ChatController(store, self.client, self.chat, self.settings_panel, self.budget,
                                         self.speed_panel, self.input, self)
        self.serving = ServingUi(self)  # Local API server switch, Connect to server…
        self._connect()
        self.menus.check("lang", store.get_state(STATE_LANGUAGE) or "system")
        self.menus.check("theme", store.get_state(STATE_THEME) or "system")
        self.retranslate_ui()
        self._restore_geometry()
        self.controller.restore()
        self._refresh_model_ui(self.client.state)
        if self.client.info:
            self.controller.model_loaded(self.client.info)
        self.input.setFocus()

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = ConversationList()
        self.banner = ModelBanner()
        self.chat = ChatView()
        self.input = InputBox()
        self.send_button = QPushButton(objectName="sendButton")
        self.send_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.edit_hint = QLabel(objectName="editHint")
        self.edit_hint.hide()
        self.budget = BudgetBar()
        box = QFrame(objectName="composerBox")
        box_row = QHBoxLayout(box)
        box_row.setContentsMargins(10, 6, 8, 6)
        self.attachment_bar = AttachmentBar(self.input)  # files attached to the message (paperclip, drop, Ctrl+U)
        box_row.addWidget(self.attachment_bar.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        box_row.addWidget(self.input, 1)
        box_row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        composer = QFrame(objectName="composer")
        composer_layout = QVBoxLayout(composer)
        composer_layout.setContentsMargins(24, 6, 24, 10)
        composer_layout.setSpacing(6)
        composer_layout.addWidget(self.edit_hint)
        composer_layout.addWidget(self.attachment_bar)
        composer_layout.addWidget(box)
        composer_layout.addWidget(self.budget)
        center = QWidget(objectName="chatCanvas")
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(0, 0, 0, 0)
        center_layout.setSpacing(0)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(24, 12, 24, 0)
        banner_row.addWidget(self.banner)
        center_layout.addLayout(banner_row)
        self.find_bar = FindBar(self.chat)  # Ctrl+F in the conversation
        center_layout.addWidget(self.find_bar)
        center_layout.addWidget(self.chat, 1)
        center_layout.addWidget(composer)
        self.settings_panel = SettingsPanel()
        self.speed_panel = SpeedPanel()
        right_content = QWidget(objectName="rightContent")
        right_layout = QVBoxLayout(right_content)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.settings_panel)
        right_layout.addWidget(self.speed_panel)
        right_layout.addStretch(1)
        self.right_panel = QScrollArea(objectName="rightPanel", widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.right_panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.right_panel.setWidget(right_content)
        # Never narrower than its content (with room for the vertical scroll bar): with the horizontal bar
        # off, a narrower panel would cut the settings' value boxes off at the window's edge.
        self.right_panel.setMinimumWidth(right_content.minimumSizeHint().width()
                                         + self.right_panel.verticalScrollBar().sizeHint().width())
        self.splitter = QSplitter()
        self.splitter.setHandleWidth(1)
        for widget in (self.sidebar, center, self.right_panel):
            self.splitter.addWidget(widget)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 760, 320])
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)
        self.load_status = LoadStatus()
        self.statusBar().addWidget(self.load_status, 1)
        self.compute_label = QLabel(objectName="computePath")  # which kernels run the model, or why not
        self.statusBar().addPermanentWidget(self.compute_label)
        self.resize(1360, 860)

    def _connect(self) -> None:
        c, a = self.controller, self.menus.actions
        self.input.send_requested.connect(c.send)
        self.input.stop_requested.connect(c.stop)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, c.stop)
        self.attachment_bar.install_shortcut(self)  # Ctrl+U
        self.find_bar.install_shortcut(self)  # Ctrl+F
        self.send_button.clicked.connect(lambda: c.stop() if c.answering else c.send())
        c.answering_changed.connect(self._answering_changed)
        c.editing_changed.connect(self.edit_hint.setVisible)
        c.conversations_changed.connect(self._refresh_list)
        c.error.connect(lambda message: self.show_error(self.tr("The answer failed"), message))
        self.sidebar.selected.connect(c.open_conversation)
        self.sidebar.new_requested.connect(c.new_conversation)
        self.sidebar.rename_requested.connect(c.rename)
        self.sidebar.delete_requested.connect(c.delete)
        self.sidebar.delete_many_requested.connect(c.delete_many)
        self.sidebar.pin_requested.connect(c.set_pinned)
        self.sidebar.hit_selected.connect(c.open_hit)
        self.sidebar.search_changed.connect(c.set_search)
        a["new"].triggered.connect(c.new_conversation)
        a["quit"].triggered.connect(self.close)
        a["open_model"].triggered.connect(self.open_model_dialog)
        a["load_demo"].triggered.connect(lambda: self.run(self.load_model(None)))
        a["cancel_load"].triggered.connect(self.client.cancel_load)
        a["toggle_settings"].toggled.connect(self.right_panel.setVisible)
        a["about"].triggered.connect(self._about)
        a["import_json"].triggered.connect(self._ask_import)
        for name, fmt, everything in (("export_md", "md", False), ("export_json", "json", False),
                                      ("export_all_md", "md", True), ("export_all_json", "json", True)):
            a[name].triggered.connect(lambda _=False, f=fmt, e=everything: self._ask_export(f, e))
        self.menus.language_group.triggered.connect(lambda action: self.set_language(action.data()))
        self.menus.theme_group.triggered.connect(lambda action: self.set_theme(action.data()))
        self.banner.open_requested.connect(self.open_model_dialog)
        self.banner.demo_requested.connect(lambda: self.run(self.load_model(None)))
        self.load_status.cancel_requested.connect(self.client.cancel_load)
        self._client_slots = [(self.client.load_progress, self.load_status.set_progress),
                              (self.client.state_changed, self._refresh_model_ui)]
        for signal, slot in self._client_slots:
            signal.connect(slot)

    def retranslate_ui(self) -> None:
        self.setWindowTitle(self.tr("Baichuan Chat"))
        self.input.setPlaceholderText(self.tr("Message the model…  (Enter sends, Shift+Enter for a new line)"))
        self.edit_hint.setText(self.tr("Editing a message: Enter resends it and drops the answers after it; "
                                       "Esc cancels"))
        self._answering_changed(self.controller.answering)
        self.menus.retranslate()
        self._refresh_model_ui(self.client.state)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange and hasattr(self, "controller"):
            self.retranslate_ui()
        super().changeEvent(event)

    # ---- state shown -------------------------------------------------------------------------
    def _answering_changed(self, answering: bool) -> None:
        self.send_button.setText(self.tr("Stop") if answering else self.tr("Send"))
        self.send_button.setProperty("mode", "stop" if answering else "send")
        self.send_button.style().unpolish(self.send_button)
        self.send_button.style().polish(self.send_button)

    def _refresh_list(self) -> None:
        self.sidebar.set_conversations(self.controller.conversation_rows(), self.controller.conversation_id)

    def _refresh_model_ui(self, state: str) -> None:
        info = self.client.info or {}
        loading = state == "loading"
        self.load_status.set_loading(loading)
        self.menus.actions["cancel_load"].setEnabled(loading)
        if state == "ready":
            self.banner.set_mode("demo" if info.get("is_demo") else "hidden", info.get("name", ""))
            self.load_status.label.setText(self.tr("{name} on {device} ({dtype}) · MAX_SEQ_LEN {n}").format(
                name=info.get("name", ""), device=info.get("device", ""), dtype=info.get("dtype", ""),
                n=info.get("max_seq_len", "")))
            self.compute_label.setText(self.tr("Compute: {path}").format(path=describe_compute(info)))
            if info.get("remote"):
                for label, text in zip((self.load_status.label, self.compute_label), self.serving.status_texts(info)):
                    label.setText(text)
        elif loading:
            self.banner.set_mode("hidden")
            self.load_status.label.setText(self.tr("Loading model…"))
        else:
            self.banner.set_mode("none")
            self.load_status.label.setText(self.tr("No model loaded"))
        self.compute_label.setVisible(state == "ready")
        self.settings_panel.set_model_info(info if state == "ready" else None)

    def show_error(self, title: str, message: str) -> QMessageBox:
        """A non-modal error notice with the one-sentence message; the window stays usable. There is only ever
        one: a later error replaces the text of the one shown, and a repeat of it is counted, not stacked."""
        logger.error("%s: %s", title, message)
        box = self.error_box
        if box is None:
            box = self.error_box = QMessageBox(QMessageBox.Icon.Critical, title, message,
                                               QMessageBox.StandardButton.Ok, self)
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.finished.connect(lambda _result: setattr(self, "_error_repeats", 0))
        if box.isVisible() and (box.windowTitle(), box.text()) == (title, message):
            self._error_repeats = getattr(self, "_error_repeats", 1) + 1
            box.setInformativeText(self.tr("This happened %n time(s).", "", self._error_repeats))
        else:
            self._error_repeats = 1
            box.setWindowTitle(title)
            box.setText(message)
            box.setInformativeText("")
        box.show()
        return box

    # ---- model -------------------------------------------------------------------------------
    def run(self, coroutine) -> asyncio.Task:
        """Run a coroutine on the qasync loop; failures become an error dialog."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.show_error(self.tr("Something went wrong"), str(exc) or exc.__class__.__name__)

    def start(self, model_dir: str | None = None, explicit: bool = False, device: str | None = None,
              dtype: str | None = None, max_seq_len: int | None = None) -> asyncio.Task:
        """First load after the window shows: --model, else the remembered folder, else the demo model."""
        remembered = self.store.get_state(STATE_LAST_MODEL_DIR)
        folder = model_dir if explicit else remembered
        if not explicit and self.serving.last_remote():  # connected to a server when the app last closed
            return self.run(self.serving.reconnect(remembered))
        return self.run(self.load_model(folder, device, dtype, max_seq_len, fallback_to_demo=not explicit))

    async def load_model(self, model_dir: str | None, device: str | None = None, dtype: str | None = None,
                         max_seq_len: int | None = None, fallback_to_demo: bool = False, quantize: str | None = None,
                         tensor_parallel: int | None = None) -> dict | None:
        device = device or self.store.get_state(STATE_DEVICE) or "auto"
        dtype = dtype or self.store.get_state(STATE_DTYPE) or "auto"
        quantize = quantize or self.store.get_state(STATE_QUANTIZE) or "none"
        tensor_parallel = tensor_parallel or 1
        try:
            info = await self.client.load(model_dir, device, dtype, max_seq_len, quantize=quantize,
                                          tensor_parallel=tensor_parallel)
        except LoadCancelled:
            self.statusBar().showMessage(self.tr("Loading was cancelled"), 5000)
            return None
        except WorkerError as exc:
            logger.error("loading %s failed: %s", model_dir or "the demo model", exc)
            self.show_error(self.tr("The model could not be loaded"), str(exc))
            if fallback_to_demo and model_dir is not None:
                return await self.load_model(None, device, dtype)
            return None
        logger.info("loaded %s from %s on %s (%s, max_seq_len %s) in %s s; compute path: %s", info.get("name"),
                    info.get("source"), info.get("device"), info.get("dtype"), info.get("max_seq_len"),
                    info.get("load_seconds"), describe_compute(info))
        self.store.set_state(STATE_LAST_MODEL_DIR, model_dir)
        if model_dir:  # the model dialog lists recently opened folders
            self.store.set_state(STATE_RECENT_MODELS, add_recent(self.store.get_state(STATE_RECENT_MODELS), model_dir))
        self.store.set_state(STATE_DEVICE, device)
        self.store.set_state(STATE_DTYPE, dtype)
        self.store.set_state(STATE_QUANTIZE, quantize)
        return info

    def open_model_dialog(self) -> None:
        dialog = ModelDialog(self.store.get_state(STATE_BROWSE_DIR) or "", self.store.get_state(STATE_DEVICE) or "auto",
                             self.store.get_state(STATE_DTYPE) or "auto", self,
                             recent=self.store.get_state(STATE_RECENT_MODELS),
                             quantize=self.store.get_state(STATE_QUANTIZE) or "none")
        if dialog.exec() == ModelDialog.DialogCode.Accepted:
            choice = dialog.choice()
            self.store.set_state(STATE_BROWSE_DIR, choice["model_dir"])
            self.run(self.load_model(**choice))
        self.input.setFocus()

    # ---- language, theme, window -------------------------------------------------------------
    def set_language(self, choice: str) -> None:
        self.store.set_state(STATE_LANGUAGE, None if choice == "system" else choice)
        i18n.install(i18n.resolve(choice))
        self.menus.check("lang", choice)

    def set_theme(self, choice: str) -> None:
        self.store.set_state(STATE_THEME, None if choice == "system" else choice)
        dark = theme.apply(QApplication.instance(), theme.resolve(choice))
        self.chat.set_dark(dark)
        self.menus.check("theme", choice)

    def about_text(self) -> str:
        """Help → About: what the app is, its version, the compute path in use and where the log file is."""
        log = log_path()
        lines = [self.tr("A desktop chat for Baichuan2-7B-Chat / 13B-Chat running on this computer "
                         "(CPU, CUDA or Ascend NPU)."),
                 self.tr("Version {version}").format(version=__version__),
                 self.tr("Log file: {path}").format(path=log) if log else self.tr("Log file: none (not writable)")]
        if self.client.state == "ready" and self.client.info:
            lines.insert(2, self.tr("Compute: {path}").format(path=describe_compute(self.client.info)))
        return "\n\n".join(lines)

    def _about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.NoIcon, self.tr("About Baichuan Chat"), self.about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # the log path can be copied
        box.exec()

    def _restore_geometry(self) -> None:
        saved = self.store.get_state(STATE_WINDOW_GEOMETRY)
        if isinstance(saved, str):
            self.restoreGeometry(QByteArray(base64.b64decode(saved)))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self.input.setFocus)  # no window manager under Xvfb: take the focus ourselves
        self.activateWindow()

    def closeEvent(self, event) -> None:
        self.controller.finish_now()
        self.controller.save_pending_settings()
        self.store.set_state(STATE_WINDOW_GEOMETRY, base64.b64encode(bytes(self.saveGeometry())).decode())
        self.serving.shutdown()  # the API server stops first: answers in flight are cancelled
        for task in list(self._tasks):
            task.cancel()
        if self.owns_client:
            self.client.shutdown()
        else:
            self.controller.detach()
            for signal, slot in self._client_slots:
                signal.disconnect(slot)
        super().closeEvent(event)
