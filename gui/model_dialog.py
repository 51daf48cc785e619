"""Model choice and load feedback: the open-folder dialog (with the model folders already on disk), the load
progress strip, the demo-model banner."""
from __future__ import annotations

import threading

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QSpinBox, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from .file_dirs import model_start_dir
from .model_finder import LOAD_KINDS, FoundModel, find_models, format_size

from inference import quant_cache_dir
from inference.choices import DEVICES, DTYPES, QUANTIZE


class ModelDialog(QDialog):
    """Choose a Baichuan2 folder (typed, browsed, or picked from the folders found on disk), device, dtype and
    MAX_SEQ_LEN; `choice()` gives them after accept."""

    _found = Signal(object)  # the scan's list of FoundModel, from its thread

    def __init__(self, folder: str = "", device: str = "auto", dtype: str = "auto", parent=None,
                 recent: list[str] | None = None, quantize: str = "none", tensor_parallel: int = 1):
        super().__init__(parent)
        self.setMinimumWidth(720)
        self.models: list[FoundModel] | None = None  # None while the scan runs
        self.found = QTreeWidget(objectName="foundModels")
        self.found.setRootIsDecorated(False)
        self.found.setColumnCount(5)
        self.found.setMinimumHeight(150)
        self.found.itemClicked.connect(lambda item: self._pick(item, False))
        self.found.itemDoubleClicked.connect(lambda item: self._pick(item, True))
        self.found_label = QLabel(objectName="foundLabel")
        self.folder = QLineEdit(folder)
        self.browse = QPushButton()
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(device if device in DEVICES else "auto")
        self.dtype = QComboBox()
        self.dtype.addItems(DTYPES)
        self.dtype.setCurrentText(dtype if dtype in DTYPES else "auto")
        self.quantize = QComboBox()
        self.quantize.addItems(QUANTIZE)
        self.quantize.setCurrentText(quantize if quantize in QUANTIZE else "none")
        self.tensor_parallel = QSpinBox()  # N devices of the chosen kind, one model split over them
        self.tensor_parallel.setRange(1, 8)
        self.tensor_parallel.setValue(max(1, min(8, int(tensor_parallel or 1))))
        self.max_seq_len = QSpinBox()
        self.max_seq_len.setRange(0, 1 << 20)
        self.hint = QLabel(wordWrap=True, objectName="seqLen")
        self.cache_size = QLabel(objectName="quantCacheSize")  # int8 / int4 loads keep their weights there
        self.clear_cache = QPushButton(objectName="clearQuantCache")
        self.clear_cache.clicked.connect(self._clear_cache)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(self.browse)
        self.form = QFormLayout()
        self._labels = [QLabel() for _ in range(6)]
        for label, field in zip(self._labels, (row, self.device, self.dtype, self.quantize, self.tensor_parallel,
                                               self.max_seq_len)):
            self.form.addRow(label, field)
        layout = QVBoxLayout(self)
        layout.addWidget(self.found_label)
        layout.addWidget(self.found)
        layout.addLayout(self.form)
        cache_row = QHBoxLayout()
        cache_row.addWidget(self.cache_size, 1)
        cache_row.addWidget(self.clear_cache)
        layout.addLayout(cache_row)
        layout.addWidget(self.hint)
        layout.addWidget(self.buttons)
        self.browse.clicked.connect(self._browse)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.folder.textChanged.connect(self._validate)
        self.retranslate_ui()
        self._validate()
        self._found.connect(self._show_found)
        recent = list(recent or [])
        threading.Thread(target=self._scan, args=(recent,), daemon=True, name="model-finder").start()

    def _scan(self, recent: list[str]) -> None:
        """In its own thread: sizes and configs are read off the GUI thread."""
        models = find_models(recent)
        try:
            self._found.emit(models)
        except RuntimeError:  # the dialog was closed (and deleted) meanwhile
            pass

    def _show_found(self, models: list[FoundModel]) -> None:
        self.models = models
        self.found.clear()
        for model in models:
            if model.problem:
                fits = model.problem
            else:
                fits = " · ".join(self._fit_text(label, *model.fits[label]) for label, _, _ in LOAD_KINDS)
            source = self.tr("recent") if model.source == "recent" else self.tr("Hugging Face cache")
            item = QTreeWidgetItem([model.name, model.variant, format_size(model.size) if model.size else "",
                                    fits, source])
            item.setToolTip(0, model.path)
            item.setData(0, Qt.ItemDataRole.UserRole, model.path)
            if model.problem:
                item.setDisabled(True)
            self.found.addTopLevelItem(item)
        for column in range(self.found.columnCount()):
            self.found.resizeColumnToContents(column)
        self._show_found_label()

    def _fit_text(self, label: str, need: int, fits: bool | None) -> str:
        mark = "?" if fits is None else "✓" if fits else "✗"
        return f"{label} {format_size(need)} {mark}"

    def _show_found_label(self) -> None:
        if self.models is None:
            self.found_label.setText(self.tr("Looking for model folders on this computer…"))
        elif self.models:
            self.found_label.setText(self.tr("Model folders on this computer (✓ fits in the memory free now, "
                                             "✗ does not; at the model's MAX_SEQ_LEN):"))
        else:
            self.found_label.setText(self.tr("No Baichuan folders were found among the recent folders or in the "
                                             "Hugging Face cache."))

    def _pick(self, item: QTreeWidgetItem, accept: bool) -> None:
        if item.isDisabled():
            return
        self.folder.setText(item.data(0, Qt.ItemDataRole.UserRole))
        if accept:
            self.accept()

    def retranslate_ui(self) -> None:
        self.found.setHeaderLabels([self.tr("Model"), self.tr("Variant"), self.tr("Size"),
                                    self.tr("Memory needed (fits?)"), self.tr("Where")])
        self._show_found_label()
        self.setWindowTitle(self.tr("Open model folder"))
        for label, text in zip(self._labels, (self.tr("Folder"), self.tr("Device"), self.tr("Dtype"),
                                              self.tr("Quantize"), self.tr("Devices (tensor parallel)"),
                                              self.tr("MAX_SEQ_LEN"))):
            label.setText(text)
        self.browse.setText(self.tr("Browse…"))
        self.clear_cache.setText(self.tr("Clear quantized cache"))
        self._show_cache_size()
        self.folder.setPlaceholderText(self.tr("A Baichuan2-7B-Chat or 13B-Chat folder"))
        self.max_seq_len.setSpecialValueText(self.tr("model maximum"))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(self.tr("Load"))
        self.hint.setText(self.tr(
            "The folder holds config.json, tokenizer.model and the weights (*.bin or *.safetensors). "
            "Code files in it are never run. Ascend 300I Duo: choose npu and float16."))

    def _show_cache_size(self) -> None:
        """The quantized cache's size (a few file headers read: no torch, nothing slow)."""
        try:
            entries = quant_cache_dir.entries()
        except OSError:
            entries = []
        if entries:
            self.cache_size.setText(self.tr("Quantized cache (faster int8 / int4 loads): {size} in {count} "
                                            "model(s)").format(size=format_size(sum(e.size for e in entries)),
                                                               count=len(entries)))
        else:
            self.cache_size.setText(self.tr("Quantized cache (faster int8 / int4 loads): empty"))
        self.cache_size.setToolTip(str(quant_cache_dir.cache_root()))
        self.clear_cache.setEnabled(bool(entries))

    def _clear_cache(self) -> None:
        try:
            quant_cache_dir.clear()
        except OSError as exc:
            self.cache_size.setText(self.tr("The quantized cache could not be cleared: {reason}").format(
                reason=exc.strerror or exc))
            return
        self._show_cache_size()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Choose a model folder"),
                                                  model_start_dir(self.folder.text()))
        if folder:
            self.folder.setText(folder)

    def _validate(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.folder.text().strip()))

    def choice(self) -> dict:
        return {"model_dir": self.folder.text().strip(), "device": self.device.currentText(),
                "dtype": self.dtype.currentText(), "max_seq_len": self.max_seq_len.value() or None,
                "quantize": self.quantize.currentText(), "tensor_parallel": self.tensor_parallel.value()}


class LoadStatus(QWidget):
    """Status-bar strip: what is loaded, or a progress bar with Cancel while a model loads."""

    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(180)
        self.progress.setTextVisible(False)
        self.cancel = QPushButton()
        self.cancel.clicked.connect(self.cancel_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel)
        self.set_loading(False)
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.cancel.setText(self.tr("Cancel"))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def set_loading(self, loading: bool) -> None:
        self.progress.setVisible(loading)
        self.cancel.setVisible(loading)
        if loading:
            self.progress.setValue(0)

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self.label.setText(self.tr("Loading model: {message}").format(message=message))


class ModelBanner(QFrame):
    """The notice above the chat: a small demo model is loaded (and how to open Baichuan2), or none is."""

    open_requested = Signal()
    demo_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("demoBanner")
        self.mode = "hidden"
        self.model_name = ""
        self.text = QLabel(objectName="bannerText", wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self.open_button = QPushButton(objectName="bannerButton")
        self.demo_button = QPushButton(objectName="bannerButton")
        self.open_button.clicked.connect(self.open_requested)
        self.demo_button.clicked.connect(self.demo_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(10)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.demo_button)
        layout.addWidget(self.open_button)
        self.set_mode("hidden")

    def set_mode(self, mode: str, model_name: str = "") -> None:
        """'demo' (demo model loaded), 'none' (no model), or 'hidden' (a real model, or loading)."""
        self.mode, self.model_name = mode, model_name
        self.setVisible(mode != "hidden")
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.open_button.setText(self.tr("Open model folder…"))
        self.demo_button.setText(self.tr("Load demo model"))
        self.demo_button.setVisible(self.mode == "none")
        if self.mode == "demo":
            self.text.setText(self.tr(
                "<b>Demo model:</b> you are chatting with {name}, a small demo model (135 M parameters) — "
                "its answers are short and often wrong. To chat with Baichuan2, download "
                "Baichuan2-7B-Chat and choose <b>Model → Open model folder…</b>").format(name=self.model_name))
        elif self.mode == "none":
            self.text.setText(self.tr(
                "<b>No model is loaded.</b> Open a Baichuan2 folder or load the small demo model."))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)
