"""The producers' partitioner must put every key where aiokafka's default (the Java client's murmur2)
puts it: consumers and other clients rely on a stream's events sharing one partition. No stack needed."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from service_runtime.kafka import RememberingPartitioner

_remembering = RememberingPartitioner(max_keys=50)  # small: the clearing path runs too


@given(key=st.binary(min_size=0, max_size=40), partitions=st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_the_default_partitioner_puts_it(key: bytes, partitions: int) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert _remembering(key, all_partitions, all_partitions) == expected
    assert _remembering(key, all_partitions, all_partitions) == expected  # remembered, the same


def test_remembered_keys_are_bounded_and_keyless_messages_spread() -> None:
    partitioner = RememberingPartitioner(max_keys=10)
    for i in range(100):
        partitioner(f"ledger:{i}:electricity".encode(), [0, 1, 2], [0, 1, 2])
    assert len(partitioner._hashes) <= 10
    assert {partitioner(None, [0, 1, 2], [0, 1, 2]) for _ in range(200)} == {0, 1, 2}
