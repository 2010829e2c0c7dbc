"""A fetched body as text: decoded with its declared charset, HTML turned into Markdown.

HTML goes through trafilatura: of inscriptis, trafilatura, html2text, markdownify and
selectolax, measured on two documentation pages, it kept the structure (headings, code blocks,
tables, links) and dropped the navigation, at 34-260 ms a page; inscriptis and selectolax were
faster but flattened code blocks and split inline code into lines, markdownify kept the menus
and was slowest, and html2text is GPL-licensed.
"""

from __future__ import annotations

import codecs
import functools
import re

_META = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
HTML_TYPES = ("text/html", "application/xhtml+xml")


def charset_of(data: bytes, declared: str | None, is_html: bool) -> str:
    """The header's charset, else a BOM, else an HTML meta tag, else UTF-8 when it decodes, else windows-1252."""
    for name in (declared, _bom(data), _meta(data) if is_html else None):
        if name and _known(name):
            return name
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # only a character cut by the byte limit
            return "utf-8"
    return "windows-1252"  # what browsers assume for unlabelled legacy pages


def decode(data: bytes, charset: str, complete: bool) -> str:
    """``data`` as text; a character cut at the end of an incomplete body is dropped, not garbled."""
    decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    return decoder.decode(data, final=complete)


def html_to_markdown(html: str) -> str:
    """Readable Markdown of an HTML page (the main content; the whole text when none is found)."""
    import trafilatura  # heavy: imported on the first HTML page, not at server start

    text = trafilatura.extract(html, output_format="markdown", include_links=True, include_tables=True,
                               favor_recall=True, config=_config())
    if not text:
        text = trafilatura.html2txt(html)
    return (text or "").strip()


@functools.cache
def _config():
    from trafilatura.settings import use_config

    config = use_config()
    for key in ("MIN_EXTRACTED_SIZE", "MIN_OUTPUT_SIZE"):
        config.set("DEFAULT", key, "1")  # a short page is still content, not a failure to fall back from
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")  # its timeout uses SIGALRM, which a worker thread cannot
    return config


def _bom(data: bytes) -> str | None:
    return next((name for bom, name in _BOMS if data.startswith(bom)), None)


def _meta(data: bytes) -> str | None:
    match = _META.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def _known(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True
