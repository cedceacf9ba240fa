"""Rendering email templates from ``templates/`` in the sandbox, with an HTML and a text part.

Templates see what conditions see (``customer``, ``event``, ``now``) and nothing else: the
sandbox refuses private attributes and unsafe calls, and a missing value renders empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from engine.campaigns.expressions import sandbox

_BLOCKS = {"p", "div", "tr", "br", "li", "h1", "h2", "h3", "h4", "table", "ul", "ol", "title"}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """An email as it would be sent: the rendered subject, HTML and its text alternative."""

    subject: str
    html: str
    text: str


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        elif tag == "a":
            self._href = dict(attrs).get("href")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href and self._href != "#":
            self.parts.append(f" ({self._href})")
            self._href = None
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A plain-text alternative of an HTML email: blocks on their own lines, links spelled out."""
    extractor = _TextExtractor()
    extractor.feed(html)
    text = "".join(extractor.parts)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


@cache
def template_environment(templates: Path) -> SandboxedEnvironment:
    """The sandbox, loading templates from ``templates`` (HTML escaped automatically)."""
    env = sandbox().overlay(loader=FileSystemLoader(str(templates)), autoescape=True)
    assert isinstance(env, SandboxedEnvironment)
    return env


def render_body(templates: Path, template: str, scope: dict[str, Any]) -> tuple[str, str]:
    """The HTML of ``template`` for the names in ``scope``, and its text part."""
    html = template_environment(templates).get_template(template).render(**scope)
    return html, html_to_text(html)


def render_email(
    templates: Path, template: str, subject: str, scope: dict[str, Any]
) -> RenderedEmail:
    """Render ``template`` and the ``subject`` string for the names in ``scope``."""
    html, text = render_body(templates, template, scope)
    rendered_subject = sandbox().from_string(subject).render(**scope)
    return RenderedEmail(" ".join(rendered_subject.split()), html, text)


def template_problem(error: Exception, templates: Path, template: str) -> str:
    """``error`` as a person fixes it: ``file:line: message`` and the line itself, found in the
    syntax error or in the template's frame of the traceback (Jinja2 gives rendering errors the
    template's file and line); the bare message when no line is known."""
    found: tuple[str, int] | None = None
    if isinstance(error, TemplateSyntaxError) and error.lineno:
        found = (error.filename or str(templates / template), error.lineno)
    else:
        trace = error.__traceback__
        folder = str(templates.resolve())
        while trace is not None:  # the innermost template frame is the line that failed
            filename = trace.tb_frame.f_code.co_filename
            if filename.startswith(folder) or filename.endswith(f"/{template}"):
                found = (filename, trace.tb_lineno)
            trace = trace.tb_next
    message = getattr(error, "message", None) or str(error)
    if not isinstance(error, TemplateError):  # a ZeroDivisionError, a KeyError: say which
        message = f"{type(error).__name__}: {message}"
    if found is None:
        return f"{templates / template}: {message}"
    filename, line = found
    try:
        source = Path(filename).read_text(encoding="utf-8").splitlines()[line - 1].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        return f"{filename}:{line}: {message}"
    return f"{filename}:{line}: {message}\n    {source}"
