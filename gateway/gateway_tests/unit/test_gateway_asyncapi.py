"""The back-office contract as AsyncAPI at /api/v1/asyncapi.json: generated from `contracts`, and the same
as what the back-office simulator's generator says about those topics (so the two can't drift)."""

from __future__ import annotations

import httpx

from backoffice_simulator.asyncapi import build_document as simulator_document
from contracts.registry import registry
from contracts.topics import INGRESS_TOPICS
from gateway.api import create_app
from gateway.asyncapi import build_document
from gateway.settings import GatewaySettings


def test_the_document_covers_every_back_office_topic_message_and_dead_letter_topic() -> None:
    doc = build_document()
    assert doc["asyncapi"] == "3.0.0"
    ingress = {t.name for t in INGRESS_TOPICS}
    assert set(doc["channels"]) == ingress | {f"{t}.dlq" for t in ingress}
    types = {s.event_type for s in registry.specs() if s.topic in ingress}
    listed = {name for t in ingress for name in doc["channels"][t]["messages"]}
    assert listed == types and len(types) == 14
    assert {op["action"] for op in doc["operations"].values()} == {"receive", "send"}
    # Every $ref resolves inside the document.
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    refs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    for ref in refs:
        target: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, ref
            target = target[part]


def test_it_agrees_with_the_simulators_generator() -> None:
    ours, theirs = build_document(), simulator_document(examples=False)
    for name, schema in ours["components"]["schemas"].items():
        assert theirs["components"]["schemas"][name] == schema, name
    for name, message in ours["components"]["messages"].items():
        other = theirs["components"]["messages"][name]
        for key in ("name", "title", "contentType", "payload", "headers", "x-schema-version"):
            assert message.get(key) == other.get(key), (name, key)
        if name != "DeadLetter":
            assert message["bindings"]["kafka"]["key"] == other["bindings"]["kafka"]["key"], name
    for channel, body in ours["channels"].items():
        assert body["bindings"] == theirs["channels"][channel]["bindings"], channel
        assert body["messages"] == theirs["channels"][channel]["messages"], channel


async def test_the_gateway_serves_it_publicly() -> None:
    app = create_app(GatewaySettings(cache_consumer_enabled=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as c:
        r = await c.get("/api/v1/asyncapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == build_document()
    assert "public" in r.headers["cache-control"]
