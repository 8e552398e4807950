"""A griffe extension for the API reference: Sphinx markup and bare doctests to Markdown.

The docstrings are numpydoc, written to read well as plain text, with a few Sphinx roles
(``:func:`descend.parse```, ``:math:`f(x)```, ``.. math::``). mkdocstrings renders
Markdown, so the roles become inline code and the math becomes MathJax (arithmatex).

Many docstrings show a short doctest right after their prose, without a numpydoc
"Examples" heading (the doctests run in the test suite either way). The numpy parser
only recognizes ``>>>`` lines inside "Examples", so elsewhere they would render as
Markdown paragraphs, their outputs (``[1.0, 1.0]``) read as broken links. This wraps
each such block in a ``pycon`` code fence before the docstring is parsed; the source
is not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

EXAMPLE_SECTIONS = {"Examples", "Example"}


def fence_doctests(text: str) -> str:
    """``text`` with each run of doctest lines outside "Examples" in a code fence."""
    lines = text.splitlines()
    out: list[str] = []
    section = None
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if stripped and len(following) >= 3 and set(following) == {"-"}:
            section = stripped
        if stripped.startswith(">>>") and not fenced and section not in EXAMPLE_SECTIONS:
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *block, f"{indent}```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")


def math_blocks(text: str) -> str:
    """``.. math::`` and its indented lines to a ``$$ ... $$`` block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == ".. math::":
            indent = line[: len(line) - len(line.lstrip())]
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i].strip())
                i += 1
            while body and not body[-1]:
                body.pop()
            out += [f"{indent}$$", *(f"{indent}{b}" for b in body if b), f"{indent}$$", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _inline_code(match: re.Match[str]) -> str:
    name = match.group(1)  # ":func:`~a.b`" shows "b", as Sphinx does
    return f"``{name.rpartition('.')[2] if '`~' in match.group(0) else name}``"


def to_markdown(text: str) -> str:
    """The docstring ``text`` with Sphinx markup as Markdown and doctests fenced."""
    text = MATH_ROLE.sub(lambda m: rf"\({m.group(1)}\)", text)
    text = ROLE.sub(_inline_code, text)
    if ".. math::" in text:
        text = math_blocks(text)
    return fence_doctests(text) if ">>>" in text else text


class SphinxToMarkdown(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
