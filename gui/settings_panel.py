"""Per-conversation generation settings: sliders, seed, system prompt, streaming, reset to model defaults."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import (
    QCheckBox, QFormLayout, QFrame, QLabel, QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from .preset_picker import PresetPicker
from .presets import FALLBACK_DEFAULTS, PRESET_KEY, default_settings  # noqa: F401 - part of this module's API
from .slider_field import SliderField


class SettingsPanel(QWidget):
    """Edits one conversation's settings; emits `changed(dict)` after every user edit."""

    changed = Signal(dict)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("settingsPanel")
        self._model_defaults: dict = {}
        self._wanted_max_new = FALLBACK_DEFAULTS["max_new_tokens"]
        self._loading = False
        self.title = QLabel(objectName="panelTitle")
        self.model_label = QLabel(objectName="modelInfo", wordWrap=True)
        self.seq_label = QLabel(objectName="seqLen")
        self.presets = PresetPicker()
        self.system_prompt = QPlainTextEdit(objectName="systemPrompt")
        self.system_prompt.setFixedHeight(58)
        self.max_new = SliderField(1, 4096)
        self.do_sample = QCheckBox()
        self.temperature = SliderField(0.01, 2.0, decimals=2, step=0.05)
        self.top_k = SliderField(0, 200)
        self.top_p = SliderField(0.01, 1.0, decimals=2, step=0.01)
        self.repetition = SliderField(1.0, 2.0, decimals=2, step=0.01)
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.stream = QCheckBox()
        self.reset_button = QPushButton(objectName="resetButton")

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(8)
        form.setHorizontalSpacing(10)
        self._labels = {key: QLabel() for key in ("preset", "system", "max_new", "temperature", "top_k", "top_p",
                                                    "repetition", "seed")}
        form.addRow(self._labels["preset"], self.presets)
        form.addRow(self._labels["system"])
        form.addRow(self.system_prompt)
        form.addRow(self._labels["max_new"])
        form.addRow(self.max_new)
        form.addRow(self.do_sample)
        for key, widget in (("temperature", self.temperature), ("top_k", self.top_k), ("top_p", self.top_p),
                            ("repetition", self.repetition), ("seed", self.seed)):
            form.addRow(self._labels[key], widget)
        form.addRow(self.stream)
        line = QFrame(frameShape=QFrame.Shape.HLine, objectName="separator")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(8)
        layout.addWidget(self.title)
        layout.addWidget(self.model_label)
        layout.addWidget(self.seq_label)
        layout.addWidget(line)
        layout.addLayout(form)
        layout.addWidget(self.reset_button)

        self.system_prompt.textChanged.connect(self._emit)
        self.max_new.valueChanged.connect(self._max_new_edited)
        for widget in (self.temperature, self.top_k, self.top_p, self.repetition):
            widget.valueChanged.connect(self._emit)
        self.do_sample.toggled.connect(self._sampling_toggled)
        self.seed.valueChanged.connect(self._emit)
        self.stream.toggled.connect(self._emit)
        self.reset_button.clicked.connect(self.reset_to_defaults)
        self.retranslate_ui()
        self.set_model_info(None)
        self.set_settings(default_settings(None))

    def retranslate_ui(self) -> None:
        self.title.setText(self.tr("Settings"))
        texts = {
            "preset": self.tr("Preset"), "system": self.tr("System prompt"),
            "temperature": self.tr("Temperature"), "top_k": self.tr("Top-k"),
            "top_p": self.tr("Top-p"), "repetition": self.tr("Rep. penalty"), "seed": self.tr("Seed"),
        }
        for key, text in texts.items():
            self._labels[key].setText(text)
        self.do_sample.setText(self.tr("Sample tokens (uncheck for greedy decoding)"))
        self.stream.setText(self.tr("Stream tokens as they arrive"))
        self.seed.setSpecialValueText(self.tr("random"))
        self.system_prompt.setPlaceholderText(self.tr("Optional instructions for the model"))
        self.reset_button.setText(self.tr("Reset to model defaults"))
        self._show_model_info()
        self._show_max_new_cap()
        self._sampling_enabled(self.do_sample.isChecked())

    def _show_max_new_cap(self) -> None:
        """The label says how many new tokens fit, so a bigger number typed and brought down is explained."""
        self._labels["max_new"].setText(f"{self.tr('Max new tokens')} (\u2264 {self.max_new.maximum()})")

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    # model information -------------------------------------------------------------------------
    def set_model_info(self, info: dict | None) -> None:
        """Show the loaded model (name, device, dtype, MAX_SEQ_LEN) and take its generation defaults."""
        self._info = info
        self._model_defaults = dict((info or {}).get("defaults") or {})
        if info:
            self.max_new.set_range(1, max(1, int(info["max_seq_len"]) - 1))
            self._show_max_new_cap()
        self._show_model_info()

    def _show_model_info(self) -> None:
        info = getattr(self, "_info", None)
        if not info:
            self.model_label.setText(self.tr("No model loaded"))
            self.seq_label.setText(self.tr("MAX_SEQ_LEN: —"))
            return
        self.model_label.setText(
            self.tr("{name} · {device} · {dtype}").format(name=info["name"], device=info["device"],
                                                          dtype=info["dtype"]))
        self.seq_label.setText(self.tr("MAX_SEQ_LEN: {n}").format(n=info["max_seq_len"]))

    def set_max_new_tokens_limit(self, limit: int) -> None:
        """Bound the max-new-tokens slider by what the budget allows for the next send."""
        limit = max(1, int(limit))
        if limit == self.max_new.maximum():
            return
        self.max_new.set_range(1, limit)
        self.max_new.set_value(min(self._wanted_max_new, limit), quiet=True)
        self._show_max_new_cap()

    # settings --------------------------------------------------------------------------------
    def settings(self) -> dict:
        """The settings as the worker and the store take them."""
        return {
            "system_prompt": self.system_prompt.toPlainText(),
            "max_new_tokens": self.max_new.value(),
            "do_sample": self.do_sample.isChecked(),
            "temperature": self.temperature.value(),
            "top_k": self.top_k.value(),
            "top_p": self.top_p.value(),
            "repetition_penalty": self.repetition.value(),
            "seed": None if self.seed.value() < 0 else self.seed.value(),
            "stream": self.stream.isChecked(),
            PRESET_KEY: self.presets.current(),
        }

    def set_settings(self, settings: dict) -> None:
        """Show a conversation's settings (missing keys take the model defaults); emits nothing."""
        values = default_settings(self._model_defaults)
        values.update({k: v for k, v in (settings or {}).items() if k in values})
        self._loading = True
        try:
            if self.system_prompt.toPlainText() != values["system_prompt"]:
                self.system_prompt.setPlainText(values["system_prompt"] or "")
            self._wanted_max_new = int(values["max_new_tokens"])
            self.max_new.set_value(self._wanted_max_new, quiet=True)
            self.do_sample.setChecked(bool(values["do_sample"]))
            self.temperature.set_value(float(values["temperature"]), quiet=True)
            self.top_k.set_value(int(values["top_k"]), quiet=True)
            self.top_p.set_value(float(values["top_p"]), quiet=True)
            self.repetition.set_value(float(values["repetition_penalty"]), quiet=True)
            self.seed.setValue(-1 if values["seed"] is None else int(values["seed"]))
            self.stream.setChecked(bool(values["stream"]))
            preset = (settings or {}).get(PRESET_KEY)
            self.presets.select(preset if isinstance(preset, str) else "")
        finally:
            self._loading = False
        self._sampling_enabled(self.do_sample.isChecked())

    def reset_to_defaults(self) -> None:
        """Put every field back to the model's generation defaults (the system prompt is cleared)."""
        self.set_settings(default_settings(self._model_defaults))
        self._emit()

    def _max_new_edited(self, value) -> None:
        if not self._loading:
            self._wanted_max_new = int(value)
        self._emit()

    def _sampling_toggled(self, on: bool) -> None:
        self._sampling_enabled(on)
        self._emit()

    def _sampling_enabled(self, on: bool) -> None:
        """Greedy decoding uses none of these (the repetition penalty applies to both): fields and labels off."""
        for key, widget in (("temperature", self.temperature), ("top_k", self.top_k), ("top_p", self.top_p),
                            ("seed", self.seed)):
            widget.setEnabled(on)
            self._labels[key].setEnabled(on)
            widget.setToolTip("" if on else self.tr("Used only when sampling tokens"))

    def _emit(self, *_args) -> None:
        if not self._loading:
            self.changed.emit(self.settings())
