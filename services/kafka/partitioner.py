"""Kafka's default partitioner for a keyed record: the partition the Java client and aiokafka pick.

Every Breakwater topic is keyed the same way from the edge onwards (the edge's aiokafka producer picks
partitions with it), so dedup finds the partition that owns an identity with it and the transactional
loop's batch sender partitions outputs with it.
"""

from __future__ import annotations

import struct

__all__ = ["default_partition", "murmur2"]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's and aiokafka's partitioner), on 4-byte words at once.

    Equal to ``aiokafka.partitioner.murmur2`` (a unit test checks it on generated input) at half of
    its cost: dedup hashes every inbound record's identity, and the loop every keyed output.
    """
    length = len(data)
    h = 0x9747B28C ^ length
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def default_partition(key: bytes, partitions: int) -> int:
    """The partition of ``partitions`` that Kafka's default partitioner gives a record keyed ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
