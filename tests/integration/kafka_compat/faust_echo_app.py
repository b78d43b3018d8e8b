"""A minimal faust-streaming app for the compatibility test: reads one topic, writes upper-cased text to another."""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["FAUST_APP_ID"],
    broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    web_enabled=False,
    topic_replication_factor=1,
    topic_partitions=1,
    processing_guarantee="at_least_once",
    datadir=os.environ["FAUST_DATADIR"],  # not the current directory
)
source = app.topic(os.environ["FAUST_IN"], value_serializer="raw", key_serializer="raw")
sink = app.topic(os.environ["FAUST_OUT"], value_serializer="raw", key_serializer="raw")


@app.agent(source)
async def echo(stream: faust.StreamT[bytes]) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value.upper())
