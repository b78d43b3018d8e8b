"""Benchmarks of the receipts service (not part of the test run's pass/fail).

    uv run python -m tests.benchmarks.bench_receipts [--renders N] [--bills N] [--workers 1,2] [--requests N]
                                                     [--cpu K] [--skip-download] [--skip-rendering]
    uv run python -m tests.benchmarks.bench_receipts --billing-run N [--batch 500] [--profile]

1. Two-page PDF bills rendered per CPU-second on one core (the process is pinned to one CPU), each bill
   different (account number, amounts, so nothing is cached between renders), with a ratio to a baseline
   measured in the same run: WeasyPrint rendering a trivial one-page PDF. Target (issue 7): ≥ 20 PDFs/s.
   - «before → after»: the template set and engine as first shipped (kept below, verbatim, as
     BEFORE_TEMPLATES), then each optimisation added in turn, the last row being the shipped
     `rendering.render_pdf`. The steps are measured in interleaved rounds, so the machine's noise hits
     them alike.
   - where the time of the shipped render goes (cProfile shares of WeasyPrint's phases), and the floor:
     the same bill's text lines alone, as plain paragraphs, through the same fast path.
   - an alternative, `render_direct_pdf` below (pydyf, fixed layout in code: a second layout, which the
     issue's "one template" rules out; kept as the measured bound of what dropping WeasyPrint would give).
1b. Chromium's print-to-PDF of the same page (`rendering.render_html`, stylesheet inlined), the production
   engine: Debian's chromium driven by Playwright (never a downloaded browser), one browser kept alive:
   Playwright's `set_content` + `page.pdf` on one reused page, CDP `Page.setDocumentContent` +
   `Page.printToPDF`, 2 and 4 pages in flight, the shipped `ChromiumPdf` engine, and the shipped batch path
   (`rendering.render_batch`: n = 1, 5, 10, 20 bills printed as one document, split per bill with pypdf and
   checked; n = 1 is `render_pdf`, the same-run baseline of batching); WeasyPrint's shipped fast path in the
   same interleaved rounds as the baseline. Also the cost of splitting and checking alone, per bill. Everything pinned to the one CPU (children
   inherit the affinity; checked), CPU = the whole process tree (Python, node driver, every Chromium
   process), WeasyPrint's = its own process. Pages are blanked between batches (an open bill page keeps
   Chromium's renderer busy), and the idle cost of the two browsers is printed.
2. The issue-time render pipeline: bills queued in `pdf_renders` of a throwaway database, rendered and
   stored by the worker's `PdfRenderer` with N render processes (the process is unpinned for this: both
   cores), bills per wall-second and per CPU-second (parent and render processes), with a ratio to the same
   pipeline rendering the trivial PDF (so the ratio is the bill's cost, the queue's overhead cancelling).
3. The download latency of an already-rendered PDF through the internal API: uvicorn serving the real
   app on a local port (a thread of this process, so it shares the pinned core), sequential
   authenticated GETs of `/internal/v1/accounts/{no}/receipts/{period}.pdf` via httpx, p50/p95, with a
   ratio to a baseline served by the same server: a route returning a static byte string of the same
   size. Target: p95 < 150 ms.
   In section 2 the pipeline runs with each engine: WeasyPrint («bills») and Chromium (the render
   processes' CPU includes their drivers and browsers), Chromium one bill at a time and in batches of the
   default `RECEIPTS_PDF_BATCH`.

4. (`--billing-run N`, alone) Receipts' share of a monthly billing run, in-process on a fresh database: N
   new accounts' events through the projections' `apply_batch` as the consumers apply them (the
   calculator's ChargeCalculated and PeriodBilled, then the ledger's AccrualPosted, whose batches issue the
   bills), the CPU per account of this process and of the database's backends, and cProfile's top
   entries with `--profile`.

The machine is shared and noisy: CPU-seconds rates and ratios mean more than absolute wall times.
Needs the local stack's PostgreSQL (throwaway databases are created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import dataclasses
import datetime as dt
import functools
import io
import json
import os
import pstats
import statistics
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any
from xml.etree import ElementTree

import httpx
import jwt
import orjson
import psutil
import psycopg
import pydyf  # type: ignore[import-untyped]
import pypdf
import segno
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Response
from fontTools import subset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from weasyprint import CSS, HTML  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

from contracts.events import accounts as acc
from contracts.events import calculator as calc
from contracts.events import ledger as led
from contracts.registry import registry
from receipts.adapters import pdf_batch, rendering
from receipts.adapters.pdf_renderer import PdfRenderer
from receipts.adapters.pdfs import pdf_for
from receipts.adapters.projections import AccountsProjection, CalculatorProjection, LedgerProjection
from receipts.adapters.rendering import render_pdf, weasyprint_pdf
from receipts.api import create_app
from receipts.domain import formatting
from receipts.domain.bill import build_snapshot, content_hash
from receipts.domain.examples import example_facts
from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings
from service_runtime.auth import TokenVerifier
from service_runtime.consumers import CanonicalEvent
from service_runtime.db import Connection, open_pool
from service_runtime.eventstore import EventStore
from service_runtime.migrations import migrate_to_head
from tests.support.messages import canonical_envelope
from tests.support.stack import load_stack_env

# ---------------------------------------------------------------------------------------------------------
# The measured alternative: the same snapshot written straight into PDF operators with pydyf (WeasyPrint's
# own, well-kept PDF writer, installed with it) at fixed positions: no HTML, no CSS cascade, no general
# layout engine. DejaVu Sans / Bold are embedded once per process as a subset (Latin, Cyrillic incl.
# Kazakh, punctuation, ₸ №) keeping the original glyph ids, with their widths and a ToUnicode map (so the
# text extracts); lines wrap greedily by those widths; tables are ruled cells; the QR code is filled
# rectangles. What it gives up against the template: the stylesheet shared with the portal's HTML view
# (its layout is code), colspans, hyphenation, kerning, shaping beyond one glyph per character (fine for
# Russian and Kazakh). Benchmark only: the service renders with WeasyPrint.
# ---------------------------------------------------------------------------------------------------------
A4 = (595.28, 841.89)
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 31.2, 28.3, 28.3
FONTS = {
    "F1": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "F2": "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
}
CHARSET = (
    [chr(c) for c in range(0x20, 0x7F)]
    + [chr(c) for c in range(0xA0, 0x100)]
    + [chr(c) for c in range(0x400, 0x500)]
    + list("–—‘’“”„«»№₸·…•−‑\u202f")
)


class _Raw(pydyf.Object):  # type: ignore[misc]
    """An object whose serialized body is computed once per process and reused in every PDF."""

    def __init__(self, data: bytes, compressible: bool = False) -> None:
        super().__init__()
        self._data = data
        self._compressible = compressible

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def compressible(self) -> bool:
        return self._compressible


@dataclass(frozen=True)
class _Font:
    key: str
    gid: dict[str, int]
    advance: dict[str, float]  # per 1000 units of em
    ascent: float

    def width(self, text: str, size: float) -> float:
        adv = self.advance
        return sum(adv.get(ch, 600.0) for ch in text) * size / 1000

    def encode(self, text: str) -> bytes:
        gid = self.gid
        return b"<" + "".join(f"{gid.get(ch, 0):04x}" for ch in text).encode() + b">"


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple[dict[str, _Font], list[bytes]]:
    """The two fonts' metrics, and the serialized bodies of their PDF objects (numbers 3, 4, ...)."""
    fonts: dict[str, _Font] = {}
    bodies: list[bytes] = []
    number = 3  # pydyf.PDF() takes 0 (free), 1 (pages) and 2 (catalog)
    for key, path in FONTS.items():
        font = TTFont(path)
        cmap = font.getBestCmap()
        order = {name: i for i, name in enumerate(font.getGlyphOrder())}
        scale = 1000 / font["head"].unitsPerEm
        hmtx = font["hmtx"]
        gid = {ch: order[cmap[ord(ch)]] for ch in CHARSET if ord(ch) in cmap}
        advance = {ch: hmtx[cmap[ord(ch)]][0] * scale for ch in gid}
        options = subset.Options()
        options.retain_gids = True
        options.notdef_outline = True
        options.layout_features = []
        options.hinting = False
        options.drop_tables = [*options.drop_tables, "FFTM"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[ord(ch) for ch in gid])
        subsetter.subset(font)
        buffer = io.BytesIO()
        font.save(buffer)
        raw = buffer.getvalue()
        fontfile = zlib.compress(raw, 9)
        base = f"/AAAAA{'A' if key == 'F1' else 'B'}+{'DejaVuSans' if key == 'F1' else 'DejaVuSans-Bold'}"
        widths = " ".join(f"{g} [{round(advance[ch])}]" for ch, g in sorted(gid.items(), key=lambda x: x[1]))
        cmap_entries = sorted({g: ch for ch, g in gid.items()}.items())
        chunks = [cmap_entries[i : i + 100] for i in range(0, len(cmap_entries), 100)]
        tounicode = (
            "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CIDSystemInfo << /Registry (Adobe)"
            " /Ordering (UCS) /Supplement 0 >> def /CMapName /Adobe-Identity-UCS def /CMapType 2 def"
            " 1 begincodespacerange <0000> <ffff> endcodespacerange\n"
            + "".join(
                f"{len(c)} beginbfchar\n"
                + "".join(f"<{g:04x}> <{ord(ch):04x}>\n" for g, ch in c)
                + "endbfchar\n"
                for c in chunks
            )
            + "endcmap CMapName currentdict /CMap defineresource pop end end"
        ).encode()
        tu = zlib.compress(tounicode, 9)
        n_file, n_desc, n_cid, n_tu, _ = range(number, number + 5)
        number += 5
        ascent = font["hhea"].ascent * scale
        descent = font["hhea"].descent * scale
        bodies += [
            b"<< /Filter /FlateDecode /Length %d /Length1 %d >>\nstream\n" % (len(fontfile), len(raw))
            + fontfile
            + b"\nendstream",
            (
                f"<< /Type /FontDescriptor /FontName {base} /Flags 32 /FontBBox [-1021 -463 1793 1232]"
                f" /ItalicAngle 0 /Ascent {ascent:.0f} /Descent {descent:.0f} /CapHeight 729 /StemV 80"
                f" /FontFile2 {n_file} 0 R >>"
            ).encode(),
            (
                f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont {base} /CIDSystemInfo << /Registry (Adobe)"
                f" /Ordering (Identity) /Supplement 0 >> /FontDescriptor {n_desc} 0 R /W [{widths}]"
                " /CIDToGIDMap /Identity >>"
            ).encode(),
            b"<< /Filter /FlateDecode /Length %d >>\nstream\n" % len(tu) + tu + b"\nendstream",
            (
                f"<< /Type /Font /Subtype /Type0 /BaseFont {base} /Encoding /Identity-H"
                f" /DescendantFonts [{n_cid} 0 R] /ToUnicode {n_tu} 0 R >>"
            ).encode(),
        ]
        fonts[key] = _Font(key, gid, advance, ascent)
    return fonts, bodies


class _Page:
    def __init__(self, fonts: dict[str, _Font]) -> None:
        self.ops: list[bytes] = [b"0.5 w"]
        self.fonts = fonts
        self.y = A4[1] - MARGIN_TOP
        self.width = A4[0] - 2 * MARGIN_X

    # --- primitives -----------------------------------------------------------------------------------
    def text(
        self, x: float, y: float, s: str, size: float = 8.2, bold: bool = False, gray: float = 0.07
    ) -> None:
        if not s:
            return
        font = self.fonts["F2" if bold else "F1"]
        self.ops.append(b"%.3f g BT /%s %.2f Tf %.2f %.2f Td %s Tj ET" % (gray, font.key.encode(), size, x, y,
                                                                           font.encode(s)))  # fmt: skip

    def right(self, x_right: float, y: float, s: str, size: float = 8.2, bold: bool = False) -> None:
        font = self.fonts["F2" if bold else "F1"]
        self.text(x_right - font.width(s, size), y, s, size, bold)

    def wrap(self, s: str, width: float, size: float = 8.2, bold: bool = False) -> list[str]:
        font = self.fonts["F2" if bold else "F1"]
        lines: list[str] = []
        current = ""
        for word in s.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and font.width(candidate, size) > width:
                lines.append(current)
                current = word
            else:
                current = candidate
        if current:
            lines.append(current)
        return lines or [""]

    def para(
        self, s: str, size: float = 8.2, bold: bool = False, indent: float = 0, gray: float = 0.07
    ) -> None:
        for line in self.wrap(s, self.width - indent, size, bold):
            self.y -= size * 1.28
            self.text(MARGIN_X + indent, self.y, line, size, bold, gray)
        self.y -= 1.5

    def rect(self, x: float, y: float, w: float, h: float, fill: float | None = None) -> None:
        if fill is not None:
            self.ops.append(b"%.3f g %.2f %.2f %.2f %.2f re f 0 g" % (fill, x, y, w, h))
        self.ops.append(b"%.2f %.2f %.2f %.2f re S" % (x, y, w, h))

    def heading(self, s: str, size: float = 9.5) -> None:
        self.y -= 8.5 + size
        self.text(MARGIN_X, self.y, s, size, bold=True)
        self.y -= 2.5
        self.ops.append(
            b"0.6 w %.2f %.2f m %.2f %.2f l S 0.5 w" % (MARGIN_X, self.y, MARGIN_X + self.width, self.y)
        )

    def table(
        self,
        widths: Sequence[float],
        rows: Sequence[Sequence[str]],
        *,
        header: bool = True,
        numeric: Sequence[int] = (),
        bold_last: bool = False,
        size: float = 8.2,
    ) -> None:
        """Ruled cells; `widths` are fractions of the text width; cells wrap; numeric columns align right."""
        cols = [w * self.width for w in widths]
        self.y -= 2
        for r, row in enumerate(rows):
            is_header = header and r == 0
            bold = is_header or (bold_last and r == len(rows) - 1)
            fsize = 7.6 if is_header else size
            wrapped = [self.wrap(cell, cols[i] - 6.8, fsize, bold) for i, cell in enumerate(row)]
            height = max(len(w) for w in wrapped) * fsize * 1.28 + 3.4
            x = MARGIN_X
            self.y -= height
            for i, lines in enumerate(wrapped):
                self.rect(x, self.y, cols[i], height, fill=0.93 if is_header else None)
                for k, line in enumerate(lines):
                    baseline = self.y + height - 1.7 - (k + 1) * fsize * 1.28 + fsize * 0.28
                    if i in numeric:
                        self.right(x + cols[i] - 3.4, baseline, line, fsize, bold)
                    else:
                        self.text(x + 3.4, baseline, line, fsize, bold)
                x += cols[i]

    def qr(self, payload: str, x: float, y: float, size: float) -> None:
        matrix = segno.make(payload, error="m", encoding="utf-8", micro=False).matrix
        n = len(matrix)
        cell = size / n
        parts = [b"0 g"]
        for r, row in enumerate(matrix):
            c = 0
            while c < n:
                if row[c]:
                    start = c
                    while c < n and row[c]:
                        c += 1
                    parts.append(b"%.3f %.3f %.3f %.3f re" % (x + start * cell, y + (n - 1 - r) * cell,
                                                              (c - start) * cell, cell))  # fmt: skip
                else:
                    c += 1
        parts.append(b"f")
        self.ops.append(b" ".join(parts))


def _n(value: Any) -> str:
    return formatting.number(value)


def _front(page: _Page, bill: Mapping[str, Any]) -> None:
    f = bill["front"]
    s, a, m = f["supplier"], f["account"], f["money"]
    top = page.y
    page.text(MARGIN_X, top - 9, s["name"], 8.2, bold=True)
    for i, line in enumerate(
        page.wrap(
            f"{s['address']} · БИН {s['bin']} · {s['phone']} · {s['email']} · {s['website']} · {s['bank']},"
            f" ИИК {s['iban']}, БИК {s['bic']}",
            page.width * 0.55,
            7.4,
        )
    ):
        page.text(MARGIN_X, top - 19 - i * 9.5, line, 7.4, gray=0.33)
    right = MARGIN_X + page.width
    page.right(right, top - 13, "СЧЁТ-КВИТАНЦИЯ", 13, bold=True)
    page.right(right, top - 25, f"за {bill['period_label']} г.")
    page.right(right, top - 36, f"Лицевой счёт {a['account_no']}", bold=True)
    page.right(right, top - 47, f"Оплатить до {formatting.ru_date(bill['due_date'])}", bold=True)
    page.y = top - 52
    page.heading("Потребитель")
    residents = f"{a['residents']}" + ("; электроплита" if a["electric_stove"] else "")
    for label, value in (("Лицевой счёт", a["account_no"]), ("Плательщик", a["payer_name"]), ("Адрес", a["address"]),
                         ("Проживающих", residents), ("Тариф", a["tariff_option_label"])):  # fmt: skip
        page.y -= 10.5
        page.text(MARGIN_X + 3.4, page.y, label, gray=0.27)
        page.text(MARGIN_X + page.width * 0.24, page.y, value, bold=label == "Лицевой счёт")
    meter = f["meter"]

    def point(p: Mapping[str, str] | None) -> str:
        return f"{_n(p['value'])} от {formatting.ru_date(p['date'])}" if p else "—"

    page.heading("Прибор учёта и показания")
    page.table(
        [0.22, 0.28, 0.28, 0.22],
        [["Счётчик №", "Предыдущие показания", "Текущие показания", "Расход, кВт·ч"],
         [meter["serial"] or "—", point(meter["previous"]), point(meter["current"]), _n(meter["consumption_kwh"])]],
        numeric=[3],
    )  # fmt: skip
    page.heading("Расчёт начисления по счётчику")
    rows = [["Период", "Ступень", "Норма до, кВт·ч", "кВт·ч", "Тариф, ₸/кВт·ч", "Сумма, ₸"]]
    for c in f["charges"]:
        for ln in c["lines"]:
            rows.append([f"{formatting.ru_date(ln['from'])}–{formatting.ru_date(ln['to'])}", ln["tier_label"],
                         _n(ln["limit_kwh"]) if ln["limit_kwh"] else "—", _n(ln["kwh"]), _n(ln["rate"]),
                         _n(ln["amount"])])  # fmt: skip
        rows.append([f"Итого без НДС; НДС {_n(c['vat'])}", "", "", "", "", _n(c["total"])])
    page.table([0.22, 0.18, 0.14, 0.14, 0.14, 0.18], rows, numeric=[2, 3, 4, 5])
    page.heading("Расчёты за период")
    page.table(
        [0.2] * 5,
        [["Сальдо на начало", "Начислено", "Корректировки", "Оплачено", "Сальдо на конец"],
         [_n(m["opening_balance"]), _n(m["accrued"]), _n(m["corrections"]), _n(m["paid"]), _n(m["closing_balance"])]],
        numeric=[0, 1, 2, 3, 4],
    )  # fmt: skip
    if f["payments"]:
        page.para("Платежи в периоде: " + "; ".join(
            f"{formatting.ru_date(p['date'])} — {_n(p['amount'])} ₸ ({p['bank']})" for p in f["payments"]),
            7.4, gray=0.33)  # fmt: skip
    if f["corrections"]:
        page.para("Корректировки: " + "; ".join(f"{c['reason']} — {_n(c['amount'])} ₸" for c in f["corrections"]),
                  7.4, gray=0.33)  # fmt: skip
    box = 93.0
    page.y -= box + 8
    page.ops.append(b"1.2 w")
    page.rect(MARGIN_X, page.y, page.width, box)
    page.ops.append(b"0.5 w")
    page.text(MARGIN_X + 6, page.y + box - 16, f"К оплате до {formatting.ru_date(bill['due_date'])}:")
    page.text(MARGIN_X + 6, page.y + box - 36, f"{_n(bill['amount_due'])} ₸", 15, bold=True)
    if bill["overpayment"] != "0.00":
        page.text(MARGIN_X + 6, page.y + box - 50, f"Переплата: {_n(bill['overpayment'])} ₸ — будет учтена"
                  " в следующих начислениях.")  # fmt: skip
    for i, line in enumerate(page.wrap(f"Лицевой счёт {a['account_no']}. Отсканируйте QR-код в приложении банка:"
                                       " номер счёта и сумма заполнятся сами.", page.width - 110, 7.4)):  # fmt: skip
        page.text(MARGIN_X + 6, page.y + box - 64 - i * 9.5, line, 7.4, gray=0.33)
    page.qr(f["qr"]["payload"], MARGIN_X + page.width - 88, page.y + 6, 82)


def _back(page: _Page, bill: Mapping[str, Any]) -> None:
    b = bill["back"]
    page.y -= 13
    page.text(MARGIN_X, page.y, "ОБОРОТНАЯ СТОРОНА СЧЁТА", 13, bold=True)
    page.para(f"Лицевой счёт {bill['account_no']}, период {bill['period_label']} г.")
    page.heading("Тарифы на электроэнергию (без НДС), ₸/кВт·ч")
    page.table(
        [0.2] * 5,
        [["Действует с", "Единый", "I ступень", "II ступень", "III ступень"]]
        + [[formatting.ru_date(t["effective_from"]), _n(t["flat"]), _n(t["tier1"]), _n(t["tier2"]), _n(t["tier3"])]
           for t in b["tariffs"]],
        numeric=[1, 2, 3, 4],
    )  # fmt: skip
    page.para("НДС: " + "; ".join(f"{formatting.percent(v['rate'])} с {formatting.ru_date(v['effective_from'])}"
                                  for v in b["vat_rates"]), 7.4, gray=0.33)  # fmt: skip
    page.heading("Нормы потребления по ступеням, кВт·ч на одного проживающего в месяц")
    page.table(
        [0.55, 0.15, 0.15, 0.15],
        [["Категория", "I ступень до", "II ступень до", "III ступень"]]
        + [[n["label"], _n(n["tier1_kwh"]), _n(n["tier2_kwh"]), "свыше"] for n in b["norms"]],
        numeric=[1, 2, 3],
    )
    if b["your_limits"]:
        lim = b["your_limits"]
        page.para(f"Для вашего счёта ({lim['residents']} прож.) за месяц: I ступень — до {_n(lim['tier1_kwh'])} кВт·ч,"
                  f" II ступень — до {_n(lim['tier2_kwh'])} кВт·ч, III ступень — свыше.")  # fmt: skip
    page.heading("Как работают ступени")
    for p in b["tiers_explained"]:
        page.para(p)
    page.heading("Задолженность по услугам на конец периода")
    page.table(
        [0.55, 0.22, 0.23],
        [["Услуга", "Долг, ₸", "Переплата, ₸"]]
        + [[d["service_name"], _n(d["debt"]), _n(d["overpayment"])] for d in b["debts"]]
        + [["Итого задолженность", _n(b["total_debt"]), ""]],
        numeric=[1, 2],
        bold_last=True,
    )
    page.heading("Где и как оплатить")
    for p in b["how_to_pay"]:
        page.para(f"• {p}", indent=4)
    page.heading("Ваше районное отделение (РОЭС) и Контакт-центр")
    o, cc = b["district_office"], b["contact_center"]
    left = [o["name"] or f"Отделение {o['code']}", o["address"] or "", f"Тел.: {o['phone']}" if o["phone"] else "",
            o["hours"] or ""]  # fmt: skip
    right = ["Контакт-центр", f"Тел.: {cc.get('phone', '')}", cc.get("email", ""), cc.get("hours", "")]
    for i, (lt, rt) in enumerate(zip(left, right, strict=True)):
        page.y -= 10.5
        page.text(MARGIN_X + 3.4, page.y, lt, bold=i == 0)
        page.text(MARGIN_X + page.width / 2, page.y, rt, bold=i == 0)
    page.heading("Объявления")
    for p in b["notices"]:
        page.para(f"• {p}", indent=4)
    page.para(f"Квитанция сформирована {formatting.ru_datetime(bill['issued_at'])} (Алматы). № {bill['receipt_id']}",
              7.4, gray=0.33)  # fmt: skip


def render_direct_pdf(bill: Mapping[str, Any]) -> bytes:
    fonts, bodies = _fonts()
    pdf = pydyf.PDF()
    for body in bodies:
        pdf.add_object(_Raw(body))
    font_refs = pydyf.Dictionary({"F1": b"7 0 R", "F2": b"12 0 R"})  # each font's Type0 object (see _fonts)
    resources = pydyf.Dictionary({"Font": font_refs})
    pdf.add_object(resources)
    for draw in (_front, _back):
        page = _Page(fonts)
        draw(page, bill)
        content = pydyf.Stream([b"\n".join(page.ops)], compress=True)
        pdf.add_object(content)
        pdf.add_page(pydyf.Dictionary({
            "Type": "/Page", "Parent": pdf.pages.reference, "MediaBox": pydyf.Array([0, 0, *A4]),
            "Contents": content.reference, "Resources": resources.reference,
        }))  # fmt: skip
    out = io.BytesIO()
    pdf.write(out, version=b"1.7", compress=True)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# «Before»: the template set as first shipped (TEMPLATE_VERSION 1), rendered as it was: WeasyPrint's HTML5
# parser and user-agent stylesheet, the stylesheet and FontConfiguration reused, a 4-px-per-module PNG QR
# code with segno's best mask, the garbage collector running.
# ---------------------------------------------------------------------------------------------------------
BEFORE_TEMPLATES = {
    "bill.html.j2": """\
<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>Счёт-квитанция {{ bill.account_no }} за {{ bill.period_label }}</title>
{% if inline_css %}<style>{{ inline_css }}</style>{% endif %}
</head>
<body>
{% for side in sides %}
<section class="sheet sheet-{{ side }}">
{% if side == "front" %}{% include "front.html.j2" %}{% else %}{% include "back.html.j2" %}{% endif %}
</section>
{% endfor %}
</body>
</html>
""",
    "front.html.j2": """\
{% set f = bill.front %}{% set s = f.supplier %}{% set a = f.account %}{% set m = f.money %}
<table class="head">
<colgroup><col style="width:55%"><col style="width:45%"></colgroup>
<tr>
<td><b>{{ s.name }}</b><br>
<span class="muted">{{ s.address }}<br>БИН {{ s.bin }} · {{ s.phone }} · {{ s.email }} · {{ s.website }}<br>
{{ s.bank }}, ИИК {{ s.iban }}, БИК {{ s.bic }}</span></td>
<td class="title"><h1>СЧЁТ-КВИТАНЦИЯ</h1>
за {{ bill.period_label }} г.<br>
Лицевой счёт <b>{{ a.account_no }}</b><br>
Оплатить до <b>{{ bill.due_date | ru_date }}</b></td>
</tr>
</table>

<h2>Потребитель</h2>
<table>
<colgroup><col style="width:24%"><col style="width:76%"></colgroup>
<tr><td class="label">Лицевой счёт</td><td><b>{{ a.account_no }}</b></td></tr>
<tr><td class="label">Плательщик</td><td>{{ a.payer_name }}</td></tr>
<tr><td class="label">Адрес</td><td>{{ a.address }}</td></tr>
<tr><td class="label">Проживающих</td><td>{{ a.residents }}{% if a.electric_stove %}; электроплита{% endif %}{% if a.living_alone %}; одиноко проживающий пенсионер/инвалид{% endif %}</td></tr>
<tr><td class="label">Тариф</td><td>{{ a.tariff_option_label }}</td></tr>
</table>

<h2>Прибор учёта и показания</h2>
<table class="grid">
<colgroup><col style="width:22%"><col style="width:28%"><col style="width:28%"><col style="width:22%"></colgroup>
<tr><th>Счётчик №</th><th>Предыдущие показания</th><th>Текущие показания</th><th class="num">Расход, кВт·ч</th></tr>
<tr>
<td>{{ f.meter.serial or "—" }}</td>
<td>{% if f.meter.previous %}{{ f.meter.previous.value | num }} от {{ f.meter.previous.date | ru_date }}{% else %}—{% endif %}</td>
<td>{% if f.meter.current %}{{ f.meter.current.value | num }} от {{ f.meter.current.date | ru_date }}{% else %}—{% endif %}</td>
<td class="num">{{ f.meter.consumption_kwh | num }}{% if f.meter.estimated %} (по среднему){% endif %}</td>
</tr>
</table>

<h2>Расчёт начисления по счётчику</h2>
<table class="grid">
<colgroup><col style="width:22%"><col style="width:18%"><col style="width:14%"><col style="width:14%"><col style="width:14%"><col style="width:18%"></colgroup>
<tr><th>Период</th><th>Ступень</th><th class="num">Норма до, кВт·ч</th><th class="num">кВт·ч</th><th class="num">Тариф, ₸/кВт·ч</th><th class="num">Сумма, ₸</th></tr>
{% for c in f.charges %}{% for l in c.lines %}
<tr><td>{{ l.from | ru_date }}–{{ l.to | ru_date }}</td><td>{{ l.tier_label }}</td><td class="num">{{ l.limit_kwh | num if l.limit_kwh else "—" }}</td><td class="num">{{ l.kwh | num }}</td><td class="num">{{ l.rate | num }}</td><td class="num">{{ l.amount | num }}</td></tr>
{% endfor %}
<tr><td colspan="5">{% if c.estimated %}Начислено по среднему потреблению{% else %}Итого без НДС{% endif %}; НДС {{ c.vat | num }}</td><td class="num">{{ c.total | num }}</td></tr>
{% else %}
<tr><td colspan="6">Начислений за период нет</td></tr>
{% endfor %}
</table>

<h2>Расчёты за период</h2>
<table class="grid">
<colgroup><col style="width:20%"><col style="width:20%"><col style="width:20%"><col style="width:20%"><col style="width:20%"></colgroup>
<tr><th class="num">Сальдо на начало</th><th class="num">Начислено</th><th class="num">Корректировки</th><th class="num">Оплачено</th><th class="num">Сальдо на конец</th></tr>
<tr><td class="num">{{ m.opening_balance | num }}</td><td class="num">{{ m.accrued | num }}</td><td class="num">{{ m.corrections | num }}</td><td class="num">{{ m.paid | num }}</td><td class="num">{{ m.closing_balance | num }}</td></tr>
</table>
{% if f.payments %}<p class="muted">Платежи в периоде: {% for p in f.payments %}{{ p.date | ru_date }} — {{ p.amount | num }} ₸ ({{ p.bank }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% if f.corrections %}<p class="muted">Корректировки: {% for c in f.corrections %}{{ c.reason }} — {{ c.amount | num }} ₸{% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}

<table class="due">
<colgroup><col><col style="width:33mm"></colgroup>
<tr>
<td>К оплате до {{ bill.due_date | ru_date }}:<br><span class="sum">{{ bill.amount_due | num }} ₸</span>
{% if bill.overpayment != "0.00" %}<br>Переплата: <b>{{ bill.overpayment | num }} ₸</b> — будет учтена в следующих начислениях.{% endif %}
<br><span class="muted">Лицевой счёт {{ a.account_no }}. Отсканируйте QR-код в приложении банка: номер счёта и сумма заполнятся сами.</span></td>
<td class="qr"><img src="{{ qr_src }}" alt="QR-код для оплаты"></td>
</tr>
</table>
""",
    "back.html.j2": """\
{% set b = bill.back %}{% set o = b.district_office %}{% set cc = b.contact_center %}
<h1>ОБОРОТНАЯ СТОРОНА СЧЁТА</h1>
<p>Лицевой счёт <b>{{ bill.account_no }}</b>, период {{ bill.period_label }} г.</p>

<h2>Тарифы на электроэнергию (без НДС), ₸/кВт·ч</h2>
<table class="grid">
<colgroup><col style="width:20%"><col style="width:20%"><col style="width:20%"><col style="width:20%"><col style="width:20%"></colgroup>
<tr><th>Действует с</th><th class="num">Единый</th><th class="num">I ступень</th><th class="num">II ступень</th><th class="num">III ступень</th></tr>
{% for t in b.tariffs %}<tr><td>{{ t.effective_from | ru_date }}</td><td class="num">{{ t.flat | num }}</td><td class="num">{{ t.tier1 | num }}</td><td class="num">{{ t.tier2 | num }}</td><td class="num">{{ t.tier3 | num }}</td></tr>
{% else %}<tr><td colspan="5">—</td></tr>{% endfor %}
</table>
<p class="muted">НДС: {% for v in b.vat_rates %}{{ v.rate | percent }} с {{ v.effective_from | ru_date }}{% if not loop.last %}; {% endif %}{% else %}—{% endfor %}</p>

<h2>Нормы потребления по ступеням, кВт·ч на одного проживающего в месяц</h2>
<table class="grid">
<colgroup><col style="width:55%"><col style="width:15%"><col style="width:15%"><col style="width:15%"></colgroup>
<tr><th>Категория</th><th class="num">I ступень до</th><th class="num">II ступень до</th><th class="num">III ступень</th></tr>
{% for n in b.norms %}<tr><td>{{ n.label }}</td><td class="num">{{ n.tier1_kwh | num }}</td><td class="num">{{ n.tier2_kwh | num }}</td><td class="num">свыше</td></tr>
{% else %}<tr><td colspan="4">—</td></tr>{% endfor %}
</table>
{% if b.your_limits %}<p>Для вашего счёта ({{ b.your_limits.residents }} прож.) за месяц: I ступень — до {{ b.your_limits.tier1_kwh | num }} кВт·ч, II ступень — до {{ b.your_limits.tier2_kwh | num }} кВт·ч, III ступень — свыше.</p>{% endif %}

<h2>Как работают ступени</h2>
{% for p in b.tiers_explained %}<p>{{ p }}</p>{% endfor %}

<h2>Задолженность по услугам на конец периода</h2>
<table class="grid">
<colgroup><col style="width:55%"><col style="width:22%"><col style="width:23%"></colgroup>
<tr><th>Услуга</th><th class="num">Долг, ₸</th><th class="num">Переплата, ₸</th></tr>
{% for d in b.debts %}<tr><td>{{ d.service_name }}</td><td class="num">{{ d.debt | num }}</td><td class="num">{{ d.overpayment | num }}</td></tr>{% endfor %}
<tr class="total"><td>Итого задолженность</td><td class="num">{{ b.total_debt | num }}</td><td></td></tr>
</table>

<h2>Где и как оплатить</h2>
<ul>{% for p in b.how_to_pay %}<li>{{ p }}</li>{% endfor %}</ul>

<h2>Ваше районное отделение (РОЭС) и Контакт-центр</h2>
<table>
<colgroup><col style="width:50%"><col style="width:50%"></colgroup>
<tr>
<td>{% if o.name %}<b>{{ o.name }}</b><br>{{ o.address }}<br>Тел.: {{ o.phone }}<br>{{ o.hours }}{% else %}Отделение {{ o.code }}{% endif %}</td>
<td><b>Контакт-центр</b><br>Тел.: {{ cc.phone }}<br>{{ cc.email }}<br>{{ cc.hours }}</td>
</tr>
</table>

<h2>Объявления</h2>
<ul>{% for p in b.notices %}<li>{{ p }}</li>{% endfor %}</ul>
<p class="muted">Квитанция сформирована {{ bill.issued_at | ru_datetime }} (Алматы). № {{ bill.receipt_id }}</p>
""",
    "bill.css": """\
/* One stylesheet for the bill: the PDF (WeasyPrint, A4, one sheet per side) and the portal's HTML view.
   Kept deliberately plain (fixed table layouts, few nested boxes): layout is most of a PDF's render time. */
@page { size: A4; margin: 10mm 11mm; }
html { font-family: "DejaVu Sans", sans-serif; font-size: 8.2pt; line-height: 1.28; color: #111; }
body { margin: 0; }
.sheet + .sheet { break-before: page; }
h1 { font-size: 13pt; margin: 0 0 1mm 0; }
h2 { font-size: 9.5pt; margin: 3mm 0 1mm 0; padding-bottom: 0.5mm; border-bottom: 0.6pt solid #444; }
p { margin: 0 0 1mm 0; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
td, th { padding: 0.6mm 1.2mm; vertical-align: top; text-align: left; }
.grid td, .grid th { border: 0.5pt solid #888; }
.grid th { background: #eee; font-weight: bold; font-size: 7.6pt; }
.num { text-align: right; }
.muted { color: #555; font-size: 7.4pt; }
.label { color: #444; width: 34%; }
.head td { vertical-align: top; }
.title { text-align: right; }
.total td { font-weight: bold; }
.due { margin-top: 3mm; border: 1.2pt solid #111; }
.due td { padding: 2mm; vertical-align: middle; }
.due .sum { font-size: 15pt; font-weight: bold; }
.qr { width: 31mm; text-align: center; }
.qr img { width: 29mm; height: 29mm; image-rendering: pixelated; }
ul { margin: 0 0 1mm 4mm; padding: 0; }
li { margin: 0 0 0.6mm 0; }
@media screen {
  body { background: #f3f3f3; padding: 16px; }
  .sheet { background: #fff; width: 188mm; margin: 0 auto 16px auto; padding: 10mm 11mm; box-shadow: 0 1px 4px rgba(0,0,0,.2); }
}
""",
}


def _environment(loader: DictLoader) -> Environment:
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=formatting.number,
        ru_date=formatting.ru_date,
        ru_datetime=formatting.ru_datetime,
        percent=formatting.percent,
    )
    return env


def qr_before(payload: str) -> str:
    uri: str = segno.make(payload, error="m", encoding="utf-8", micro=False).png_data_uri(scale=4, border=2)
    return uri


def qr_after(payload: str) -> str:
    uri: str = rendering.qr_data_uri.__wrapped__(payload)  # not the cache
    return uri


class _Ladder:
    """The render, optimisation by optimisation: each step adds one change to the step before it."""

    def __init__(self) -> None:
        rendering.warm_up()
        self.engine = rendering._engine()
        self.fonts = FontConfiguration()
        self.before_env = _environment(DictLoader(BEFORE_TEMPLATES))
        self.before_css = CSS(string=BEFORE_TEMPLATES["bill.css"], font_config=self.fonts)
        self.after_env = rendering._environment()
        self.steps: list[tuple[str, Callable[[dict[str, Any]], bytes]]] = [
            ("before: first templates, stock WeasyPrint", self.before),
            ("+ QR code: fixed mask, 1 px per module", self.qr),
            ("+ flat markup (templates v2, bill.css)", self.markup),
            ("+ print_ua.css instead of the HTML5 UA", self.ua),
            ("+ XHTML parsed by expat, not tinyhtml5", self.expat),
            ("+ GC paused = WeasyPrint's weasyprint_pdf", weasyprint_pdf),
        ]

    def _page(self, env: Environment, snapshot: Mapping[str, Any], qr: Callable[[str], str]) -> str:
        page = env.get_template("bill.html.j2").render(
            bill=snapshot,
            sides=["front", "back"],
            qr_src=qr(snapshot["front"]["qr"]["payload"]),
            inline_css="",
        )
        return page if env is self.before_env else rendering._BETWEEN_TAGS.sub("><", page)

    def before(self, snapshot: dict[str, Any]) -> bytes:
        page = self._page(self.before_env, snapshot, qr_before)
        pdf: bytes = HTML(string=page).write_pdf(stylesheets=[self.before_css], font_config=self.fonts)
        return pdf

    def qr(self, snapshot: dict[str, Any]) -> bytes:
        page = self._page(self.before_env, snapshot, qr_after)
        pdf: bytes = HTML(string=page).write_pdf(stylesheets=[self.before_css], font_config=self.fonts)
        return pdf

    def markup(self, snapshot: dict[str, Any]) -> bytes:
        e = self.engine
        page = self._page(self.after_env, snapshot, qr_after)
        pdf: bytes = HTML(string=page).write_pdf(stylesheets=[e.css], font_config=e.font_config)
        return pdf

    def ua(self, snapshot: dict[str, Any]) -> bytes:
        e = self.engine
        document = HTML(string=self._page(self.after_env, snapshot, qr_after), url_fetcher=e.url_fetcher)
        document._ua_stylesheets = lambda forms=False: [e.ua_css]
        pdf: bytes = document.write_pdf(stylesheets=[e.css], font_config=e.font_config)
        return pdf

    def expat(self, snapshot: dict[str, Any]) -> bytes:
        e = self.engine
        root = ElementTree.fromstring(self._page(self.after_env, snapshot, qr_after))
        document = rendering._BillPage(root, e.ua_css, e.url_fetcher)
        pdf: bytes = document.write_pdf(stylesheets=[e.css], font_config=e.font_config)
        return pdf


def pin_to_one_cpu(cpu: int | None) -> int:
    available = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu is not None else available[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


def varied_snapshots(n: int) -> list[dict[str, Any]]:
    """n different bills: other account numbers, payments and so amounts (and QR codes)."""
    snapshots = []
    for i in range(n):
        facts = example_facts(account_no=f"{100200300401 + i * 7919:012d}", receipt_id=uuid.uuid4())
        payment = facts.payments[0]
        paid = dataclasses.replace(payment, amount=payment.amount + Decimal(i) / 100)
        snapshots.append(build_snapshot(dataclasses.replace(facts, payments=[paid])))
    return snapshots


def rate(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(per CPU-second, per wall-second) over n calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.process_time() - cpu), n / (time.perf_counter() - wall)


def trivial_pdf(snapshot: Mapping[str, Any]) -> bytes:
    """The baseline: WeasyPrint's cost floor, a one-page PDF of one word."""
    pdf: bytes = HTML(string=f"<p>Квитанция {snapshot['account_no']}</p>").write_pdf()
    return pdf


def check_pdf(pdf: bytes, snapshot: Mapping[str, Any]) -> None:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) == 2 and snapshot["account_no"] in text
    assert formatting.number(snapshot["amount_due"]) in text


def bench_rendering(renders: int) -> dict[str, Any]:
    ladder = _Ladder()
    rounds = 5
    per_round = max(1, renders // rounds)
    snapshots = iter(varied_snapshots((per_round * rounds + 1) * len(ladder.steps) + 1))
    for _, step in ladder.steps:  # warm-up, and each step still prints the bill
        sample = next(snapshots)
        check_pdf(step(sample), sample)
    trivial_pdf(next(snapshots))
    cpu = [0.0] * len(ladder.steps)
    wall = [0.0] * len(ladder.steps)
    for _ in range(rounds):
        for i, (_, step) in enumerate(ladder.steps):
            batch = [next(snapshots) for _ in range(per_round)]
            c, w = time.process_time(), time.perf_counter()
            for snapshot in batch:
                step(snapshot)
            cpu[i] += time.process_time() - c
            wall[i] += time.perf_counter() - w
    n = per_round * rounds
    trivial = iter(varied_snapshots(n))
    trivial_cpu, trivial_wall = rate(lambda: trivial_pdf(next(trivial)), n)
    direct_sample = varied_snapshots(1)[0]
    check_pdf(render_direct_pdf(direct_sample), direct_sample)
    many = iter(varied_snapshots(n * 10))
    direct_cpu, direct_wall = rate(lambda: render_direct_pdf(next(many)), n * 10)
    sample = varied_snapshots(1)[0]
    return {
        "steps": [(name, n / cpu[i], n / wall[i]) for i, (name, _) in enumerate(ladder.steps)],
        "trivial_cpu": trivial_cpu,
        "trivial_wall": trivial_wall,
        "direct_cpu": direct_cpu,
        "direct_wall": direct_wall,
        "before_kib": len(ladder.before(sample)) / 1024,
        "after_kib": len(weasyprint_pdf(sample)) / 1024,
        "direct_kib": len(render_direct_pdf(sample)) / 1024,
    }


# WeasyPrint's phases, by the function that runs each (module path suffix, function name).
PHASES = [
    ("templates, QR code", "receipts/adapters/rendering.py", "render_html"),
    ("parsing (expat)", "receipts/adapters/rendering.py", "document"),
    ("CSS cascade", "weasyprint/css/__init__.py", "get_all_computed_styles"),
    ("box tree", "weasyprint/formatting_structure/build.py", "build_formatting_structure"),
    ("layout (lines, tables)", "weasyprint/layout/__init__.py", "layout_document"),
    ("drawing", "weasyprint/document.py", "paint"),
    ("PDF: fonts, objects, zlib", "weasyprint/document.py", "write_pdf"),
]


def where_the_time_goes(renders: int) -> dict[str, Any]:
    snapshots = varied_snapshots(renders)
    profile = cProfile.Profile()
    profile.enable()
    for snapshot in snapshots:
        weasyprint_pdf(snapshot)
    profile.disable()
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for label, path, name in PHASES:
        cumulative[label] = sum(
            entry[3] for (file, _, func), entry in stats.items() if func == name and file.endswith(path)
        )
    total = sum(entry[3] for (file, _, func), entry in stats.items() if func == "weasyprint_pdf")
    shares = dict(cumulative)
    shares["PDF: fonts, objects, zlib"] -= shares["drawing"]  # write_pdf includes the drawing
    # The floor: the same bill's text, line by line, as plain paragraphs: no tables, rules, image.
    pdf = weasyprint_pdf(snapshots[0])
    pages = [page.extract_text().splitlines() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]
    body = "".join(
        '<section class="sheet">' + "".join(f"<p>{escape(line)}</p>" for line in lines) + "</section>"
        for lines in pages
    )
    lines = sum(len(p) for p in pages)
    engine = rendering._engine()

    def text_only() -> None:
        engine.render(f"<html><body>{body}</body></html>")

    text_cpu, _ = rate(text_only, max(5, renders))
    return {
        "shares": {k: v / total for k, v in shares.items()},
        "other": 1 - sum(shares.values()) / total,
        "lines": lines,
        "text_cpu": text_cpu,
    }


# --- 1b. Chromium's print-to-PDF of the same page ---------------------------------------------------------
BATCH_SIZES = (1, 5, 10, 20)


def tree_cpu_s(root: psutil.Process | None = None) -> float:
    """CPU seconds so far of a process and all its descendants (this process: Python, Playwright's node
    driver, every Chromium process)."""
    root = root or psutil.Process()
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def check_chromium_pdf(pdf: bytes, snapshot: Mapping[str, Any]) -> None:
    """Two pages, the account number and the amount in the text (Chromium's text layer writes the
    thousands' no-break space as a space), every font embedded."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")
    assert len(reader.pages) == 2 and snapshot["account_no"] in text, text[:300]
    assert formatting.number(snapshot["amount_due"]).replace("\xa0", " ") in text
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            assert "/FontFile2" in descriptor["/FontDescriptor"], font


async def bench_chromium(renders: int) -> dict[str, Any]:
    """Bills per wall-second (everything pinned to this process's one CPU: children inherit the affinity)
    and per CPU-second of the whole process tree, in interleaved rounds with WeasyPrint (the Python
    process's CPU only: the idle browser's timers are not WeasyPrint's)."""
    from playwright.async_api import async_playwright

    from receipts.adapters import chromium

    executable = chromium.find_chromium()
    if executable is None:
        return {"error": "no Chromium installed"}
    core = os.sched_getaffinity(0)
    rounds = 3
    per_round = max(2, renders // rounds)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=list(chromium.ARGS))
        context = await browser.new_context(java_script_enabled=False, offline=True)
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Page.enable")
        frame_id = (await cdp.send("Page.getFrameTree"))["frameTree"]["frame"]["id"]
        pages = {k: [await context.new_page() for _ in range(k)] for k in (2, 4)}

        async def playwright_pdf(snapshot: Mapping[str, Any], on: Any = page) -> bytes:
            await on.set_content(rendering.render_html(snapshot), wait_until="load")
            pdf: bytes = await on.pdf(**chromium.PDF_OPTIONS)
            return pdf

        async def cdp_pdf(snapshot: Mapping[str, Any]) -> bytes:
            loaded = asyncio.get_running_loop().create_future()
            cdp.once("Page.loadEventFired", lambda _: loaded.done() or loaded.set_result(None))
            await cdp.send(
                "Page.setDocumentContent", {"frameId": frame_id, "html": rendering.render_html(snapshot)}
            )
            await loaded
            result = await cdp.send("Page.printToPDF", chromium.CDP_PDF_OPTIONS)
            return base64.b64decode(result["data"])

        def in_flight(k: int) -> Callable[[list[dict[str, Any]]], Any]:
            async def run(batch: list[dict[str, Any]]) -> None:
                queue = list(batch)

                async def worker(on: Any) -> None:
                    while queue:
                        await playwright_pdf(queue.pop(), on)

                await asyncio.gather(*(worker(p) for p in pages[k]))

            return run

        def sequential(fn: Callable[[dict[str, Any]], Any]) -> Callable[[list[dict[str, Any]]], Any]:
            async def run(batch: list[dict[str, Any]]) -> None:
                for snapshot in batch:
                    await fn(snapshot)

            return run

        shipped = chromium.ChromiumPdf(executable, pages=1)  # the service's engine: its own browser

        async def shipped_pdf(snapshot: Mapping[str, Any]) -> bytes:
            return rendering._deterministic(await shipped.render_async(rendering._chromium_page(snapshot)),
                                            snapshot)  # fmt: skip

        async def weasy(batch: list[dict[str, Any]]) -> None:
            for snapshot in batch:
                weasyprint_pdf(snapshot)

        def batches_of(k: int) -> Callable[[list[dict[str, Any]]], Any]:
            """The shipped batch path (`rendering.render_batch`, the issue-time renderer's): k bills printed
            as one document by the process's engine, split per bill and checked (k = 1: `render_pdf`)."""

            async def run(batch: list[dict[str, Any]]) -> None:
                for i in range(0, len(batch), k):
                    result = await asyncio.to_thread(rendering.render_batch, batch[i : i + k])
                    assert result.fallbacks == 0 and all(isinstance(p, bytes) for p in result.pdfs)

            return run

        rendering.configure(rendering.EngineConfig(engine="chromium", chromium_path=executable))
        batch_round = 20  # bills per round of each batch variant: a multiple of every size
        # (label, bills of a round -> None, clock, bills per round)
        variants: list[tuple[str, Callable[[list[dict[str, Any]]], Any], Callable[[], float], int]] = [
            ("WeasyPrint (weasyprint_pdf), the baseline", weasy, own_cpu_s, per_round),
            ("Playwright set_content + page.pdf, 1 page", sequential(playwright_pdf), tree_cpu_s, per_round),
            ("CDP setDocumentContent + printToPDF", sequential(cdp_pdf), tree_cpu_s, per_round),
            ("Playwright, 2 pages in flight", in_flight(2), tree_cpu_s, per_round),
            ("Playwright, 4 pages in flight", in_flight(4), tree_cpu_s, per_round),
            ("shipped ChromiumPdf (render_pdf's engine)", sequential(shipped_pdf), tree_cpu_s, per_round),
            *(
                (f"shipped batch (render_batch), n = {k}", batches_of(k), tree_cpu_s, batch_round)
                for k in BATCH_SIZES
            ),
        ]
        snapshots = iter(
            varied_snapshots(sum(size for *_, size in variants) * rounds + 2 * len(variants) + 40)
        )
        sample = next(snapshots)
        for _label, fn, _, _ in variants:  # warm-up; each still prints the bill
            await fn([next(snapshots), next(snapshots)])
        for fn in (playwright_pdf, cdp_pdf, shipped_pdf):
            check_chromium_pdf(await fn(sample), sample)
        again = await shipped_pdf(sample)
        deterministic = again == await shipped_pdf(sample)
        # The batch path's output: each split checked like a single bill; the same batch twice, the same
        # bytes; and the cost of splitting and checking alone (this process's CPU, per bill).
        group = [sample, *(next(snapshots) for _ in range(9))]
        split_pdfs = await asyncio.to_thread(rendering.render_pdfs, group)
        for snapshot, pdf in zip(group, split_pdfs, strict=True):
            check_chromium_pdf(pdf, snapshot)
        batch_deterministic = split_pdfs == await asyncio.to_thread(rendering.render_pdfs, group)
        parts = [pdf_batch.page_parts(rendering._chromium_page(s), s) for s in group]
        engine = rendering.chromium_engine()
        assert engine is not None
        printed = await asyncio.to_thread(engine.render, pdf_batch.batch_document(parts))
        c = own_cpu_s()
        for _ in range(3):
            pdf_batch.split(printed, parts)
        split_ms = (own_cpu_s() - c) / (3 * len(parts)) * 1000
        affinities = set()
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                affinities.add(tuple(proc.cpu_affinity()))

        async def quiet() -> None:
            """Between batches: every page shows an empty document (a bill's page left open keeps its
            renderer busy, ~50–80 ms CPU per s; the shipped engine blanks its own after 1 s idle), so a
            batch's CPU is its browser's work, not the other browser's idling."""
            for on in [page, *pages[2], *pages[4]]:
                await on.set_content("<html><body></body></html>")
            await asyncio.sleep(chromium.IDLE_BLANK_S + 0.5)

        await quiet()
        idle = tree_cpu_s()
        await asyncio.sleep(2.0)
        idle = (tree_cpu_s() - idle) / 2.0  # CPU-s per second of the two idle browsers and drivers
        cpu = [0.0] * len(variants)
        wall = [0.0] * len(variants)
        for _ in range(rounds):
            for i, (_, fn, clock, size) in enumerate(variants):
                batch = [next(snapshots) for _ in range(size)]
                await quiet()
                c, w = clock(), time.perf_counter()
                await fn(batch)
                cpu[i] += clock() - c
                wall[i] += time.perf_counter() - w
        await asyncio.to_thread(shipped.close)
        await asyncio.to_thread(rendering.close_engine)
        await browser.close()
    return {
        "rows": [
            (label, size * rounds / cpu[i], size * rounds / wall[i])
            for i, (label, _, _, size) in enumerate(variants)
        ],
        "processes_pinned": affinities <= {tuple(sorted(core))},
        "deterministic": deterministic,
        "batch_deterministic": batch_deterministic,
        "split_ms": split_ms,
        "batch_kib": sum(len(p) for p in split_pdfs) / len(split_pdfs) / 1024,
        "idle_ms_per_s": idle * 1000,
        "kib": len(again) / 1024,
        "executable": executable,
    }


# --- 2. the issue-time render pipeline ---------------------------------------------------------------------
@asynccontextmanager
async def throwaway_database(prefix: str) -> AsyncIterator[str]:
    env = {**load_stack_env(), **os.environ}
    admin_dsn = env["PG_ADMIN_URL"]
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        dsn = admin_dsn.rsplit("/", 1)[0] + f"/{db}"
        await asyncio.to_thread(migrate_to_head, MIGRATIONS_DIR, dsn)
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


async def insert_bills(pool: AsyncConnectionPool[Connection], snapshots: Sequence[Mapping[str, Any]]) -> None:
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO receipts (receipt_id, account_no, period, amount_due, overpayment, due_date, issued_at,"
            " snapshot, content_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
            [(s["receipt_id"], s["account_no"], s["period"], Decimal(s["amount_due"]), Decimal(s["overpayment"]),
              s["due_date"], s["issued_at"], orjson.dumps(s).decode(), content_hash(s)) for s in snapshots],
        )  # fmt: skip


async def queue(pool: AsyncConnectionPool[Connection], receipt_ids: Sequence[str]) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM receipt_pdfs WHERE receipt_id = ANY(%s::uuid[])", (list(receipt_ids),)
        )
        await conn.execute(
            "INSERT INTO pdf_renders (receipt_id) SELECT unnest(%s::uuid[])", (list(receipt_ids),)
        )


def children_cpu_s(renderer: PdfRenderer) -> float:
    """CPU seconds so far of the renderer's render processes and all their descendants (Playwright's driver
    and Chromium's processes, when Chromium renders)."""
    executor = renderer._executor
    total = 0.0
    for pid in getattr(executor, "_processes", {}) or {}:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += tree_cpu_s(psutil.Process(pid))
    return total


async def bench_pipeline(bills: int, workers: Sequence[int]) -> list[dict[str, Any]]:
    results = []
    async with throwaway_database("bench_receipts_pipeline") as dsn:
        settings = ReceiptsSettings(database_url=dsn, log_level="WARNING", render_poll_interval_s=0.2)
        pool = await open_pool(dsn, max_size=max(workers) + 2, name="bench-pipeline")
        try:
            # Warm-up: every render process prints a whole batch first (a process's first batch pays for
            # Chromium's first layout of the bill: measured ~2 × the CPU of the next ones).
            warm = max(2, settings.pdf_batch) * max(workers)
            snapshots = varied_snapshots(bills + warm)
            await insert_bills(pool, snapshots)
            warm_ids = [s["receipt_id"] for s in snapshots[:warm]]
            measured_ids = [s["receipt_id"] for s in snapshots[warm:]]
            for n in workers:
                row: dict[str, Any] = {"workers": n}
                for kind, render, engine, batch in (
                    ("trivial", trivial_pdf, "weasyprint", 1),
                    ("bill", weasyprint_pdf, "weasyprint", 1),
                    ("chromium", render_pdf, "chromium", 1),
                    ("chromium_batch", render_pdf, "chromium", settings.pdf_batch),
                ):
                    engine_settings = settings.model_copy(update={"pdf_engine": engine})
                    renderer = PdfRenderer(pool, engine_settings, render=render, processes=n, batch=batch)
                    try:
                        await queue(pool, warm_ids)  # starts the render processes, warms them up
                        await renderer.render_all()
                        await queue(pool, measured_ids)
                        cpu, children, wall = (
                            time.process_time(),
                            children_cpu_s(renderer),
                            time.perf_counter(),
                        )
                        done = await renderer.render_all()
                        wall = time.perf_counter() - wall
                        cpu = time.process_time() - cpu + children_cpu_s(renderer) - children
                    finally:
                        renderer.close()
                    assert done == len(measured_ids)
                    row[f"{kind}_wall"] = done / wall
                    row[f"{kind}_cpu"] = done / cpu
                async with pool.connection() as conn:
                    cur = await conn.execute("SELECT count(*) FROM pdf_renders")
                    assert await cur.fetchone() == (0,)
                row["batch"] = settings.pdf_batch
                results.append(row)
        finally:
            await pool.close()
    return results


# --- 3. downloads ------------------------------------------------------------------------------------------
class _Server(threading.Thread):
    def __init__(self, app: Any, port: int) -> None:
        super().__init__(daemon=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def run(self) -> None:
        self.server.run()

    def wait_started(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.05)


async def bench_download(requests: int, dsn: str) -> dict[str, float]:
    settings = ReceiptsSettings(database_url=dsn, log_level="WARNING")
    account_no, period, user = "100200300401", "2025-03", uuid.uuid4()
    facts = example_facts(account_no=account_no, receipt_id=uuid.uuid4())
    snapshot = build_snapshot(facts)
    pool = await open_pool(dsn, max_size=2, name="bench")
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO account_links (account_no, user_id, linked) VALUES (%s, %s, true)",
                (account_no, user),
            )
        await insert_bills(pool, [snapshot])
        pdf = await pdf_for(pool, facts.receipt_id, snapshot)  # rendered once: downloads are reads
    finally:
        await pool.close()

    key = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    app = create_app(settings)

    @app.get("/bench/static", include_in_schema=False)
    async def static() -> Response:
        return Response(pdf, media_type="application/pdf")

    port = 18000 + os.getpid() % 1000
    server = _Server(app, port)
    server.start()
    await asyncio.to_thread(server.wait_started)
    verifier = TokenVerifier("http://127.0.0.1:9/unused", cache_s=1e9)
    verifier.load_jwks({"keys": [{**jwk, "kid": "bench"}]})
    app.state.token_verifier = verifier
    now = int(time.time())
    claims = {
        "iss": "lk-identity",
        "aud": "lk-portal",
        "sub": str(user),
        "sid": "s",
        "iat": now,
        "exp": now + 3600,
    }
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "bench"})
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def timings(path: str, headers: dict[str, str]) -> list[float]:
                for _ in range(20):  # warm-up: connections, pool
                    (await client.get(path, headers=headers)).raise_for_status()
                samples = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = await client.get(path, headers=headers)
                    samples.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200 and response.content == pdf
                return samples

            pdf_ms = await timings(
                f"/internal/v1/accounts/{account_no}/receipts/{period}.pdf",
                {"Authorization": f"Bearer {token}"},
            )
            static_ms = await timings("/bench/static", {})
    finally:
        server.server.should_exit = True
        server.join(timeout=10)
    return {
        "pdf_p50": _pct(pdf_ms, 50),
        "pdf_p95": _pct(pdf_ms, 95),
        "static_p50": _pct(static_ms, 50),
        "static_p95": _pct(static_ms, 95),
        "size": float(len(pdf)),
    }


def _pct(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


async def main(args: argparse.Namespace) -> None:
    if args.billing_run:  # section 4 alone, unpinned
        await bench_billing_run(args.billing_run, args.batch, args.profile)
        return
    all_cpus = os.sched_getaffinity(0)
    core = pin_to_one_cpu(args.cpu)
    print(f"pinned to CPU {core}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if not args.skip_rendering:
        await bench_renders(args, core)
    await bench_rest(args, core, all_cpus)


async def bench_renders(args: argparse.Namespace, core: int) -> None:
    r = bench_rendering(args.renders)
    base = r["trivial_cpu"]
    print(
        "1. PDF rendering, two-page bills, each different, one core (baseline: WeasyPrint, trivial 1-page PDF)"
    )
    print(f"  {'baseline (trivial PDF)':44s} {base:6.1f} PDFs/CPU-s  {r['trivial_wall']:6.1f}/s wall")
    first = r["steps"][0][1]
    for name, cpu, wall in r["steps"]:
        print(f"  {name:44s} {cpu:6.1f} PDFs/CPU-s  {wall:6.1f}/s wall  {cpu / base:6.3f} × baseline"
              f"  {cpu / first:4.2f} × before")  # fmt: skip
    shipped = r["steps"][-1][1]
    print(f"  PDF size: before {r['before_kib']:.0f} KiB, after {r['after_kib']:.0f} KiB."
          f"  Target ≥ 20 PDFs/s on one core: {'met' if shipped >= 20 else 'NOT met'} ({shipped:.1f}/s)")  # fmt: skip
    print(f"  {'alternative: direct pydyf (2nd layout)':44s} {r['direct_cpu']:6.1f} PDFs/CPU-s  "
          f"{r['direct_wall']:6.1f}/s wall  {r['direct_cpu'] / base:6.3f} × baseline  {r['direct_kib']:.0f} KiB")  # fmt: skip
    c = await bench_chromium(args.renders)
    if "error" in c:
        print(f"1b. Chromium: {c['error']}")
    else:
        weasy = c["rows"][0][1]
        print(f"1b. Chromium's print-to-PDF of the same page ({c['executable']}; every process pinned to CPU {core}:"
              f" {c['processes_pinned']}; CPU = the whole process tree: Python, node driver, Chromium)")  # fmt: skip
        for name, cpu, wall in c["rows"]:
            print(f"  {name:44s} {cpu:6.1f} PDFs/CPU-s  {wall:6.1f}/s wall  {cpu / weasy:5.2f} × WeasyPrint"
                  f"  {cpu / base:6.3f} × baseline")  # fmt: skip
        best = max(cpu for _, cpu, _ in c["rows"][1:])
        print(
            f"  (Chromium's CPU includes both idle browsers' background: {c['idle_ms_per_s']:.0f} ms CPU per s idle)"
        )
        print(f"  PDF size {c['kib']:.0f} KiB; same snapshot, same bytes: {c['deterministic']}."
              f"  Target ≥ 20 PDFs/s on one core: {'met' if best >= 20 else 'NOT met'} ({best:.1f}/CPU-s)")  # fmt: skip
        print(f"  batch: split PDF {c['batch_kib']:.0f} KiB; same batch, same bytes: {c['batch_deterministic']};"
              f" splitting and checking {c['split_ms']:.1f} ms of CPU per bill")  # fmt: skip
    w = where_the_time_goes(max(5, args.renders // 4))
    print("  where the shipped render's time goes (cProfile shares):")
    print("    " + ", ".join(f"{k} {v:.0%}" for k, v in w["shares"].items()) + f", other {w['other']:.0%}")
    print(f"    floor: the bill's {w['lines']} text lines alone, as plain paragraphs: {w['text_cpu']:.1f} PDFs/CPU-s"
          f" ({1000 / w['text_cpu'] / w['lines']:.2f} ms of CPU per line)")  # fmt: skip


async def bench_rest(args: argparse.Namespace, core: int, all_cpus: set[int]) -> None:
    os.sched_setaffinity(0, all_cpus)
    workers = [int(x) for x in args.workers.split(",")]
    print(f"2. Issue-time render pipeline ({args.bills} queued bills; claim, render in N processes, store; "
          f"{len(all_cpus)} CPUs; baseline: the same pipeline rendering the trivial PDF)")  # fmt: skip
    for p in await bench_pipeline(args.bills, workers):
        print(f"  N={p['workers']}  bills {p['bill_wall']:6.1f}/s wall  {p['bill_cpu']:6.1f}/CPU-s"
              f"   baseline {p['trivial_wall']:6.1f}/s wall  {p['trivial_cpu']:6.1f}/CPU-s"
              f"   ratio {p['bill_wall'] / p['trivial_wall']:6.3f} × baseline")  # fmt: skip
        print(f"       Chromium bills {p['chromium_wall']:6.1f}/s wall  {p['chromium_cpu']:6.1f}/CPU-s"
              f" (render processes with their driver and browser)"
              f"   {p['chromium_cpu'] / p['bill_cpu']:5.2f} × WeasyPrint's bills per CPU-s")  # fmt: skip
        print(f"       Chromium, batches of {p['batch']:2d} {p['chromium_batch_wall']:6.1f}/s wall"
              f"  {p['chromium_batch_cpu']:6.1f}/CPU-s   {p['chromium_batch_cpu'] / p['bill_cpu']:5.2f} × WeasyPrint,"
              f" {p['chromium_batch_cpu'] / p['chromium_cpu']:5.2f} × one at a time"
              f"  (target ≥ 20 per CPU-s: {'met' if p['chromium_batch_cpu'] >= 20 else 'NOT met'})")  # fmt: skip

    if args.skip_download:
        return
    pin_to_one_cpu(core)
    async with throwaway_database("bench_receipts") as dsn:
        d = await bench_download(args.requests, dsn)
    print(
        f"3. PDF download ({args.requests} sequential requests, {d['size'] / 1024:.0f} KiB, uvicorn + httpx)"
    )
    print(f"  bill .pdf     p50 {d['pdf_p50']:6.2f} ms   p95 {d['pdf_p95']:6.2f} ms")
    print(f"  static bytes  p50 {d['static_p50']:6.2f} ms   p95 {d['static_p95']:6.2f} ms")
    print(f"  ratio p95     {d['pdf_p95'] / d['static_p95']:6.2f} × baseline   (target p95 < 150 ms: "
          f"{'met' if d['pdf_p95'] < 150 else 'NOT met'})")  # fmt: skip


# --- 4. a billing run's events through the projections -----------------------------------------------------


def _billing_run_events(n: int, period: str) -> dict[str, list[CanonicalEvent]]:
    """A billing run as receipts sees it, for n new accounts: their AccountOpened and MeterInstalled and
    OpeningBalanceSet (before), then each one's estimated ChargeCalculated and PeriodBilled, and the
    ledger's AccrualPosted."""
    first = dt.date(int(period[:4]), int(period[5:]), 1)
    prefix = f"97{uuid.uuid4().int % 10**4:04d}"
    out: dict[str, list[CanonicalEvent]] = {"accounts": [], "openings": [], "calculator": [], "ledger": []}

    def event(stream: str, version: int, payload: Any, offset: int) -> CanonicalEvent:
        topic = registry.spec_of(payload).topic
        envelope = canonical_envelope(stream, version, payload, topic.split(".")[0])
        return CanonicalEvent(envelope, payload, topic, 0, offset)

    for i in range(n):
        no = f"{prefix}{i:06d}"
        out["accounts"] += [
            event(acc.account_stream(no), 1, acc.AccountOpened(
                account_no=no, payer_name="Бенчмарков Б.Б.", address="г. Алматы, ул. Абая, д. 1",
                residents=1 + i % 4, electric_stove=i % 3 == 0, living_alone=False, tariff_option="flat",
                district_office_code="01", opened_on=first), i),
            event(acc.account_stream(no), 2, acc.MeterInstalled(
                account_no=no, serial=f"B{no}", digits=6, installed_on=first, initial_reading=Decimal(0)), i),
        ]  # fmt: skip
        ledger = led.ledger_stream(no, "electricity")
        out["openings"].append(event(ledger, 1, led.OpeningBalanceSet(
            account_no=no, service_code="electricity", period=period, amount=Decimal("0.00")), i))  # fmt: skip
        kwh, amount = Decimal(150), Decimal("3066.00")
        charge = calc.ChargeCalculated(
            charge_id=f"est-{no}-{period}", account_no=no, period=period, previous=None, current=None, days=30,
            consumption_kwh=kwh, tariff_option_applied="flat", estimated=True,
            lines=[calc.ChargeLine(from_date=first, to_date=first + dt.timedelta(days=30), tier="flat",
                                   limit_kwh=None, kwh=kwh, rate=Decimal("20.44"), amount=amount)],
            net_total=amount, vat=Decimal("367.92"), total=amount + Decimal("367.92"),
        )  # fmt: skip
        stream = f"billing-period:{no}:{period}"
        out["calculator"] += [
            event(stream, 1, charge, 2 * i),
            event(stream, 2, calc.PeriodBilled(account_no=no, period=period, charge_ids=[charge.charge_id]), 2 * i + 1),
        ]  # fmt: skip
        out["ledger"].append(event(ledger, 2, led.AccrualPosted(
            account_no=no, service_code="electricity", charge_id=charge.charge_id, period=period,
            amount=charge.total, consumption_kwh=kwh, tariff="flat", estimated=True), i))  # fmt: skip
    return out


async def bench_billing_run(n: int, batch: int, profile: bool) -> None:
    """Receipts' share of a billing run, in-process on a fresh database (no Kafka, no runner: each
    projection's `apply_batch` in batches of `batch`, in pipeline mode, as the consumer runs it): the CPU
    per account of this process and of the database's backends, for the calculator's events (charges,
    billed periods) and then the ledger's (accruals, which complete the bills: issuing included)."""
    async with throwaway_database("bench_rcpt_run") as dsn:
        pool = await open_pool(dsn, max_size=2, name="bench-billing-run")
        try:
            store = EventStore(producer="receipts")
            projections = {
                "accounts": AccountsProjection(store),
                "openings": LedgerProjection(store),
                "calculator": CalculatorProjection(store),
                "ledger": LedgerProjection(store),
            }
            events = _billing_run_events(n, "2025-09")

            async def run(name: str) -> None:
                todo = events[name]
                for at in range(0, len(todo), batch):
                    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
                        await projections[name].apply_batch(conn, todo[at : at + batch])

            await run("accounts")
            await run("openings")
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                )
                pids = [int(pid) for (pid,) in await cur.fetchall()]
            profiler = cProfile.Profile() if profile else None
            print(
                f"4. A billing run through receipts' projections ({n} accounts, batches of {batch}, in-process)"
            )
            for name, what in (
                ("calculator", "ChargeCalculated + PeriodBilled"),
                ("ledger", "AccrualPosted + issuing"),
            ):
                backends0, cpu0, wall0 = psutil_cpu(pids), time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                await run(name)
                if profiler is not None:
                    profiler.disable()
                cpu, wall, backends = (
                    time.process_time() - cpu0,
                    time.perf_counter() - wall0,
                    psutil_cpu(pids) - backends0,
                )
                print(f"  {what:34s} Python {cpu / n * 1000:.3f} ms, PostgreSQL {backends / n * 1000:.3f} ms of CPU"
                      f" per account; {n / wall:,.0f} accounts/s wall")  # fmt: skip
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM receipts")
                issued = await cur.fetchone()
            print(
                f"  bills issued: {issued[0] if issued else 0} of {n}; load average {os.getloadavg()[0]:.1f}"
            )
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        finally:
            await pool.close()


def psutil_cpu(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes with these pids have used so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--renders", type=int, default=30, help="renders per step of the ladder")
    parser.add_argument("--bills", type=int, default=40, help="bills through the pipeline per N")
    parser.add_argument("--workers", default="1,2", help="render processes to try, e.g. 1,2,3")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--cpu", type=int, default=None, help="the CPU to pin to (default: the last one)")
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--skip-rendering", action="store_true", help="sections 2 and 3 only")
    parser.add_argument(
        "--billing-run", type=int, default=0, help="section 4 only: a billing run of N accounts (0: skip)"
    )
    parser.add_argument("--batch", type=int, default=500, help="section 4: events per batch")
    parser.add_argument("--profile", action="store_true", help="section 4: cProfile's top entries")
    asyncio.run(main(parser.parse_args()))
