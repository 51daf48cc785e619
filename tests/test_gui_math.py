"""Math in answers: $…$ and $$…$$ drawn as images in the message's document (source in the tooltip and in Copy),
prices and code left alone, a formula that does not parse shown as code, each formula drawn once."""
from __future__ import annotations

import re

from PySide6.QtCore import QUrl
from PySide6.QtGui import QGuiApplication, QTextDocument

from gui.markdown_render import IncrementalRenderer, MarkdownRenderer
from gui.math_render import formula_png

ANSWER = ("The area is $\\pi r^2$, and\n\n$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n"
          "It costs $5 and $10; `$x$` is code; $\\frac{a$ is broken.")


def _images(document: QTextDocument) -> list[tuple[str, str]]:
    """(image name, tooltip) of every image in a document."""
    found = []
    block = document.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                found.append((fmt.toImageFormat().name(), fmt.toolTip()))
            it += 1
        block = block.next()
    return found


def test_dollar_rules_code_and_parse_failures():
    html = MarkdownRenderer().render(ANSWER)
    assert html.count("<img ") == 2
    assert 'title="$\\pi r^2$"' in html and 'title="$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$"' in html
    assert "It costs $5 and $10" in html  # prices stay text
    assert "&#8202;$x$&#8202;</code>" in html  # a code span is never math
    assert re.search(r"<code[^>]*>\$\\frac\{a\$</code>", html)  # does not parse: its source, as code


def test_dark_theme_colour_and_one_drawing_per_formula():
    light, dark = formula_png("E=mc^2", "#1f2328"), formula_png("E=mc^2", "#e6e7ea")
    assert light and dark and light[0] != dark[0]
    renderer = IncrementalRenderer(MarkdownRenderer(dark=True))
    formula_png.cache_clear()
    text = "Streaming $a^2+b^2=c^2$ and more words"
    for end in range(len("Streaming $a^2+b^2=c^2$"), len(text) + 1):
        renderer.render(text[:end])
    renderer.render_full(text)
    info = formula_png.cache_info()
    assert info.misses == 1 and info.hits >= 10


def test_window_shows_math_as_an_image_with_its_source(open_window, qtbot):
    window = open_window()
    window.chat.set_messages([(1, "user", "Area of a circle?", "complete", {}),
                              (2, "assistant", ANSWER, "complete", {})])
    widget = window.chat.widget_for(2)
    document = widget.body.document()
    images = _images(document)
    assert [tip for _, tip in images] == ["$\\pi r^2$", "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$"]
    for name, _ in images:
        resource = document.resource(QTextDocument.ResourceType.ImageResource, QUrl(name))
        assert resource is not None and not resource.isNull() and resource.width() > 10
    widget.copy_text()
    assert QGuiApplication.clipboard().text() == ANSWER  # Copy gives the TeX source
