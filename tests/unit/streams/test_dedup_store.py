"""The dedup table's RocksDB memory: many keys on disk, a bounded budget in memory."""

from __future__ import annotations

from pathlib import Path

from streams.dedup_store import PartitionStore, StoreMemory

BUDGET = 8 << 20
PARTITIONS = 4
KEYS = 200_000  # about 25 MB of memtable entries without a budget, three times this one


def test_memory_stays_within_the_budget_while_every_key_is_still_found(tmp_path: Path) -> None:
    memory = StoreMemory(BUDGET)
    stores = [PartitionStore(tmp_path / f"dedup-{p}", memory) for p in range(PARTITIONS)]
    peak = 0
    for start in range(0, KEYS, 5_000):
        for i in range(start, start + 5_000):
            store = stores[i % PARTITIONS]
            assert store.first_sighting(b"stripe:evt_%09d" % i, 1_000 + i, i, 60_000_000) is not None
        for store in stores:
            store.flush()
        held = max(memory.usage(), sum(store.memtable_bytes() for store in stores))
        peak = max(peak, held)
    assert peak <= BUDGET * 1.1, f"RocksDB held {peak / 2**20:.1f} MiB, budget {BUDGET / 2**20:.0f} MiB"
    for i in range(0, KEYS, 997):  # flushed to disk, still there: a copy is a duplicate
        assert (
            stores[i % PARTITIONS].first_sighting(b"stripe:evt_%09d" % i, 2_000 + i, -1, 60_000_000) is None
        )
    for store in stores:
        store.close()
