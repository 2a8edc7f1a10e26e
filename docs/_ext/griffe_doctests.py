"""Griffe extension for ``make docs``: render bare doctest blocks (``>>>`` lines) as ``pycon`` code.

Docstrings here put runnable examples anywhere (they run as doctests in ``make test``). Outside a
Google ``Examples:`` section Markdown would read ``>>>`` as nested block quotes and ``[False, True]``
as a link, so each run of doctest lines (prompts and their output, up to a blank line) is fenced.
"""

from __future__ import annotations

import textwrap
from typing import Any

import griffe

_SECTIONS = ("Example:", "Examples:")


def fence_doctests(text: str) -> str:
    """``text`` with every doctest block that is not already under an Examples section fenced.

    >>> fence_doctests("Adds.\\n\\n>>> 1 + 1\\n2\\n").splitlines()
    ['Adds.', '', '```pycon', '>>> 1 + 1', '2', '```']
    """
    lines = text.splitlines()
    out: list[str] = []
    i, in_section, in_fence = 0, False, False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if not line.startswith(" ") and stripped:
            in_section = stripped in _SECTIONS
        if stripped.startswith(">>>") and not in_section and not in_fence:
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            body = textwrap.dedent("\n".join(block))
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}```pycon", *textwrap.indent(body, indent).splitlines(), f"{indent}```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class DoctestBlocks(griffe.Extension):
    """Fence doctest blocks in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
