"""Markdown to Qt rich-text HTML (markdown-it-py + pygments, $…$ / $$…$$ math as images), with an incremental
renderer for streams."""
from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.dollarmath.index import math_inline_dollar
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from .math_render import math_html

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

# Colours of the code-block frame and inline code per theme; pygments style names per theme.
_PALETTES = {
    False: {"code_bg": "#f6f8fa", "code_border": "#d8dee4", "code_head": "#6e7781",
            "inline_bg": "#eff1f3", "link": "#0969da", "style": "default", "math": "#1f2328"},
    True: {"code_bg": "#161b22", "code_border": "#30363d", "code_head": "#8b949e",
           "inline_bg": "#2d333b", "link": "#58a6ff", "style": "monokai", "math": "#e6e7ea"},
}


def _no_code_in_math(rule):
    """An inline math rule that leaves a would-be formula containing a backtick alone, so code spans keep their
    dollars: "`$HOME` and `$PATH`" is two code spans, not a formula "HOME` and `"."""
    def guarded(state, silent: bool) -> bool:
        start = state.pos
        found = rule(state, True)  # silent: finds the end without pushing tokens
        end, state.pos = state.pos, start
        if not found or "`" in state.src[start:end]:
            return False
        return rule(state, silent)
    return guarded


class MarkdownRenderer:
    """Renders Markdown as HTML that QTextDocument draws well; fenced code is highlighted by pygments."""

    def __init__(self, dark: bool = False, copy_label: str = "Copy"):
        self.dark = dark
        self.copy_label = copy_label
        self._colors = _PALETTES[dark]
        self._formatter = HtmlFormatter(nowrap=True, noclasses=True, style=self._colors["style"])
        self._md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
        self._md.enable(["table", "strikethrough"])
        # Pandoc's rule: no space after the opening $ nor before the closing one, and no digit right after the
        # closing one, so "$5 and $10" stays text; code spans and blocks are never math.
        self._md.use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True,
                     allow_blank_lines=False)
        self._md.inline.ruler.at("math_inline", _no_code_in_math(math_inline_dollar(False, False, True)))
        renderer = self

        def fence(_self, tokens, idx, _options, env):
            token = tokens[idx]
            return renderer._code_block(token.content, token.info.strip().split(" ")[0], env)

        def code_block(_self, tokens, idx, _options, env):
            return renderer._code_block(tokens[idx].content, "", env)

        def code_inline(_self, tokens, idx, _options, _env):
            bg = renderer._colors["inline_bg"]
            text = html.escape(tokens[idx].content)
            return f'<code style="background-color:{bg};">&#8202;{text}&#8202;</code>'

        def math(display: bool, block: bool):
            def rule(_self, tokens, idx, _options, _env):
                c = renderer._colors
                return math_html(tokens[idx].content, c["math"], display, c["inline_bg"], block)
            return rule

        for name, display, block in (("math_inline", False, False), ("math_inline_double", True, False),
                                     ("math_block", True, True), ("math_block_label", True, True)):
            self._md.add_render_rule(name, math(display, block))
        self._md.add_render_rule("fence", fence)
        self._md.add_render_rule("code_block", code_block)
        self._md.add_render_rule("code_inline", code_inline)

    def stylesheet(self) -> str:
        """Default CSS for the QTextDocument that shows the rendered HTML."""
        c = self._colors
        return (
            f"a {{ color: {c['link']}; }} "
            "p, li { margin-top: 2px; margin-bottom: 6px; } "
            "h1 { font-size: 1.35em; } h2 { font-size: 1.2em; } h3 { font-size: 1.08em; } "
            "table { border-collapse: collapse; } th, td { padding: 3px 8px; } "
            "blockquote { margin-left: 12px; } "
            "pre, code { font-family: 'JetBrains Mono', 'DejaVu Sans Mono', 'Noto Sans Mono', monospace; }"
        )

    def render(self, text: str, env: dict | None = None) -> str:
        """Render Markdown text; code blocks met are appended to env['code_blocks'] (for Copy links)."""
        env = {} if env is None else env
        env.setdefault("code_blocks", [])
        return self._md.render(text, env)

    def _code_block(self, code: str, lang: str, env: dict) -> str:
        blocks = env.setdefault("code_blocks", [])
        index = len(blocks)
        blocks.append(code)
        c = self._colors
        body = self._highlight(code.rstrip("\n"), lang)
        label = html.escape(lang or "text")
        return (
            f'<table width="100%" cellspacing="0" cellpadding="8" border="1" '
            f'style="border-color:{c["code_border"]}; border-style:solid; background-color:{c["code_bg"]}; '
            f'margin-top:4px; margin-bottom:8px;">'
            f'<tr><td style="border: none;">'
            f'<span style="color:{c["code_head"]}; font-size:small;">{label}</span>'
            f'&nbsp;&nbsp;<a href="copy:{index}" style="font-size:small;">{html.escape(self.copy_label)}</a>'
            f'<pre style="white-space:pre-wrap; margin:0;">{body}</pre></td></tr></table>'
        )

    def _highlight(self, code: str, lang: str) -> str:
        try:
            lexer = get_lexer_by_name(lang) if lang else None
        except ClassNotFound:
            lexer = None
        if lexer is None:
            return html.escape(code)
        return highlight(code, lexer, self._formatter).rstrip("\n")


def settled_prefix_length(text: str) -> int:
    """Length of the prefix of text made of finished blocks: up to the last blank line outside a code fence.

    Blocks before that point no longer change as more text streams in, so their HTML can be cached.
    """
    split = 0
    fence = ""
    pos = 0
    previous_blank = False
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # the last, unfinished line never settles
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = ""
                split = pos + len(line)  # a closed fence is a finished block
        elif not stripped:
            previous_blank = True
        else:
            if previous_blank and not line.startswith((" ", "\t")):
                split = pos  # a block starting after a blank line: everything before it is settled
            previous_blank = False
            match = _FENCE.match(line)
            if match:
                fence = match.group(1)
        pos += len(line)
    return split


class IncrementalRenderer:
    """Renders a growing Markdown text; HTML of settled blocks is cached, only the tail is re-rendered."""

    def __init__(self, renderer: MarkdownRenderer):
        self._renderer = renderer
        self.reset()

    def reset(self) -> None:
        self._label = self._renderer.copy_label  # the cached HTML holds this Copy label (its language)
        self._settled_src = ""
        self._settled_html = ""
        self._settled_blocks: list[str] = []
        self.code_blocks: list[str] = []

    def render(self, text: str) -> str:
        """HTML for text, which usually extends the text of the previous call."""
        if not text.startswith(self._settled_src) or self._label != self._renderer.copy_label:
            self.reset()
        split = settled_prefix_length(text)
        if split > len(self._settled_src):
            env = {"code_blocks": self._settled_blocks}
            self._settled_html += self._renderer.render(text[len(self._settled_src):split], env)
            self._settled_src = text[:split]
        env = {"code_blocks": list(self._settled_blocks)}
        tail = self._renderer.render(text[len(self._settled_src):], env)
        self.code_blocks = env["code_blocks"]
        return self._settled_html + tail

    def render_full(self, text: str) -> str:
        """A complete, uncached render (used once the text is final)."""
        self.reset()
        env: dict = {}
        result = self._renderer.render(text, env)
        self.code_blocks = env["code_blocks"]
        return result
