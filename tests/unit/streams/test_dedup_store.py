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


def test_a_reopened_database_reads_through_the_shared_budget_not_a_cache_of_its_own(tmp_path: Path) -> None:
    """A worker restart or a partition coming back reopens databases that already exist on disk."""
    memory = StoreMemory(BUDGET)
    store = PartitionStore(tmp_path / "dedup-0", memory)
    for i in range(50_000):
        store.first_sighting(b"stripe:evt_%09d" % i, 1_000 + i, i, 60_000_000)
    store.close()  # flushed: the keys are in table files, read through the block cache from now on

    memory = StoreMemory(24 << 20)  # not RocksDB's default 8 MB, so the capacity tells which cache it is
    store = PartitionStore(tmp_path / "dedup-0", memory)
    assert store._db.property_int_value("rocksdb.block-cache-capacity") == 24 << 20
    before = memory.usage()
    for i in range(0, 50_000, 7):
        assert store.get(b"stripe:evt_%09d" % i) is not None
    assert memory.usage() > before, "blocks read after a reopen went to a cache outside the budget"
    store.close()
