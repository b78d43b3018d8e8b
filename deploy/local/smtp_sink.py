"""Local SMTP sink for the one-machine stack.

It accepts every message on 127.0.0.1:1025 (no auth, no TLS), keeps it as an ``.eml`` file in
``SMTP_SINK_DIR`` and logs one JSON line per message. Nothing is ever relayed.

Each stored file is the message exactly as received, preceded by two envelope headers
(``X-MailFrom`` and ``X-RcptTo``) so that Bcc recipients stay visible. File names are
``<UTC timestamp>-<sequence>.eml``, so sorting by name sorts by arrival; a file is written to a
temporary name and renamed, so a reader never sees half a message.

Usage::

    uv run python deploy/local/smtp_sink.py              # serve (deploy/local/stack.sh does this)
    uv run python deploy/local/smtp_sink.py --list       # print date/from/to/subject of stored mail

In tests::

    from deploy.local.smtp_sink import read_messages, wait_for_message
    msgs = read_messages(os.environ["SMTP_SINK_DIR"])
"""

from __future__ import annotations

import argparse
import asyncio
import email
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1025
SUFFIX = ".eml"


def _default_dir() -> Path:
    return Path(os.environ.get("SMTP_SINK_DIR", ".local/mail"))


# --------------------------------------------------------------------------- reading


def _message_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))


def parse_message(data: bytes) -> EmailMessage:
    """Parse raw RFC 5322 bytes into an :class:`EmailMessage` (``policy.default``)."""
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def read_messages(directory: str | os.PathLike[str], containing: bytes | None = None) -> list[EmailMessage]:
    """All messages stored in ``directory``, oldest first (only those whose raw bytes hold ``containing``,
    if given: a cheap filter before parsing). A missing directory holds none."""
    raws = (path.read_bytes() for path in _message_files(Path(directory)))
    return [parse_message(raw) for raw in raws if containing is None or containing in raw]


def wait_for_message(
    directory: str | os.PathLike[str],
    predicate: Callable[[EmailMessage], bool],
    timeout: float = 10.0,
    interval: float = 0.1,
) -> EmailMessage:
    """Poll ``directory`` until a message matching ``predicate`` arrives; return the newest match.

    Raises :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        matches = [m for m in read_messages(directory) if predicate(m)]
        if matches:
            return matches[-1]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no matching message in {directory} after {timeout}s")
        time.sleep(interval)


# --------------------------------------------------------------------------- serving


class SinkHandler:
    """aiosmtpd handler that stores each message as an ``.eml`` file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence = itertools.count(self._last_sequence() + 1)

    def _last_sequence(self) -> int:
        last = 0
        for path in _message_files(self.directory):
            _, _, seq = path.stem.rpartition("-")
            if seq.isdigit():
                last = max(last, int(seq))
        return last

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        envelope_headers = (
            f"X-MailFrom: {envelope.mail_from or ''}\r\nX-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        path = await asyncio.to_thread(self._store, envelope_headers + content)
        message = parse_message(content)
        record = {
            "event": "smtp_sink.message_stored",
            "at": datetime.now(UTC).isoformat(),
            "file": path.name,
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "peer": str(session.peer),
        }
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return "250 Message accepted for delivery"

    def _store(self, data: bytes) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{next(self._sequence):06d}{SUFFIX}"
        final = self.directory / name
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, final)
        return final


async def serve(host: str, port: int, directory: Path) -> None:
    """Run the sink until SIGTERM or SIGINT."""
    handler = SinkHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, data_size_limit=50 * 1024 * 1024),
        host=host,
        port=port,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        json.dumps({"event": "smtp_sink.listening", "host": host, "port": port, "dir": str(directory)}),
        flush=True,
    )
    async with server:
        await stop.wait()
    print(json.dumps({"event": "smtp_sink.stopped"}), flush=True)


# --------------------------------------------------------------------------- CLI


def _arrival(path: Path) -> str:
    """Arrival time from a stored file's name (``20250131T120000123456Z-000001.eml``)."""
    stamp, _, _ = path.stem.partition("-")
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC).isoformat(timespec="seconds")
    except ValueError:
        return "-"


def list_messages(directory: Path) -> None:
    """Print one line per stored message: date, from, to, subject (tab-separated)."""
    files = _message_files(directory)
    for path in files:
        message = parse_message(path.read_bytes())
        date = message.get("Date") or _arrival(path)
        to = message.get("X-RcptTo") or message.get("To", "")
        print(f"{date}\t{message.get('From', '-')}\t{to}\t{message.get('Subject', '')}")
    print(f"{len(files)} message(s) in {directory}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default=os.environ.get("SMTP_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SMTP_PORT", DEFAULT_PORT)))
    parser.add_argument("--dir", type=Path, default=_default_dir(), help="where messages are stored")
    parser.add_argument("--list", action="store_true", help="list stored messages and exit")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.list:
        list_messages(directory)
        return 0
    asyncio.run(serve(args.host, args.port, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
