"""The two PDF engines print the same template: Chromium (the default) and WeasyPrint (the fallback).

Chromium's tests need Debian's chromium (deploy/local/stack.sh installs it) and Playwright; they are
skipped where there is none."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import io
import logging
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pypdf
import pytest

from receipts.adapters import chromium, pdf_batch, rendering
from receipts.domain.bill import build_snapshot
from receipts.domain.examples import example_facts
from service_runtime.scheduling import SchedulingGroup, scheduling_group

HAVE_CHROMIUM = chromium.find_chromium() is not None
needs_chromium = pytest.mark.skipif(not HAVE_CHROMIUM, reason="no Chromium installed")


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Use the given engine in this process for the test, then go back to the one before."""
    before = rendering.engine_config()
    name: str = request.param
    rendering.configure(rendering.EngineConfig(engine=name, timeout_s=60.0))
    try:
        yield name
    finally:
        rendering.configure(before)


def bill(account_no: str = "100200300401") -> dict[str, Any]:
    return build_snapshot(example_facts(account_no=account_no, receipt_id=uuid.uuid4()))


def images(resources: Any) -> int:
    """Images drawn on a page, also inside its form XObjects."""
    count = 0
    for xobject in (resources or {}).get("/XObject", {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Image":
            count += 1
        elif xobject.get("/Subtype") == "/Form":
            count += images(xobject.get("/Resources"))
    return count


def fonts(resources: Any) -> list[Any]:
    found = [f.get_object() for f in (resources or {}).get("/Font", {}).values()]
    for xobject in (resources or {}).get("/XObject", {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form":
            found += fonts(xobject.get("/Resources"))
    return found


def check_printed(pdf: bytes, snapshot: dict[str, Any]) -> pypdf.PdfReader:
    """Two A4 pages (front, back), the account number and the amount in the text, every font embedded
    (DejaVu Sans, with the Cyrillic), the QR code on the front."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    for page in reader.pages:
        assert [round(float(x)) for x in page.mediabox[2:]] == [595, 842]  # A4 in points
    front, back = (p.extract_text().replace("\xa0", " ").replace("\u202f", " ") for p in reader.pages)
    assert "СЧЁТ-КВИТАНЦИЯ" in front and snapshot["account_no"] in front and "5 042,36" in front
    assert "Сейтказиева Айгуль Маратовна" in front and "Итого без НДС" in front
    assert "ОБОРОТНАЯ СТОРОНА" in back and "Алмалинский РОЭС" in back and "Как работают ступени" in back
    for page in reader.pages:
        page_fonts = fonts(page["/Resources"])
        assert page_fonts
        for font in page_fonts:
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            assert "/FontFile2" in descendant["/FontDescriptor"], font  # embedded (TrueType subset)
            assert "DejaVuSans" in str(font["/BaseFont"]).replace("-Sans", "Sans")
    assert images(reader.pages[0]["/Resources"]) == 1  # the QR code (WeasyPrint shares one resource dict)
    return reader


@pytest.mark.parametrize(
    "engine", [pytest.param("chromium", marks=needs_chromium), "weasyprint"], indirect=True
)
def test_each_engine_prints_the_template_as_two_a4_pages_with_embedded_fonts(engine: str) -> None:
    snapshot = bill()
    pdf = rendering.render_pdf(snapshot)
    reader = check_printed(pdf, snapshot)
    producer = str((reader.metadata or {}).get("/Producer", ""))
    assert ("Skia" in producer) if engine == "chromium" else ("WeasyPrint" in producer)
    assert pdf == rendering.render_pdf(snapshot)  # the same snapshot, the same bytes (same engine)
    assert asyncio.run(rendering.render_pdf_async(snapshot)) == pdf  # the API's path prints the same


@needs_chromium
@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_chromium_dates_the_pdf_by_the_bill_and_restarts_a_dead_browser(engine: str) -> None:
    snapshot = bill("100200300402")
    first = rendering.render_pdf(snapshot)
    issued = datetime.fromisoformat(snapshot["issued_at"]).astimezone(UTC).strftime("%Y%m%d%H%M%S")
    metadata = pypdf.PdfReader(io.BytesIO(first)).metadata or {}
    assert str(metadata["/CreationDate"]).startswith(f"D:{issued}")  # not the time of printing
    assert str(metadata["/ModDate"]).startswith(f"D:{issued}")
    browser = rendering.chromium_engine()
    assert browser is not None
    launches, pids = browser.launches, browser.browser_pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # killed, crashed, out of memory...
    deadline = time.monotonic() + 60
    while set(pids) & set(browser.browser_pids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    again = rendering.render_pdf(snapshot)  # a new browser, the same bytes
    assert again == first and browser.launches >= launches + 1
    assert browser.browser_pids() and not set(pids) & set(browser.browser_pids())


@needs_chromium
@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_a_page_that_fails_is_replaced_and_the_bill_still_printed_by_chromium(
    engine: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chromium, "IDLE_BLANK_S", 3600.0)  # the idle page stays as it is
    snapshot = bill("100200300403")
    first = rendering.render_pdf(snapshot)
    browser = rendering.chromium_engine()
    assert browser is not None and browser._idle
    launches = browser.launches
    for tab in browser._idle:
        tab.frame_id = "no-such-frame"  # its next document can't be set: the page is broken
    again = rendering.render_pdf(snapshot)
    assert again == first  # printed by Chromium on a new page, not by WeasyPrint
    assert browser.launches == launches  # the browser stays
    messages = [r.getMessage() for r in caplog.records]
    assert "a page failed; printing on a new one" in messages
    assert not any("WeasyPrint" in m for m in messages)


@needs_chromium
def test_chromium_serves_several_bills_at_once_within_its_bound() -> None:
    before = rendering.engine_config()
    rendering.configure(rendering.EngineConfig(engine="chromium", chromium_pages=2, timeout_s=60.0))
    try:
        snapshots = [bill(f"1002003004{i:02d}") for i in range(4)]

        async def all_at_once() -> list[bytes]:
            return await asyncio.gather(*(rendering.render_pdf_async(s) for s in snapshots))

        for snapshot, pdf in zip(snapshots, asyncio.run(all_at_once()), strict=True):
            check_printed(pdf, snapshot)
        browser = rendering.chromium_engine()
        assert browser is not None and len(browser._idle) <= 2  # at most two pages, reused
    finally:
        rendering.configure(before)


@needs_chromium
def test_a_browser_that_fails_to_start_is_started_once_more_before_weasyprint(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chromium, "LAUNCH_RETRY_PAUSE_S", 0.1)
    real = chromium.find_chromium()
    tried = tmp_path / "tried"
    flaky = tmp_path / "flaky-chromium"  # fails its first start (a stalled machine, say), then is Chromium
    flaky.write_text(
        f'#!/bin/sh\nif [ ! -e "{tried}" ]; then touch "{tried}"; exit 1; fi\nexec "{real}" "$@"\n'
    )
    flaky.chmod(0o755)
    before = rendering.engine_config()
    rendering.configure(rendering.EngineConfig(engine="chromium", chromium_path=str(flaky), timeout_s=60.0))
    try:
        snapshot = bill("100200300404")
        pdf = rendering.render_pdf(snapshot)
        assert "Skia" in str((check_printed(pdf, snapshot).metadata or {}).get("/Producer", ""))
        assert rendering.engine_of(pdf) == "chromium"
        browser = rendering.chromium_engine()
        assert browser is not None and browser.launches == 1 and tried.exists()
        messages = [r.getMessage() for r in caplog.records]
        assert "chromium did not start; trying again" in messages
        assert not any("WeasyPrint" in m for m in messages)
    finally:
        rendering.configure(before)


class _PriorityRefused(chromium.ChromiumPdf):
    def hold_niceness(self) -> None:
        # What a CI runner's job met: a process in the kernel's default scheduling group, whose
        # /proc/self/autogroup is empty, made the old parser raise this at every start.
        raise IndexError("list index out of range")


@needs_chromium
def test_a_browser_whose_priority_cannot_be_held_still_starts_and_prints(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Holding the browser's CPU priority is a courtesy: when it fails, the bill is still Chromium's (three
    sessions' CI failures were bills printed by WeasyPrint because of it)."""
    engine = _PriorityRefused(timeout_s=60.0)
    try:
        with caplog.at_level(logging.WARNING, logger=chromium.__name__):
            engine.start()
            pdfs = [engine.render(f"<html><body><p>Счёт {i}</p></body></html>") for i in range(3)]
        assert engine.launches == 1
        for pdf in pdfs:
            producer = str((pypdf.PdfReader(io.BytesIO(pdf)).metadata or {}).get("/Producer", ""))
            assert "Skia" in producer, producer
        assert "could not hold the browser's CPU priority" in [r.getMessage() for r in caplog.records]
    finally:
        engine.close()


def test_without_chromium_the_bill_is_printed_by_weasyprint(caplog: pytest.LogCaptureFixture) -> None:
    before = rendering.engine_config()
    rendering.configure(rendering.EngineConfig(engine="chromium", chromium_path="/nonexistent/chromium"))
    try:
        snapshot = bill()
        with caplog.at_level(logging.WARNING, logger=rendering.__name__):
            pdf = rendering.render_pdf(snapshot)
        reader = check_printed(pdf, snapshot)
        assert "WeasyPrint" in str((reader.metadata or {}).get("/Producer", ""))
        assert rendering.engine_of(pdf) == "weasyprint"  # counted so in receipts_pdfs_printed_total
        assert any("WeasyPrint" in r.getMessage() for r in caplog.records)
        assert asyncio.run(rendering.render_pdf_async(snapshot)) == pdf  # for a while, WeasyPrint alone
    finally:
        rendering.configure(before)


def test_a_snapshot_the_template_cannot_print_fails_with_either_engine() -> None:
    snapshot = bill()
    del snapshot["front"]["meter"]
    for name in ("chromium", "weasyprint"):
        before = rendering.engine_config()
        rendering.configure(rendering.EngineConfig(engine=name, chromium_path="/nonexistent/chromium"))
        try:
            with pytest.raises(Exception, match="meter"):
                rendering.render_pdf(snapshot)
        finally:
            rendering.configure(before)


def test_the_html_view_keeps_its_stylesheet_unescaped() -> None:
    """Inside <style> (raw text) an escaped quote would stay `&#34;` and drop the font family."""
    page = rendering.render_html(bill(), ["front"])
    assert 'font-family: "DejaVu Sans"' in page and "&#34;" not in page.split("</style>")[0]


@needs_chromium
@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_an_idle_page_is_blanked_and_prints_the_next_bill_right(engine: str) -> None:
    first, second = bill("100200300411"), bill("100200300412")
    check_printed(rendering.render_pdf(first), first)
    browser = rendering.chromium_engine()
    assert browser is not None
    deadline = time.monotonic() + 60
    while browser._tasks and time.monotonic() < deadline:  # the page shows an empty document by now
        time.sleep(0.1)
    assert not browser._tasks and browser._idle
    reader = check_printed(rendering.render_pdf(second), second)
    assert "100200300411" not in " ".join(p.extract_text() for p in reader.pages)


# --- batches: several bills printed as one document and split per bill (the issue-time renderer's way) ----
PEOPLE = [
    ("100200300501", "Ахметов Ерлан Болатович", "г. Алматы, ул. Сатпаева, д. 30, кв. 5"),
    ("100200300502", "Жумабаева Сауле Нурлановна", "г. Алматы, пр. Достык, д. 97, кв. 112"),
    ("100200300503", "Ким Виктор Олегович", "г. Алматы, мкр. Коктем-1, д. 7, кв. 3"),
    ("100200300504", "Омаров Дархан Ерикович", "г. Алматы, ул. Жандосова, д. 151, кв. 48"),
]


def people_bills() -> list[dict[str, Any]]:
    """Bills of different people: account numbers, payers and addresses all distinct."""
    out = []
    for no, name, address in PEOPLE:
        snapshot = bill(no)
        snapshot["front"]["account"].update(payer_name=name, address=address)
        out.append(snapshot)
    return out


def forms(text: str) -> list[bytes]:
    """How a string could sit in a PDF's bytes: UTF-8, UTF-16BE (text strings), hex of those."""
    raw = [text.encode(), text.encode("utf-16-be")]
    return raw + [r.hex().encode() for r in raw] + [r.hex().upper().encode() for r in raw]


def plain(text: str) -> str:
    return text.replace("\xa0", " ").replace("\u202f", " ")


@needs_chromium
@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_a_batch_splits_into_each_bills_own_pdf_with_nothing_of_the_others(engine: str) -> None:
    snapshots = people_bills()
    result = rendering.render_batch(snapshots)
    assert (result.batched, result.fallbacks) == (len(snapshots), 0)  # one document, split
    pdfs = [pdf for pdf in result.pdfs if isinstance(pdf, bytes)]
    assert len(pdfs) == len(snapshots)
    for k, (snapshot, pdf) in enumerate(zip(snapshots, pdfs, strict=True)):
        no, name, address = PEOPLE[k]
        reader = pypdf.PdfReader(io.BytesIO(pdf))
        assert len(reader.pages) == 2
        for page in reader.pages:
            assert [round(float(x)) for x in page.mediabox[2:]] == [595, 842]
            assert "/Annots" not in page
            for font in fonts(page["/Resources"]):  # embedded DejaVu Sans subsets
                descendant = font["/DescendantFonts"][0].get_object()
                assert "/FontFile2" in descendant["/FontDescriptor"] and "DejaVuSans" in str(
                    font["/BaseFont"]
                )
        front, back = (plain(p.extract_text()) for p in reader.pages)
        assert no in front and name in front and address in front and "5 042,36" in front
        assert no in back and "ОБОРОТНАЯ СТОРОНА" in back
        assert images(reader.pages[0]["/Resources"]) == 1  # its own QR code
        metadata = reader.metadata or {}
        assert metadata["/Title"] == f"Счёт-квитанция {no} за март 2025"  # its own title, not the batch's
        assert "Skia" in str(metadata["/Producer"]) and rendering.engine_of(pdf) == "chromium"
        issued = datetime.fromisoformat(snapshot["issued_at"]).astimezone(UTC).strftime("%Y%m%d%H%M%S")
        assert str(metadata["/CreationDate"]).startswith(f"D:{issued}")
        # Only its own objects: the catalog (no structure tree, outlines, names, forms), its two pages,
        # one image; nothing of the other bills anywhere: not in the text, not in any stream decompressed,
        # not in the file's bytes.
        root = reader.trailer["/Root"].get_object()
        assert not {"/StructTreeRoot", "/Outlines", "/Names", "/AcroForm", "/Dests", "/PageLabels"} & set(
            root
        )
        objects = [reader.get_object(i) for i in range(1, int(reader.trailer["/Size"]))]
        kinds = [(str(o.get("/Type")), str(o.get("/Subtype"))) for o in objects if hasattr(o, "get")]
        assert [t for t, _ in kinds].count("/Page") == 2 and [t for t, _ in kinds].count("/Pages") == 1
        assert [sub for _, sub in kinds].count("/Image") == 1 and len(objects) < 30  # Chromium's bill: 22
        streams = pdf_batch.decompressed_streams(pdf)
        assert streams
        texts = [front, back, *pdf_batch.page_texts(pdf)]
        for j, (other_no, other_name, other_address) in enumerate(PEOPLE):
            if j == k:
                continue
            for secret in (other_no, other_name, other_address):
                assert not any(secret in t for t in texts), (k, secret)
                for form in forms(secret):
                    assert form not in pdf and not any(form in s for s in streams), (k, secret)
    # The same snapshots in the same batch: the same bytes.
    assert rendering.render_batch(snapshots).pdfs == result.pdfs
    # Alone, a bill prints the same content (pages and text) as in the batch (not the same bytes: its
    # font subsets hold only its own glyphs).
    alone = rendering.render_pdf(snapshots[1])
    assert alone != pdfs[1]
    assert [plain(p.extract_text()) for p in pypdf.PdfReader(io.BytesIO(alone)).pages] == [
        plain(p.extract_text()) for p in pypdf.PdfReader(io.BytesIO(pdfs[1])).pages
    ]


@needs_chromium
@pytest.mark.parametrize("engine", ["chromium"], indirect=True)
def test_a_batch_that_fails_its_checks_is_printed_bill_by_bill_and_a_bad_bill_fails_alone(
    engine: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = people_bills()
    bad = bill("100200300509")
    del bad["front"]["meter"]  # the template can't print it
    checked = pdf_batch.check_split

    def picky(pdf: bytes, page: pdf_batch.BillPage, others: set[str]) -> None:
        if page.account_no == PEOPLE[2][0]:
            raise pdf_batch.BatchCheckFailed("a split shows the wrong bill")
        checked(pdf, page, others)

    monkeypatch.setattr(pdf_batch, "check_split", picky)
    with caplog.at_level(logging.WARNING, logger=rendering.__name__):
        result = rendering.render_batch([*snapshots[:2], bad, *snapshots[2:]])
    assert (result.batched, result.fallbacks) == (0, 1)
    assert any("one by one" in r.getMessage() for r in caplog.records)
    bad_outcome = result.pdfs.pop(2)
    assert isinstance(bad_outcome, rendering.RenderFailed) and "meter" in str(bad_outcome)
    for snapshot, pdf in zip(snapshots, result.pdfs, strict=True):
        assert isinstance(pdf, bytes)
        assert pdf == rendering.render_pdf(snapshot)  # printed alone: exactly the single bill's bytes
    with pytest.raises(rendering.RenderFailed, match="meter"):
        rendering.render_pdfs([snapshots[0], bad])


def test_without_chromium_a_batch_is_printed_by_weasyprint_bill_by_bill() -> None:
    before = rendering.engine_config()
    rendering.configure(rendering.EngineConfig(engine="weasyprint"))
    try:
        snapshots = people_bills()[:2]
        result = rendering.render_batch(snapshots)
        assert (result.batched, result.fallbacks) == (0, 0)
        for snapshot, pdf in zip(snapshots, result.pdfs, strict=True):
            assert isinstance(pdf, bytes) and pdf == rendering.weasyprint_pdf(snapshot)
    finally:
        rendering.configure(before)


def test_bills_with_different_heads_never_share_a_document() -> None:
    first, second = (pdf_batch.page_parts(rendering._chromium_page(s), s) for s in people_bills()[:2])
    assert first.head == second.head and "<title>" not in first.head  # the title names the bill: set aside
    assert first.title == f"Счёт-квитанция {PEOPLE[0][0]} за март 2025"
    document = pdf_batch.batch_document([first, second])
    assert PEOPLE[0][0] not in document.split("<body>")[0]  # the document's head names no bill
    other = dataclasses.replace(second, head=second.head.replace("<style>", "<style>p{}"))
    with pytest.raises(ValueError, match="different heads"):
        pdf_batch.batch_document([first, other])


def _print_at_low_priority(niceness: int) -> tuple[int, list[int]]:
    """In a process of its own at `niceness`: print a few pages, return its own and its browser
    processes' niceness."""
    os.nice(niceness)
    engine = chromium.ChromiumPdf()
    try:
        for i in range(6):
            engine.render(f"<html><body><p>Счёт {i}</p></body></html>")
        values = []
        own_group = scheduling_group()
        for pid in chromium.descendants():
            with contextlib.suppress(OSError):
                values.append(os.getpriority(os.PRIO_PROCESS, pid))
            group = scheduling_group(pid)
            if group is not None and (
                own_group is None or group.name != own_group.name
            ):  # Chromium's session
                values.append(group.niceness)
        return os.getpriority(os.PRIO_PROCESS, 0), values
    finally:
        engine.close()


@needs_chromium
def test_the_browser_of_a_low_priority_render_process_stays_at_that_priority() -> None:
    """Render processes run niced (`render_niceness`); Chromium, run as root, would raise its own
    processes' priority (measured: renderers at 0, a helper at -8) and compete with the billing run."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        own, browser = pool.submit(_print_at_low_priority, 7).result(timeout=180)
    assert own == 7 and browser
    assert min(browser) >= own, f"browser processes at {sorted(browser)}, the render process at {own}"


def _scheduling_group_of_a_render_process(niceness: int) -> tuple[bool, SchedulingGroup | None]:
    from service_runtime.scheduling import lower_cpu_priority

    done = lower_cpu_priority(niceness, own_session=True)
    assert os.getpriority(os.PRIO_PROCESS, 0) == niceness
    return done, scheduling_group()


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="the kernel has no autogroups")
def test_a_render_process_gets_a_scheduling_group_of_its_own_at_its_niceness() -> None:
    """With autogroups, niceness only ranks the processes of one session: the render process starts its
    own session, whose group runs at the render niceness (and so yields to billing runs elsewhere). This
    holds also where the test runs in the kernel's default group (no group of its own: an empty file)."""
    ours = scheduling_group()
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        done, group = pool.submit(_scheduling_group_of_a_render_process, 9).result(timeout=60)
    assert done and group is not None and group.niceness == 9, group
    assert ours is None or group.name != ours.name, (ours, group)  # a group of its own, not the parent's
