"""File → Export / Import of the main window: the file dialogs, exporting and importing off the GUI thread, and the
folder the next dialog opens in."""
from __future__ import annotations

import asyncio
import os

from PySide6.QtWidgets import QFileDialog

from .export import ExportError, export_json, export_markdown, import_json
from .file_dirs import start_dir
from .store_schema import StoreError

STATE_FILE_DIR = "last_file_dir"  # the folder of the last export or import (the model dialog remembers its own)


class ExportFlow:
    """Mixed into MainWindow: needs store, controller, sidebar, run() and statusBar()."""

    async def export_to(self, path: str, fmt: str, everything: bool) -> int:
        """Export this conversation (or all) to Markdown or JSON, atomically, off the GUI thread."""
        self.controller.save_pending_settings()
        if not everything and self.controller.conversation_id is None:
            raise ExportError(self.tr("There is nothing to export yet: this conversation is empty."))
        ids = None if everything else [self.controller.conversation_id]
        writer = export_markdown if fmt == "md" else export_json
        count = await asyncio.to_thread(writer, self.store, path, ids)
        self.statusBar().showMessage(self.tr("Exported %n conversation(s) to {path}", "", count).format(path=path),
                                     8000)
        return count

    async def import_from(self, path: str) -> list[int]:
        """Import a JSON export into the history (all or nothing) and open the first imported conversation."""
        ids = await asyncio.to_thread(import_json, self.store, path)
        self.statusBar().showMessage(self.tr("Imported %n conversation(s)", "", len(ids)), 8000)
        self.controller.conversations_changed.emit()
        if ids and not self.controller.answering:
            self.controller.open_conversation(ids[0])
        return ids

    def _ask_export(self, fmt: str, everything: bool) -> None:
        suffix = "md" if fmt == "md" else "json"
        title = "conversations" if everything else (self.sidebar.title_of(self.controller.conversation_id or -1)
                                                    or "conversation")
        name = "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in title).strip() or "conversation"
        filters = self.tr("Markdown (*.md)") if fmt == "md" else self.tr("JSON (*.json)")
        folder = start_dir(self.store.get_state(STATE_FILE_DIR))
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export"), os.path.join(folder, f"{name}.{suffix}"),
                                              filters)
        if path:
            self._remember_file_dir(path)
            self.run(self.export_to(path, fmt, everything))

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Import conversations"),
                                              start_dir(self.store.get_state(STATE_FILE_DIR)), self.tr("JSON (*.json)"))
        if path:
            self._remember_file_dir(path)
            self.run(self.import_from(path))

    def _remember_file_dir(self, path: str) -> None:
        """The next export or import dialog opens where this one's file is (a convenience: a history that
        cannot be written now does not stop the export)."""
        try:
            self.store.set_state(STATE_FILE_DIR, os.path.dirname(os.path.abspath(path)))
        except StoreError:
            pass
