"""Paints conversation rows: a date-group heading above the first row of each group, and a search snippet
under the title with the matching words in bold (the rows stay plain items: their text is the title)."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from .store_search import MARK_END, MARK_START

HEADER_ROLE = Qt.ItemDataRole.UserRole + 1  # the group heading shown above this row ("" for none)
SNIPPET_ROLE = Qt.ItemDataRole.UserRole + 2  # the search snippet, matches between MARK_START and MARK_END
PADDING = 8


def segments(snippet: str) -> list[tuple[str, bool]]:
    """(text, is a match) pieces of a marked snippet."""
    pieces, bold, current = [], False, ""
    for char in snippet:
        if char in (MARK_START, MARK_END):
            if current:
                pieces.append((current, bold))
            current, bold = "", char == MARK_START
        else:
            current += char
    if current:
        pieces.append((current, bold))
    return pieces


class ConversationDelegate(QStyledItemDelegate):
    """Group headings and snippets around the style's usual item painting."""

    def _header_height(self, option) -> int:
        return QFontMetrics(self._header_font(option.font)).height() + 10

    @staticmethod
    def _header_font(font: QFont) -> QFont:
        font = QFont(font)
        font.setBold(True)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        return font

    def sizeHint(self, option, index) -> QSize:
        size = super().sizeHint(option, index)
        extra = self._header_height(option) if index.data(HEADER_ROLE) else 0
        if index.data(SNIPPET_ROLE):
            extra += QFontMetrics(option.font).height() + 2
        return QSize(size.width(), size.height() + extra)

    def paint(self, painter, option, index) -> None:
        rect = QRect(option.rect)
        header = index.data(HEADER_ROLE)
        if header:
            height = self._header_height(option)
            painter.save()
            painter.setFont(self._header_font(option.font))
            painter.setPen(option.palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(QRect(rect.x() + PADDING, rect.y(), rect.width() - 2 * PADDING, height - 2),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, header)
            painter.restore()
            rect.setTop(rect.top() + height)
        item = QStyleOptionViewItem(option)
        item.rect = rect
        snippet = index.data(SNIPPET_ROLE)
        if snippet:
            item.displayAlignment = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
        super().paint(painter, item, index)
        if snippet:
            self._paint_snippet(painter, option, rect, snippet)

    def _paint_snippet(self, painter, option, rect: QRect, snippet: str) -> None:
        line = QFontMetrics(option.font).height()
        area = QRect(rect.x() + PADDING + 2, rect.bottom() - PADDING - line + 2, rect.width() - 2 * PADDING - 4, line)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setClipRect(area)
        painter.setPen(option.palette.color(QPalette.ColorRole.Text if selected else QPalette.ColorRole.PlaceholderText))
        x = area.x()
        for text, bold in segments(snippet):
            font = QFont(option.font)
            font.setBold(bold)
            painter.setFont(font)
            painter.drawText(QRect(x, area.y(), area.right() - x, line), Qt.AlignmentFlag.AlignLeft, text)
            x += QFontMetrics(font).horizontalAdvance(text)
            if x > area.right():
                break
        painter.restore()
