"""The composer's attachment row: the paperclip button, one chip per attached file (click to remove), and the one
sentence about a file that could not be attached; plus the check that refuses a send whose attachments don't fit."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QIcon, QKeySequence, QPainter, QPainterPath, QPen, QPixmap, QShortcut
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from .attachments import ATTACHMENT_MARK, split
from .budget_bar import WARNING_COLOR
from .file_dirs import start_dir

ERROR_MS = 10_000  # how long a "could not attach" sentence stays
FILE_PATTERNS = ("*.txt *.md *.markdown *.rst *.log *.csv *.json *.yaml *.yml *.toml *.ini *.xml *.html *.css "
                 "*.py *.js *.ts *.c *.h *.cc *.cpp *.hpp *.java *.go *.rs *.rb *.sh *.sql *.tex *.kt *.swift *.pdf")


class AttachmentBar(QWidget):
    """Shows and edits the attachments held by an InputBox; `attach_button` goes beside the input."""

    def __init__(self, input_box, parent=None):
        super().__init__(parent)
        self.setObjectName("attachmentBar")
        self.input = input_box
        self.last_dir = ""
        self.attach_button = QToolButton(objectName="attachButton")
        self.attach_button.setIconSize(QSize(20, 20))
        self.attach_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.attach_button.setAutoRaise(True)
        self.attach_button.clicked.connect(self.choose_files)
        self.chips: list[QToolButton] = []
        self.shortcut: QShortcut | None = None
        self.chip_row = QHBoxLayout()
        self.chip_row.setContentsMargins(0, 0, 0, 0)
        self.chip_row.setSpacing(6)
        self.chip_row.addStretch(1)
        self.error = QLabel(objectName="attachError", wordWrap=True)
        self.error.setStyleSheet(f"color: {WARNING_COLOR.name()};")
        self._error_timer = QTimer(self, interval=ERROR_MS, singleShot=True)
        self._error_timer.timeout.connect(lambda: self.show_error(""))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(self.chip_row)
        layout.addWidget(self.error)
        input_box.attachments_changed.connect(self.refresh)
        input_box.attach_failed.connect(self.show_error)
        self.retranslate_ui()
        self.refresh()

    def install_shortcut(self, window) -> None:
        """Ctrl+U in the window opens the file dialog."""
        self.shortcut = QShortcut(QKeySequence("Ctrl+U"), window, self.choose_files)
        self.retranslate_ui()

    def _paint_icon(self) -> None:
        """A paperclip drawn in the text colour (no emoji font needed)."""
        self.attach_button.setIcon(paperclip_icon(self.palette().windowText().color(), self.devicePixelRatioF()))

    def retranslate_ui(self) -> None:
        self._paint_icon()
        if self.shortcut is not None:
            self.shortcut.setWhatsThis(self.tr("Attach files to the message"))
        self.attach_button.setToolTip(self.tr("Attach text, Markdown, code or PDF files (Ctrl+U, or drop them on "
                                              "the input)"))
        for chip in self.chips:
            chip.setToolTip(self.tr("Remove this attachment"))

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate_ui()
        elif event.type() == QEvent.Type.PaletteChange:
            self._paint_icon()
        super().changeEvent(event)

    def choose_files(self) -> None:
        """The file dialog (paperclip, Ctrl+U)."""
        paths, _ = QFileDialog.getOpenFileNames(
            self, self.tr("Attach files"), start_dir(self.last_dir),
            self.tr("Text, code and PDF files ({patterns});;All files (*)").format(patterns=FILE_PATTERNS))
        if paths:
            self.last_dir = paths[0].rsplit("/", 1)[0]
            self.show_error("")
            self.input.add_files(paths)
        self.input.setFocus()

    def refresh(self) -> None:
        """One chip per attachment of the input box."""
        for chip in self.chips:
            chip.setParent(None)
            chip.deleteLater()
        self.chips = []
        for index, attachment in enumerate(self.input.attachments):
            chip = QToolButton(objectName="attachmentChip")
            chip.setText(f"{ATTACHMENT_MARK} {attachment.name}  ✕")
            chip.setCursor(Qt.CursorShape.PointingHandCursor)
            chip.clicked.connect(lambda _=False, i=index: self.input.remove_attachment(i))
            self.chip_row.insertWidget(index, chip)
            self.chips.append(chip)
        self.retranslate_ui()
        self.setVisible(bool(self.chips) or bool(self.error.text()))

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text:
            self._error_timer.start()
        self.setVisible(bool(self.chips) or bool(text))


def paperclip_icon(color, ratio: float = 1.0, size: int = 20) -> QIcon:
    """A paperclip: three nested hairpin turns, drawn at 45 degrees."""
    pixmap = QPixmap(int(size * ratio), int(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(color, 1.6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    painter.translate(size / 2, size / 2)
    painter.rotate(45)
    path = QPainterPath(QPointF(1.5, -2))
    path.lineTo(1.5, 5)
    path.arcTo(QRectF(-1.5, 3.5, 3, 3), 0, -180)
    path.lineTo(-1.5, -6)
    path.arcTo(QRectF(-3.5, -9, 7, 7), 180, -180)
    path.lineTo(3.5, 6)
    path.arcTo(QRectF(-5, 1.5, 8.5, 8.5), 0, -180)
    path.lineTo(-5, -3)
    painter.drawPath(path)
    painter.end()
    return QIcon(pixmap)


async def refuse_unfit(controller, messages: list[dict]) -> bool:
    """Before a send: True (and the budget bar says why) when the new message has attachments and does not fit in
    MAX_SEQ_LEN with the answer's max new tokens — an attachment is never cut."""
    if not split(messages[-1]["content"])[1]:
        return False
    result = await controller.client.count_budget(messages, controller.settings_panel.settings())
    if not result or "error" in result or not result.get("cut_tokens"):
        return False
    bar = controller.budget_bar
    bar.set_attachments(result.get("attachments", []))
    bar.set_budget(result["prompt_tokens"], result["max_new_tokens"], result["max_seq_len"],
                   result["dropped_rounds"], result["cut_tokens"])
    bar.flash()
    return True
