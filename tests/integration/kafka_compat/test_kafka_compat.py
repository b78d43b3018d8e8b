"""The broker version we run (deploy/local/kafka/pom.xml) works with the clients we use:
aiokafka 0.14 (idempotent producer, consumer groups, admin) and faust-streaming (an agent end to end)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from service_runtime.kafka import idempotent_producer
from tests.support.stack import REPO, produce, read_topic


def test_versions_are_the_ones_we_pinned() -> None:
    pom = (REPO / "deploy/local/kafka/pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert kafka_version is not None and kafka_version.group(1).startswith("4.0.")
    assert version("aiokafka").startswith("0.14.")
    assert version("faust-streaming")


async def test_aiokafka_idempotent_producer_and_consumer_group(
    kafka_bootstrap: str, make_topics: Any
) -> None:
    [topic] = await make_topics(f"test.compat.{uuid.uuid4().hex[:8]}", partitions=2)
    producer = idempotent_producer(kafka_bootstrap, client_id="compat")
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, value=f"m{i}".encode(), key=f"k{i % 4}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(seen) < 20 and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen += [r.value for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(20))


async def test_faust_agent_round_trip(kafka_bootstrap: str, make_topics: Any, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    source, sink = await make_topics(f"test.faust.in.{suffix}", f"test.faust.out.{suffix}", partitions=1)
    env = {
        **os.environ,
        "FAUST_APP_ID": f"faust-compat-{suffix}",
        "FAUST_IN": source,
        "FAUST_OUT": sink,
        "FAUST_DATADIR": str(tmp_path / "faust"),
        "PYTHONPATH": str(REPO),
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "faust",
        "-A",
        "tests.integration.kafka_compat.faust_echo_app",
        "worker",
        "-l",
        "warn",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await produce(kafka_bootstrap, source, [(b"a", b"hello"), (b"b", b"kafka 4")])
        out: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 90
        while len(out) < 2 and worker.returncode is None and asyncio.get_running_loop().time() < deadline:
            out = await read_topic(kafka_bootstrap, sink, expect=2, timeout_s=5)
        if len(out) < 2:
            worker.terminate()
            output, _ = await worker.communicate()
            raise AssertionError(
                f"faust produced {len(out)} of 2 messages:\n{output.decode(errors='replace')[-3000:]}"
            )
        assert sorted(r.value for r in out) == [b"HELLO", b"KAFKA 4"]
    finally:
        if worker.returncode is None:
            worker.terminate()
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
