"""A slider paired with a spin box that edit one number together (int or float), bounded by a cap."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QSlider, QSpinBox, QWidget


# The spin box itself accepts numbers up to this: a typed number above the cap keeps all its digits (a spin box
# bounded by the cap refuses the keystroke that goes past it, so 6000 typed under a cap of 1000 became 600) and
# is brought down to the cap when the edit is finished.
TYPING_LIMIT = 2**31 - 1


class SliderField(QWidget):
    """Slider + spin box kept in sync; `decimals` = 0 makes it an integer field. The value stays within
    [minimum, cap]; a typed value above the cap becomes the cap when the edit is finished (Enter, focus out)."""

    valueChanged = Signal(object)

    def __init__(self, minimum: float, maximum: float, decimals: int = 0, step: float = 1, parent=None):
        super().__init__(parent)
        self._decimals = decimals
        self._scale = 10 ** decimals
        self.slider = QSlider(Qt.Orientation.Horizontal)
        if decimals:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(decimals)
        else:
            self.spin = QSpinBox()
        self.spin.setSingleStep(step)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setFixedWidth(68)
        self.slider.setMinimumWidth(60)
        self.spin.setKeyboardTracking(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.set_range(minimum, maximum)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def set_range(self, minimum: float, maximum: float) -> None:
        """Change the bounds (`maximum` is the cap); the current value is clamped into them, quietly."""
        self._cap = max(minimum, maximum)
        for widget in (self.slider, self.spin):
            widget.blockSignals(True)
        self.slider.setRange(round(minimum * self._scale), round(self._cap * self._scale))
        self.spin.setRange(minimum, max(self._cap, TYPING_LIMIT))
        self.spin.setValue(min(self.spin.value(), self._cap))
        self.slider.setValue(round(self.spin.value() * self._scale))
        for widget in (self.slider, self.spin):
            widget.blockSignals(False)
        self.spin.setToolTip(f"\u2264 {self._text(self._cap)}")

    def maximum(self) -> float:
        return self._cap

    def value(self):
        value = min(self.spin.value(), self._cap)
        return round(value, self._decimals) if self._decimals else int(value)

    def set_value(self, value, quiet: bool = False) -> None:
        """Set the value (clamped to the range); `quiet` suppresses valueChanged."""
        if quiet:
            self.blockSignals(True)
        self.spin.setValue(min(value, self._cap))
        if quiet:
            self.blockSignals(False)

    def _text(self, value) -> str:
        return f"{value:.{self._decimals}f}" if self._decimals else str(int(value))

    def _from_slider(self, raw: int) -> None:
        value = raw / self._scale if self._decimals else raw
        if self.spin.value() != value:
            self.spin.setValue(value)

    def _from_spin(self, value) -> None:
        if value > self._cap:  # typed above the cap (or stepped past it): the cap, shown in the box
            self.spin.setValue(self._cap)  # emits again, with the cap
            return
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * self._scale))
        self.slider.blockSignals(False)
        self.valueChanged.emit(self.value())
