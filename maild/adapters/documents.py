"""Generated documents: a Jinja2 text template per document, written out as a DOCX file.

The 《客户需求确认函》 (``customer_confirmation``), the 《采购订单》 (``purchase_order``), the
acceptance notice (``acceptance_notice``) and the blank 《跨部门沟通需求申请表》 (``form``) go
with their letters as Word documents. Each is a plain text template,
``<name>.<zh|en>.j2`` in ``maild/data/templates/documents/`` (or in the ``[documents]
templates`` folder, whose files are used first), rendered with the letter's own context and
turned into a document line by line:

- ``# 标题`` and ``## 小标题``: headings;
- ``字段：值`` (full-width colon, or an ASCII colon followed by a blank or the line's end;
  the name at most 20 characters): a row of a two-column table, consecutive rows one table;
  the value may be empty (a blank form);
- any other line: a paragraph; blank lines only separate.

The first ``#`` heading names the file (``客户需求确认函-2026-客-001.docx``). Every style
carries the East Asian font (宋体 / SimSun), so Chinese text opens the same in Word and WPS.
Templates are checked once, against each letter's sample context, when the site is built and
by ``maild config check``: a broken one is a configuration error, never a letter that fails.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2

from maild.config import Config, ConfigError
from maild.data import templates_dir
from maild.engine.effects import LetterFile, SendLetter

log = logging.getLogger("maild.documents")

DEFAULT_DOCUMENTS = templates_dir().parent / "documents"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
#: the letter that carries each document (the blank form goes with ``request_form``)
LETTER_DOCUMENTS = {"customer_confirmation": "customer_confirmation",
                    "purchase_order": "purchase_order",
                    "acceptance_notice": "acceptance_notice",
                    "request_form": "form"}
LANGUAGES = ("zh", "en")
EAST_ASIAN_FONT = "宋体"
LATIN_FONT = "SimSun"

_ROW = re.compile(r"^([^\s:：#][^:：]{0,19}?)\s*(?:：|:(?=\s|$))[ \t\u3000]*(.*)$")
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


class DocumentError(Exception):
    """A document template is missing or broken."""


class Documents:
    """The document templates and which letters carry their document."""

    def __init__(self, attach: Iterable[str] = tuple(LETTER_DOCUMENTS.values()),
                 folder: Path | None = None) -> None:
        self.attach = frozenset(attach)
        self.folder = folder
        loaders: list[jinja2.BaseLoader] = []
        if folder is not None:
            loaders.append(jinja2.FileSystemLoader(str(folder)))
        loaders.append(jinja2.FileSystemLoader(str(DEFAULT_DOCUMENTS)))
        self.env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders),
                                      undefined=jinja2.StrictUndefined, autoescape=False,
                                      trim_blocks=True, lstrip_blocks=True,
                                      keep_trailing_newline=True)

    def document_for(self, letter: str) -> str | None:
        """The document ``letter`` carries, when ``[documents] attach`` names it."""
        name = LETTER_DOCUMENTS.get(letter)
        return name if name in self.attach else None

    def text(self, name: str, language: str, context: Mapping[str, Any]) -> str:
        """The document's template rendered: the text the DOCX is made of."""
        lang = language if language in LANGUAGES else "zh"
        try:
            return self.env.get_template(f"{name}.{lang}.j2").render(context)
        except jinja2.TemplateNotFound as e:
            raise DocumentError(f"document {name!r} has no template {e.name}") from e
        except jinja2.TemplateError as e:
            line = getattr(e, "lineno", None)
            where = f" (line {line})" if line else ""
            raise DocumentError(f"document template {name}.{lang}.j2{where}: {e}") from e

    def build(self, name: str, language: str, context: Mapping[str, Any]) -> LetterFile:
        """The document as a DOCX file a letter carries."""
        text = self.text(name, language, context)
        data, title = docx_bytes(text, author=str(context.get("org_name", "")))
        number = str(context.get("number", "") or "")
        stem = _UNSAFE.sub("_", "-".join(p for p in (title or name, number) if p))[:120]
        return LetterFile(f"{stem}.docx", DOCX, len(data), data=data)

    def for_letter(self, letter: SendLetter, context: Mapping[str, Any]
                   ) -> tuple[SendLetter, str]:
        """``letter`` with its generated document among its files, and a remark for the
        timeline when the document could not be made (the letter then goes without it)."""
        name = self.document_for(letter.letter)
        if name is None:
            return letter, ""
        try:
            doc = self.build(name, letter.language, context)
        except Exception as e:  # noqa: BLE001 - never the letter's failure: noted instead
            log.warning("letter %s: document %s not generated: %s", letter.letter, name, e)
            en = letter.language == "en"
            return letter, (f"document {name} not generated: {e}" if en
                            else f"文档 {name} 未能生成：{e}")
        return replace(letter, files=(doc, *letter.files)), ""

    def problems(self, sample: Callable[[str], Mapping[str, Any]]) -> list[str]:
        """Each attached document rendered in every language with its letter's sample
        context (``sample(letter)``): what is broken, for ``config check`` and start-up."""
        out: list[str] = []
        for letter, name in LETTER_DOCUMENTS.items():
            if name not in self.attach:
                continue
            try:
                context = sample(letter)
            except Exception as e:  # noqa: BLE001 - reported as the problem it is
                out.append(f"document {name!r}: sample context of letter {letter!r}: {e}")
                continue
            for lang in LANGUAGES:
                try:
                    self.text(name, lang, {"number": "2026-客-001", **context})
                except DocumentError as e:
                    out.append(str(e))
                except Exception as e:  # noqa: BLE001 - a template failing on the sample
                    out.append(f"document template {name}.{lang}.j2: {type(e).__name__}: {e}")
        return out


def site_documents(cfg: Config, sample: Callable[[str], Mapping[str, Any]]) -> Documents:
    """The documents ``[documents]`` configures, checked; ConfigError when one is broken."""
    docs = documents_of(cfg)
    problems = docs.problems(sample)
    if problems:
        raise ConfigError("[documents]: " + "\n".join(problems))
    return docs


def documents_of(cfg: Config) -> Documents:
    """The documents ``[documents]`` configures, unchecked; ConfigError for a missing folder."""
    folder = cfg.path(cfg.documents.templates) if cfg.documents.templates else None
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"[documents] templates: {folder} is not a folder")
    return Documents(cfg.documents.attach, folder)


def document_problems(cfg: Config, sample: Callable[[str], Mapping[str, Any]]) -> list[str]:
    """What ``maild config check`` reports of ``[documents]``."""
    try:
        return [f"[documents]: {p}" for p in documents_of(cfg).problems(sample)]
    except ConfigError as e:
        return [str(e)]


# -- the DOCX ---------------------------------------------------------------------------------


#: python-docx (and lxml under it) is imported when a document is written, not by every
#: process that loads this module: a daemon that never sends one stays ~10 MB smaller
_THEME_FONTS = ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme")


def _fonts(doc: Any) -> None:
    """Every style's fonts, the defaults' too: SimSun for Latin text, 宋体 for East Asian, no
    theme fonts (which Word prefers over named ones, and whose default theme names no
    Chinese face, so WPS and Word would each pick their own)."""
    from docx.oxml.ns import qn

    for style in doc.styles:
        if getattr(style, "font", None) is not None:
            style.element.get_or_add_rPr().get_or_add_rFonts()
    for rfonts in doc.styles.element.iter(qn("w:rFonts")):
        for attr in _THEME_FONTS:
            rfonts.attrib.pop(qn(attr), None)
        rfonts.set(qn("w:ascii"), LATIN_FONT)
        rfonts.set(qn("w:hAnsi"), LATIN_FONT)
        rfonts.set(qn("w:eastAsia"), EAST_ASIAN_FONT)


_KEPT_TABLE_STYLES = {"TableNormal", "TableGrid"}


def _slim(doc: Any) -> None:
    """Parts the default template carries that a letter need not: the thumbnail of the
    template's first page, Word 2010's duplicate stylesWithEffects, and the forty table
    styles the document does not use (they are most of its size)."""
    from docx.oxml.ns import qn

    package = doc.part.package
    for rid, rel in list(package.rels.items()):
        if rel.reltype.endswith("/thumbnail"):
            package.rels.pop(rid)
    for rid, rel in list(doc.part.rels.items()):
        if rel.reltype.endswith("/stylesWithEffects"):
            doc.part.rels.pop(rid)
    styles = doc.styles.element
    for style in list(styles.iterchildren(qn("w:style"))):
        if style.get(qn("w:type")) == "table" and \
                style.get(qn("w:styleId")) not in _KEPT_TABLE_STYLES:
            styles.remove(style)


def docx_bytes(text: str, *, author: str = "") -> tuple[bytes, str]:
    """The DOCX made of a rendered document template, and its first ``#`` heading."""
    from docx import Document
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.shared import Pt

    text = _XML_UNSAFE.sub("\ufffd", text)  # what XML cannot hold (mail may carry it)
    doc = Document()
    _fonts(doc)
    doc.styles["Normal"].font.size = Pt(11)
    title = ""
    rows: list[tuple[str, str]] = []

    def flush() -> None:
        if not rows:
            return
        table = doc.add_table(rows=0, cols=2)
        table.style = doc.styles["Table Grid"]
        table.alignment = WD_TABLE_ALIGNMENT.CENTER
        for name, value in rows:
            cells = table.add_row().cells
            cells[0].text, cells[1].text = name, value
            for run in cells[0].paragraphs[0].runs:
                run.bold = True
        rows.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        heading = re.match(r"^(#{1,3})\s+(.*)$", line)
        if heading:
            flush()
            level = len(heading.group(1))
            title = title or heading.group(2).strip()
            doc.add_heading(heading.group(2).strip(), level=level)
            continue
        row = _ROW.match(line)
        if row:
            rows.append((row.group(1).strip(), row.group(2).strip()))
            continue
        flush()
        doc.add_paragraph(line)
    flush()
    _slim(doc)
    props = doc.core_properties
    props.title = title
    props.author = author or "maild"
    props.last_modified_by = author or "maild"
    props.comments = ""
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue(), title


__all__ = ["DOCX", "DocumentError", "Documents", "LETTER_DOCUMENTS", "document_problems",
           "docx_bytes", "site_documents"]
