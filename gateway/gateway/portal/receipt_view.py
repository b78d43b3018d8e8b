"""The bill's two sides for the portal's «Просмотр», from receipts' JSON (GET /receipts/{period}).

The page renders the bill's snapshot itself (the portal's styles and language, no foreign HTML under
the portal's CSP); the payment QR code is drawn here from the snapshot's payload, as an SVG data URI.
"""

from __future__ import annotations

from typing import Any

import segno

from gateway.i18n import N_

NORM_LABELS: dict[tuple[bool, bool], str] = {
    (False, False): N_("без электроплиты"),
    (True, False): N_("с электроплитой"),
    (False, True): N_("одиноко проживающие пенсионеры и инвалиды, без электроплиты"),
    (True, True): N_("одиноко проживающие пенсионеры и инвалиды, с электроплитой"),
}


def receipt_sides(data: dict[str, Any]) -> dict[str, Any]:
    """{"front": ..., "back": ..., "all": ...}: the sections receipts names so, else all on the front."""
    front = data.get("front")
    back = data.get("back")
    if isinstance(front, dict) or isinstance(back, dict):
        return {"front": front or {}, "back": back or {}, "all": data}
    return {"front": data, "back": {}, "all": data}


def payment_qr(sides: dict[str, Any]) -> str | None:
    """The payment QR code of the front side as an SVG data URI (None without a payload)."""
    qr = sides["front"].get("qr") if isinstance(sides.get("front"), dict) else None
    payload = qr.get("payload") if isinstance(qr, dict) else None
    if not payload:
        return None
    uri: str = segno.make(str(payload), error="m", encoding="utf-8", micro=False).svg_data_uri(
        scale=4, border=2
    )
    return uri
