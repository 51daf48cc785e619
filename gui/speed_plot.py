"""Per-answer speed: a live QPainter plot of decode tok/s and the answer's metrics (TTFT, prefill, decode)."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QLinearGradient, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

LINE_COLOR = QColor("#27b59a")
PLOT_MIN_HEIGHT = 72


translate = QCoreApplication.translate  # lupdate extracts translate("Context", "text") calls


def format_metrics(metrics: dict) -> dict[str, str]:
    """Display strings (translated) for an answer's metrics: ttft, prefill, decode, tokens."""
    def number(value, digits=1):
        return "—" if value is None else f"{float(value):.{digits}f}"

    decode = metrics.get("decode_tokens_per_s")
    if "output_tokens" in metrics and int(metrics.get("output_tokens") or 0) < 2:
        decode = None  # one token has no decode time: its "speed" would read 0.0 tok/s
    cached = int(metrics.get("cached_prompt_tokens") or 0)
    prompt = f"{int(metrics.get('prompt_tokens') or 0)}"
    if cached:
        prompt += translate("Metrics", " ({n} cached)").format(n=cached)
    return {
        "ttft": translate("Metrics", "{v} s").format(v=number(metrics.get("ttft_s"), 2)),
        "prefill": translate("Metrics", "{v} tok/s").format(v=number(metrics.get("prefill_tokens_per_s"))),
        "decode": "—" if decode is None else translate("Metrics", "{v} tok/s").format(v=number(decode)),
        "tokens": translate("Metrics", "{p} in · {o} out").format(p=prompt, o=int(metrics.get("output_tokens") or 0)),
    }


class SpeedPlot(QWidget):
    """Line plot of decode speed (tok/s) against output tokens, drawn with QPainter."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(PLOT_MIN_HEIGHT)
        self.samples: list[tuple[int, float]] = []

    def clear(self) -> None:
        self.samples = []
        self.update()

    def add_sample(self, tokens: int, tokens_per_s: float) -> None:
        self.samples.append((int(tokens), float(tokens_per_s)))
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text_color = palette.placeholderText().color()
        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        base = palette.base().color()
        painter.setPen(QPen(palette.mid().color(), 1))
        painter.setBrush(base)
        painter.drawRoundedRect(frame, 6, 6)
        plot = frame.adjusted(8, 18, -8, -8)
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        painter.setFont(font)
        painter.setPen(text_color)
        if len(self.samples) < 2:
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, self.tr("decode tok/s appears here"))
            return
        top = max(v for _, v in self.samples) * 1.15 or 1.0
        last_x = max(self.samples[-1][0], 1)
        painter.drawText(QRectF(frame.left() + 8, frame.top() + 2, frame.width() - 16, 16),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         self.tr("decode tok/s · peak {v:.1f}").format(v=top / 1.15))
        painter.drawText(QRectF(frame.left() + 8, frame.top() + 2, frame.width() - 16, 16),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         self.tr("{n} tokens").format(n=last_x))
        grid = QPen(palette.mid().color(), 1, Qt.PenStyle.DotLine)
        painter.setPen(grid)
        for i in range(1, 4):
            y = plot.top() + plot.height() * i / 4
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        points = [QPointF(plot.left() + plot.width() * x / last_x, plot.bottom() - plot.height() * v / top)
                  for x, v in self.samples]
        area = QPainterPath(QPointF(points[0].x(), plot.bottom()))
        for point in points:
            area.lineTo(point)
        area.lineTo(QPointF(points[-1].x(), plot.bottom()))
        area.closeSubpath()
        gradient = QLinearGradient(0, plot.top(), 0, plot.bottom())
        fill = QColor(LINE_COLOR)
        fill.setAlpha(90)
        gradient.setColorAt(0, fill)
        fill.setAlpha(10)
        gradient.setColorAt(1, fill)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawPath(area)
        line = QPainterPath(points[0])
        for point in points[1:]:
            line.lineTo(point)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(LINE_COLOR, 1.8))
        painter.drawPath(line)


class SpeedPanel(QWidget):
    """The 'last answer' box: live speed plot plus TTFT, prefill and decode tok/s and token counts."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("speedPanel")
        self.metrics: dict | None = None
        self._prompt: int | str = "—"
        self.title = QLabel(objectName="panelTitle")
        self.plot = SpeedPlot()
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        self._names: dict[str, QLabel] = {}
        self.values: dict[str, QLabel] = {}
        for row, key in enumerate(("ttft", "prefill", "decode", "tokens")):
            self._names[key] = QLabel(objectName="metricName")
            self.values[key] = QLabel("—", objectName="metricValue")
            self.values[key].setAlignment(Qt.AlignmentFlag.AlignRight)
            grid.addWidget(self._names[key], row, 0)
            grid.addWidget(self.values[key], row, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        # The numbers come before the plot: at the default window size the side panel's end is at the
        # bottom edge, and what may be cut there should be the picture, never the Tokens row.
        layout.addLayout(grid)
        layout.addWidget(self.plot)
        self.retranslate_ui()

    def retranslate_ui(self) -> None:
        self.title.setText(self.tr("Last answer"))
        names = {"ttft": self.tr("Time to first token"), "prefill": self.tr("Prefill"),
                 "decode": self.tr("Decode"), "tokens": self.tr("Tokens")}
        for key, text in names.items():
            self._names[key].setText(text)
        if self.metrics:
            self.show_metrics(self.metrics)

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        super().changeEvent(event)

    def start(self) -> None:
        """A new answer begins: clear the plot and the numbers."""
        self.metrics = None
        self._prompt = "—"
        self.plot.clear()
        for label in self.values.values():
            label.setText("—")

    def add_sample(self, tokens: int, tokens_per_s: float) -> None:
        self.plot.add_sample(tokens, tokens_per_s)
        self.values["decode"].setText(format_metrics({"decode_tokens_per_s": tokens_per_s})["decode"])
        self.values["tokens"].setText(translate("Metrics", "{p} in · {o} out").format(p=self._prompt, o=tokens))

    def show_first_token(self, info: dict) -> None:
        """The answer's first token arrived: time to first token and prompt size, before the final metrics."""
        self._prompt = int(info.get("prompt_tokens") or 0)
        self.values["ttft"].setText(format_metrics(info)["ttft"])

    def show_metrics(self, metrics: dict) -> None:
        """Show the FinishEvent metrics of an answer."""
        self.metrics = dict(metrics)
        for key, text in format_metrics(metrics).items():
            self.values[key].setText(text)
