"""The window's side of the OpenAI-compatible API: the Local server switch (panel, status-bar indicator, the
window's answer waiting its turn behind API requests) and Model → Connect to server… (a remote model in the
worker, remembered like a folder, its budget marked as estimated when it is)."""
from __future__ import annotations

from PySide6.QtCore import QObject

from .connect_dialog import ConnectDialog
from .engine_thread import LoadCancelled, WorkerError
from .local_server import LocalServer
from .logging_setup import logger
from .remote_state import (
    STATE_LAST_REMOTE, STATE_LOCAL_SERVER, STATE_RECENT_SERVERS, add_recent_server, host_of, local_server_settings,
    tokenizer_folder,
)
from .server_panel import ServerIndicator, ServerPanel


class ServingUi(QObject):
    """Created by the MainWindow after its menus and controller; shutdown() when it closes."""

    def __init__(self, window):
        super().__init__(window)
        self.window, self.client, self.store = window, window.client, window.store
        self.server = LocalServer(self.client, self)
        self.indicator = ServerIndicator(self.server)
        window.statusBar().addPermanentWidget(self.indicator)
        self.indicator.clicked.connect(self.open_server_panel)
        self.panel: ServerPanel | None = None
        self.connect_dialog: ConnectDialog | None = None
        self._waiting_placeholder: tuple | None = None  # (answer widget, its placeholder before the wait)
        actions = window.menus.actions
        actions["local_server"].triggered.connect(self.open_server_panel)
        actions["connect_server"].triggered.connect(self.open_connect_dialog)
        self._client_slots = [(self.client.queued, self._queued), (self.client.budget_ready, self._budget),
                              (self.client.loaded, self._loaded)]
        for signal, slot in self._client_slots:
            signal.connect(slot)

    # ---- local server ------------------------------------------------------------------------
    def open_server_panel(self) -> ServerPanel:
        if self.panel is None:
            self.panel = ServerPanel(self.server, local_server_settings(self.store.get_state(STATE_LOCAL_SERVER)),
                                     self.window)
            self.panel.start_requested.connect(self.start_server)
            self.panel.stop_requested.connect(lambda: self.window.run(self.server.stop()))
        self.panel.show()
        self.panel.raise_()
        return self.panel

    def start_server(self, port: int, api_key: str, lan: bool):
        """Remember the choice (the key in plain text, as the panel says) and start listening."""
        self.store.set_state(STATE_LOCAL_SERVER, {"port": port, "api_key": api_key, "lan": lan})
        self.server.starting()
        return self.window.run(self.server.start(port, api_key, lan))

    def _queued(self, ahead: int) -> None:
        """The window's answer waits behind API requests: its placeholder says so, until its turn comes."""
        answer = getattr(self.window.controller, "answer", None)
        saved = self._waiting_placeholder
        if saved is not None and (answer is None or answer.widget is not saved[0] or ahead == 0):
            self._waiting_placeholder = None
            if answer is not None and answer.widget is saved[0]:
                saved[0].set_placeholder(saved[1])
        if answer is None or ahead <= 0 or answer.text:
            return
        if self._waiting_placeholder is None:
            self._waiting_placeholder = (answer.widget, answer.widget.placeholder)
        answer.widget.set_placeholder(self.tr("Waiting for %n API request(s)…", "", ahead))

    # ---- remote server -----------------------------------------------------------------------
    def open_connect_dialog(self) -> ConnectDialog:
        dialog = self.connect_dialog = ConnectDialog(self.store.get_state(STATE_RECENT_SERVERS), self.window)
        dialog.accepted.connect(lambda: self.window.run(self.connect(**dialog.choice())))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    async def connect(self, url: str, api_key: str = "", model: str = "", remember_key: bool = True) -> dict | None:
        """Connect the worker to the server; remembered (recent servers, and for the next start) once it works."""
        from .main_window import STATE_RECENT_MODELS  # a recent folder named like the served model counts exactly

        folder = tokenizer_folder(model, self.store.get_state(STATE_RECENT_MODELS)) if model else None
        try:
            info = await self.client.connect_server(url, api_key or None, model or None, folder)
        except LoadCancelled:
            self.window.statusBar().showMessage(self.tr("Connecting was cancelled"), 5000)
            return None
        except WorkerError as exc:
            logger.error("connecting to %s failed: %s", url, exc)
            self.window.show_error(self.tr("Could not connect to the server"), str(exc))
            return None
        kept_key = api_key if remember_key else None
        self.store.set_state(STATE_RECENT_SERVERS, add_recent_server(self.store.get_state(STATE_RECENT_SERVERS),
                                                                     url, info["name"], kept_key))
        last = {"url": url, "model": info["name"]}
        if kept_key:
            last["api_key"] = kept_key
        self.store.set_state(STATE_LAST_REMOTE, last)
        logger.info("connected to %s (model %s, budget %s)", info.get("source"), info.get("name"),
                    "by its tokenizer" if info.get("exact_budget") else "estimated")
        return info

    def last_remote(self) -> dict | None:
        """The server the window was connected to when it closed (None when a local model came after it)."""
        last = self.store.get_state(STATE_LAST_REMOTE)
        return last if isinstance(last, dict) and isinstance(last.get("url"), str) else None

    async def reconnect(self, fallback_dir: str | None) -> dict | None:
        """At start: the last server again; when it does not answer, the remembered folder (or the demo model)."""
        last = self.last_remote() or {}
        info = await self.connect(last.get("url", ""), last.get("api_key") or "", last.get("model") or "",
                                  bool(last.get("api_key")))
        if info is None:
            return await self.window.load_model(fallback_dir, fallback_to_demo=True)
        return info

    def _loaded(self, info: dict) -> None:
        if not info.get("remote"):
            self.store.set_state(STATE_LAST_REMOTE, None)  # the next start loads the local folder again

    def status_texts(self, info: dict) -> tuple[str, str]:
        """(status-bar line, compute line) for a remote model."""
        return (self.tr("remote: {model} at {host}").format(model=info.get("name", ""),
                                                            host=host_of(str(info.get("source", "")))),
                self.tr("Compute: on the server"))

    def _budget(self, result: dict) -> None:
        """Say in the budget bar when the count of a remote model's prompt is only an estimate."""
        how = result.get("estimate")
        notes = []
        if how == "chars":
            notes.append(self.tr("estimated: ~chars/3"))
        elif how == "usage":
            notes.append(self.tr("estimated from the server's last usage"))
        if how and not result.get("max_seq_len_known", True):
            notes.append(self.tr("the server does not report its context length; {n} assumed").format(
                n=result.get("max_seq_len")))
        set_estimate = getattr(self.window.budget, "set_estimate", None)
        if set_estimate is not None:
            set_estimate("; ".join(notes))

    def shutdown(self) -> None:
        """The window closes: the server stops (API answers in flight cancelled) and the client lets go of us."""
        self.server.shutdown()
        for signal, slot in self._client_slots:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
