"""TeX formulas of answers as PNG images (matplotlib's mathtext on its Agg canvas), cached, as HTML <img> tags."""
from __future__ import annotations

import base64
import html
import io
from functools import lru_cache

#: Pixels per inch the formulas are drawn at: twice the 96 logical dpi, so they stay sharp on HiDPI screens.
MATH_DPI = 192
LOGICAL_DPI = 96
FONT_POINTS = 10.5  # the app's text size (theme.apply_fonts)
DISPLAY_SCALE = 1.2  # $$…$$ formulas are drawn a little larger
#: Longer TeX is shown as code: mathtext's parser is slow on very long input, and no real formula is this long.
MAX_TEX = 2000


@lru_cache(maxsize=1024)
def formula_png(tex: str, color: str, dpi: int = MATH_DPI, display: bool = False) -> tuple[bytes, int, int] | None:
    """PNG bytes and pixel size of one formula (without its $ signs), or None when mathtext cannot parse it.

    Cached by (tex, colour, dpi, display): a streamed answer re-renders its text many times a second, but each
    formula is drawn once.
    """
    if not tex.strip() or len(tex) > MAX_TEX:
        return None
    from matplotlib import mathtext, rc_context  # lazily: a second the first time, only when an answer has math
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    size = FONT_POINTS * (DISPLAY_SCALE if display else 1.0)
    try:
        with rc_context({"savefig.transparent": True}):  # the bubble's colour shows through, in either theme
            mathtext.math_to_image(f"${tex}$", buffer, prop=FontProperties(size=size), dpi=dpi, format="png",
                                   color=color)
    except Exception:  # noqa: BLE001 - mathtext raises ValueError (and others on odd input): shown as code
        return None
    data = buffer.getvalue()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the PNG IHDR chunk
    return data, width, height


def math_html(tex: str, color: str, display: bool = False, code_bg: str = "", block: bool = False) -> str:
    """An <img> of the formula (its TeX as tooltip and alt text), or the TeX source as code when it does not parse.

    display: a $$…$$ formula (drawn larger); block: one standing in its own paragraph (centred)."""
    tex = tex.strip()
    rendered = formula_png(tex, color, MATH_DPI, display)
    marks = "$$" if display else "$"
    source = html.escape(f"{marks}{tex}{marks}", quote=True)
    if rendered is None:
        style = f' style="background-color:{code_bg};"' if code_bg else ""
        code = f"<code{style}>{html.escape(f'{marks}{tex}{marks}')}</code>"
        return f"<p>{code}</p>" if block else code
    data, width, height = rendered
    scale = LOGICAL_DPI / MATH_DPI
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    image = (f'<img src="{uri}" alt="{source}" title="{source}" width="{max(1, round(width * scale))}" '
             f'height="{max(1, round(height * scale))}" style="vertical-align: middle;">')
    return f'<p align="center">{image}</p>' if block else image
