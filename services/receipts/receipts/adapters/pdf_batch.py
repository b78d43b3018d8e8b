"""Several bills printed as one Chromium document, then split into one PDF per bill (issue-time renders).

Chromium's cost per print is mostly fixed (loading a document, laying it out, starting a print job:
~60–90 ms of CPU for the whole process tree), so printing ten bills at once and splitting the result costs
far less per bill than ten prints (measured, see the README: about 3 × the bills per CPU-second).

- `page_parts` cuts a bill's page (`rendering._chromium_page`) into its head (the stylesheet; the
  `<title>` set aside, it names the bill) and its body; bills whose heads are identical share a document
  (`batch_document`): the head once, the bodies one after the other. Every `.sheet` after the first breaks
  the page (bill.css), so each bill keeps its two pages, front and back, exactly as printed alone.
- `split` cuts the printed document into one PDF per bill (pypdf): the bill's own two pages with what they
  reference (their content streams, the QR code image, the fonts), its own title, Chromium's producer and
  creator, and its issue time as the creation and modification dates (so the same snapshot in the same
  batch gives the same bytes). Nothing else of the document is copied: Chromium writes no structure tree,
  outline, names, annotations or links here (tagged PDF and outline are off, JavaScript is off), and pypdf
  copies a page's object graph without its /Parent.
- Each split is checked (`check_split`): exactly two pages, the bill's own account number on both, its
  amount on the front, no other account number of the batch in it. Any failure (and a document whose page
  count isn't 2 × the bills) is `BatchCheckFailed`: the caller prints that batch's bills one by one.

Shared within a batch, and so in every split of it: the font subsets (DejaVu Sans and Bold), with their
widths (/W) and ToUnicode maps. They hold the glyphs of every bill of the batch: a split reveals at most
which characters the other bills of its batch used (not their text, order or count); see the README.

The text of a page is read straight from its content streams through the fonts' ToUnicode maps
(`page_texts`): pypdf's `extract_text` takes ~50 ms per page, this ~1 ms.
"""

from __future__ import annotations

import html
import io
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receipts.adapters.chromium import pdf_date
from receipts.domain import formatting

PAGES_PER_BILL = 2
BATCH_TITLE = "Счета-квитанции"

_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_FONT_SELECTED = re.compile(rb"/([^\s/<>\[\]()]+)\s+[-+\d.]+\s+Tf\b")
_HEX_STRING = re.compile(rb"<([0-9A-Fa-f\s]*)>")
_DRAWS = re.compile(rb"\sDo\b")
_HEX = re.compile(rb"<([0-9A-Fa-f]+)>")
_BFCHAR = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
_BFRANGE = re.compile(rb"beginbfrange(.*?)endbfrange", re.S)
_RANGE_LINE = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])")
_WHITESPACE = re.compile(r"\s+")


class BatchCheckFailed(RuntimeError):
    """The printed batch did not split into the bills it was given: print them one by one instead."""


def available() -> bool:
    """Whether pypdf (the splitter) is installed here: without it, every bill is printed alone."""
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class BillPage:
    """One bill's part of a batch: its page's head without the title (bills with equal heads share a
    document), its title and body, and what its split must show."""

    head: str
    title: str
    body: str
    account_no: str
    amount: str  # as printed: '5 042,36'
    issued_at: datetime


def page_parts(page: str, snapshot: Mapping[str, Any]) -> BillPage:
    """Cut a bill's page (the template's output) into head, title and body. ValueError if it hasn't them."""
    start, end = page.find("<body>"), page.rfind("</body>")
    if start < 0 or end < start:
        raise ValueError("the bill's page has no <body>")
    head = page[:start]
    title = _TITLE.search(head)
    return BillPage(
        head=_TITLE.sub("", head, count=1),
        title=html.unescape(title.group(1)) if title else "",
        body=page[start + len("<body>") : end],
        account_no=str(snapshot["account_no"]),
        amount=formatting.number(snapshot["amount_due"]),
        issued_at=datetime.fromisoformat(str(snapshot["issued_at"])),
    )


def batch_document(bills: Sequence[BillPage]) -> str:
    """One document of the bills (all with the same head): the head once, then every bill's sheets."""
    head = bills[0].head
    if any(b.head != head for b in bills):
        raise ValueError("bills with different heads can't share a document")
    at = head.rfind("</head>")
    titled = head[:at] + f"<title>{BATCH_TITLE}</title>" + head[at:] if at >= 0 else head
    return titled + "<body>" + "".join(b.body for b in bills) + "</body></html>"


def split(pdf: bytes, bills: Sequence[BillPage]) -> list[bytes]:
    """The printed batch as one checked PDF per bill, in order. BatchCheckFailed if it doesn't split."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(pdf))
    if len(reader.pages) != PAGES_PER_BILL * len(bills):
        raise BatchCheckFailed(f"{len(reader.pages)} pages printed for {len(bills)} bills")
    info: Mapping[str, Any] = reader.metadata or {}
    accounts = {b.account_no for b in bills}
    cmaps: CMaps = {}  # the splits share the batch's fonts: their maps are parsed once
    out = []
    for k, bill in enumerate(bills):
        writer = PdfWriter()
        for page in reader.pages[PAGES_PER_BILL * k : PAGES_PER_BILL * (k + 1)]:
            writer.add_page(page)
        when = pdf_date(bill.issued_at)
        writer.add_metadata(
            {
                "/Title": bill.title,
                "/Creator": str(info.get("/Creator", "")),
                "/Producer": str(info.get("/Producer", "")),
                "/CreationDate": when,
                "/ModDate": when,
            }
        )
        preferences: Any = writer.create_viewer_preferences()
        preferences.display_doctitle = True  # as Chromium's own PDF says
        buffer = io.BytesIO()
        writer.write(buffer)
        data = buffer.getvalue()
        check_split(data, bill, accounts - {bill.account_no}, cmaps)
        out.append(data)
    return out


def check_split(pdf: bytes, bill: BillPage, others: set[str], cmaps: CMaps | None = None) -> None:
    """Two pages; the bill's account number on both, its amount on the front; no other bill's account
    number. Spaces are ignored (Chromium draws the no-break space of '5 042,36' as its own glyph).
    `cmaps`: ToUnicode maps already parsed (the splits of a batch share their fonts)."""
    texts = [_WHITESPACE.sub("", t) for t in page_texts(pdf, cmaps)]
    if len(texts) != PAGES_PER_BILL:
        raise BatchCheckFailed(f"a split has {len(texts)} pages")
    amount = _WHITESPACE.sub("", bill.amount)
    if not all(bill.account_no in t for t in texts) or amount not in texts[0]:
        raise BatchCheckFailed(f"the split of {bill.account_no} doesn't show its account number and amount")
    leaked = [no for no in others if any(no in t for t in texts)]
    if leaked:
        raise BatchCheckFailed(f"the split of {bill.account_no} shows another bill's account number")


# --- the text of a page, from its content streams and the fonts' ToUnicode maps --------------------------
CMaps = dict[bytes, dict[bytes, str]]  # a ToUnicode stream's data → its map (hex code → text)


def page_texts(pdf: bytes, cmaps: CMaps | None = None) -> list[str]:
    """Each page's text in drawing order (no spacing or layout: for checks, not for reading)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    cmaps = {} if cmaps is None else cmaps
    return [
        _text_of(_stream_data(page.get("/Contents")), page.get("/Resources"), cmaps, 0)
        for page in reader.pages
    ]


def _stream_data(contents: Any) -> bytes:
    """A page's content stream(s), decoded (not parsed into operations: pypdf's `get_contents` does that,
    slowly)."""
    if contents is None:
        return b""
    contents = contents.get_object()
    if isinstance(contents, list):
        return b"\n".join(_stream_data(part) for part in contents)
    data: bytes = contents.get_data()
    return data


def _text_of(data: bytes, resources: Any, cmaps: CMaps, depth: int) -> str:
    """The text shown by a content stream: its hex strings (Chromium shows every glyph as one), mapped by the
    font selected before them; then the text of the form XObjects it draws (if any; Chromium uses none for
    the bill)."""
    if depth > 4:
        return ""
    resources = resources.get_object() if resources is not None else {}
    fonts = resources.get("/Font", {})
    parts: list[str] = []
    pieces = _FONT_SELECTED.split(data)  # [before, font name, after, font name, after, ...]
    cmap: dict[bytes, str] = {}
    width = 2
    selected: dict[bytes, tuple[dict[bytes, str], int]] = {}
    for k, piece in enumerate(pieces):
        if k % 2:
            if piece not in selected:
                ref = fonts.get("/" + piece.decode("latin-1"))
                selected[piece] = _cmap(ref, cmaps) if ref is not None else ({}, 2)
            cmap, width = selected[piece]
            continue
        codes = b"".join(_HEX_STRING.findall(piece)).translate(None, b" \t\r\n").upper()
        size = 2 * width
        parts.append("".join([cmap.get(codes[i : i + size], "") for i in range(0, len(codes), size)]))
    for ref in resources.get("/XObject", {}).values():
        form = ref.get_object()
        if form.get("/Subtype") == "/Form" and _DRAWS.search(data):
            parts.append(_text_of(form.get_data(), form.get("/Resources", resources), cmaps, depth + 1))
    return "".join(parts)


def _cmap(ref: Any, cache: CMaps) -> tuple[dict[bytes, str], int]:
    """A font's ToUnicode map: hex code (upper case) → text; and its code width in bytes."""
    font = ref.get_object()
    to_unicode = font.get("/ToUnicode")
    key: bytes = to_unicode.get_object().get_data() if to_unicode is not None else b""
    if key not in cache:
        mapping: dict[bytes, str] = {}
        if key:
            data = key
            for block in _BFCHAR.findall(data):
                hexes = _HEX.findall(block)
                for src, dst in zip(hexes[::2], hexes[1::2], strict=False):
                    mapping[src.upper()] = _utf16(dst)
            for block in _BFRANGE.findall(data):
                for lo, hi, dst in _RANGE_LINE.findall(block):
                    low, high, size = int(lo, 16), int(hi, 16), len(lo)
                    if dst.startswith(b"["):
                        targets = [_utf16(h) for h in _HEX.findall(dst)]
                    else:
                        first = int(dst[1:-1], 16)
                        targets = [
                            chr(first + i) if first + i < 0x110000 else "" for i in range(high - low + 1)
                        ]
                    for i, text in enumerate(targets[: high - low + 1]):
                        mapping[f"{low + i:0{size}X}".encode()] = text
        cache[key] = mapping
    width = 2 if font.get("/Subtype") == "/Type0" else 1
    return cache[key], width


def _utf16(hexdigits: bytes) -> str:
    try:
        return bytes.fromhex(hexdigits.decode()).decode("utf-16-be")
    except (ValueError, UnicodeDecodeError):
        return ""


def decompressed_streams(pdf: bytes) -> list[bytes]:
    """Every stream of a PDF, decompressed where it is Flate-compressed (for privacy checks)."""
    out = []
    for match in re.finditer(rb"(?<!end)stream\r?\n", pdf):
        start = match.end()
        end = pdf.find(b"endstream", start)
        if end < 0:
            continue
        raw = pdf[start:end].rstrip(b"\r\n")
        try:
            out.append(zlib.decompress(raw))
        except zlib.error:
            out.append(raw)
    return out
