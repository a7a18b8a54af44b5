"""Breakwater's partitioner is Kafka's default one: the edge's producer (aiokafka) and dedup agree."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from services.kafka.partitioner import default_partition, murmur2


@given(st.binary(max_size=200))
def test_murmur2_is_the_java_clients(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@given(key=st.binary(max_size=120), partitions=st.integers(1, 64))
def test_a_key_lands_where_aiokafka_puts_it(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert default_partition(key, partitions) == DefaultPartitioner()(key, every, every)
