"""HTML building blocks of the report: escaping, number formatting, tables, notes, images and
the page around the sections. Every text from a run goes through ``esc``."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from persyn.report.compute import num

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
td.l, th.l { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; border: 1px solid #e3e3e3;
      padding: 0.6em; max-height: 22em; overflow: auto; font-size: 0.88em; margin: 0.3em 0; }
.note { color: #666; font-style: italic; }
.muted { color: #666; }
.sample { border: 1px solid #ddd; border-radius: 4px; padding: 0.6em 0.9em; margin: 1em 0; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px;
          margin-right: 0.35em; vertical-align: baseline; }
nav a { margin-right: 1em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(value: Any) -> str:
    """``str(value)`` HTML-escaped (quotes too); control characters shown as ``\\xNN``, lone
    surrogates replaced."""
    s = str(value).encode("utf-8", "replace").decode("utf-8")
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return html.escape(s, quote=True)


def fmt(x: Any, digits: int = 3) -> str:
    """A cell's text: an int as is, a float with ``digits`` decimals, a missing or non-finite
    number as "—", anything else escaped."""
    n = num(x)
    if n is None:
        return "—" if x is None or isinstance(x, int | float) else esc(x)
    if isinstance(x, int):
        return str(x)
    return f"{n:.{digits}f}"


def pct(part: float, whole: float) -> str:
    """``part / whole`` as a percentage with one decimal; "—" when ``whole`` is 0."""
    return f"{part / whole:.1%}" if whole else "—"


def note(text: str) -> str:
    """A note paragraph around already-escaped ``text``."""
    return f'<p class="note">{text}</p>'


def table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A table of already-escaped cells; the first ``left`` columns are left-aligned."""

    def cell(tag: str, i: int, v: str) -> str:
        """One cell; left-aligned when its column is among the first ``left``."""
        return f'<{tag} class="l">{v}</{tag}>' if i < left else f"<{tag}>{v}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def kv_table(rows: list[tuple[str, str]]) -> str:
    """A two-column table: a bold name (already escaped) and its value (already escaped)."""
    return table(["", "value"], [[f"<b>{k}</b>", v] for k, v in rows], left=2)


def teacher_cell(colours: dict[str, str], name: str) -> str:
    """A teacher's name, escaped, after a swatch of its colour (grey when it has none)."""
    colour = colours.get(name, "#999")
    return f'<span class="swatch" style="background:{colour}"></span>{esc(name)}'


def img(uri: str, alt: str) -> str:
    """An ``<img>`` of a data URI with escaped ``alt`` text."""
    return f'<img alt="{esc(alt)}" src="{uri}">'


def page(run_dir: Path, sections: list[tuple[str, str, str]]) -> str:
    """The whole HTML document: title, run directory, a navigation bar and one ``<h2>`` per
    section ``(anchor, title, HTML content)``."""
    nav = " ".join(f'<a href="#{a}">{html.escape(title)}</a>' for a, title, _ in sections)
    body = "\n".join(f'<h2 id="{a}">{html.escape(title)}</h2>\n{content}' for a, title, content in sections)
    title = f"persyn report · {run_dir.resolve().name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n"
        f'<p class="muted">run directory: <code>{esc(run_dir.resolve())}</code></p>\n'
        f"<nav>{nav}</nav>\n{body}\n</body>\n</html>\n"
    )
