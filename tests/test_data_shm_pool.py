"""The pool of shared-memory blocks DataLoader workers reuse (Note [block pool] in shared_memory)."""

import gc
import os

import kiln
import numpy as np
from kiln.utils.data import DataLoader, Dataset, shared_memory
from test_data_workers import (  # noqa: F401 (nothing_left_behind: the autouse leak check)
    Images,
    _shm_mappings,
    nothing_left_behind,
    shm_files,
)


def worker_blocks(prefix_tail="t_", pool_batches=2):
    return shared_memory._WorkerBlocks(f"kiln_dl_{os.getpid()}_{prefix_tail}", pool_batches)


def test_worker_pool_reuses_returned_blocks_and_falls_back_to_one_offs():
    blocks = worker_blocks()
    try:
        sent = []
        for _ in range(3):  # pool of 2 batches x 1 block: the third is a one-off
            block = blocks.take(10_000)
            blocks.release_unsent({block.name})
            sent.append(block)
        assert [b.pooled for b in sent] == [True, True, False]
        assert sent[0].size == sent[1].size == -(-10_000 // 4096) * 4096
        blocks.recycle([sent[1].name])
        again = blocks.take(9_000)  # fits (at most twice the size): reused, same file
        assert again is sent[1] and len(shm_files()) == 3
        blocks.release_unsent(set())  # not sent after all: free again
        assert sent[1].name in blocks.free
    finally:
        shared_memory.remove_prefixed(blocks.prefix)


def test_worker_pool_evicts_a_free_block_of_the_wrong_size():
    blocks = worker_blocks(pool_batches=1)
    try:
        small = blocks.take(100)
        blocks.release_unsent(set())
        big = blocks.take(1_000_000)  # the free block is too small and the pool is full
        assert big.pooled and blocks.evicted == [small.name]
        assert not os.path.exists(os.path.join(shared_memory.SHM_DIR, small.name))
    finally:
        shared_memory.remove_prefixed(blocks.prefix)


def test_receiver_returns_a_block_when_the_batch_dies():
    blocks = worker_blocks()
    saved = shared_memory._blocks
    shared_memory._blocks = blocks
    receiver = shared_memory.Receiver(num_workers=1)
    try:
        x = shared_memory.empty((4, 3), np.float32)
        x[:] = np.arange(12).reshape(4, 3)
        packed = shared_memory.pack({"x": kiln.from_numpy(x), "n": 4})
        blocks.release_unsent({b[0] for b in packed[0]})
        got = receiver.unpack(0, packed)
        assert got["x"].tolist() == x.tolist() and got["n"] == 4
        assert receiver.take_returned(0) == ()  # the batch is alive
        view = got["x"][1:]  # a view keeps the block lent too
        del got
        gc.collect()
        assert receiver.take_returned(0) == ()
        assert view.tolist() == x[1:].tolist()
        del view
        gc.collect()
        assert receiver.take_returned(0) == (packed[0][0][0],)
        assert len(receiver.maps) == 1  # the main process keeps its mapping for the next batch
        receiver.close()
        assert not receiver.maps
    finally:
        shared_memory._blocks = saved
        shared_memory.remove_prefixed(blocks.prefix)


class Sized(Dataset):
    """Sample i: an array of i // 8 + 1 rows, all equal to i (batches that keep growing)."""

    def __len__(self):
        return 120

    def __getitem__(self, i):
        return np.full((i // 8 + 1, 1000), i, np.float64)


def spy_blocks(monkeypatch):
    """The names of the blocks batches arrive in (and "evicted <name>" for evictions), filled as
    the main process receives them."""
    names = set()
    unpack = shared_memory.Receiver.unpack

    def spy(self, worker, packed):
        names.update(b[0] for b in packed[0])
        names.update(f"evicted {name}" for name in packed[1])
        return unpack(self, worker, packed)

    monkeypatch.setattr(shared_memory.Receiver, "unpack", spy)
    return names


def test_blocks_are_reused_across_batches(monkeypatch):
    names = spy_blocks(monkeypatch)
    assert sum(len(y) for _, y in DataLoader(Images(400), batch_size=4, num_workers=1)) == 400
    # 100 batches, 2 blocks each (images, labels): the pool holds (2 + 3) batches' worth
    assert 0 < len(names) <= 10, sorted(names)
    assert _shm_mappings() == 0


def test_batches_kept_by_the_user_are_never_overwritten(monkeypatch):
    names = spy_blocks(monkeypatch)
    kept = list(DataLoader(Images(200), batch_size=4, num_workers=2))
    assert len(names) == 2 * 50  # more batches than the pools hold: one-off blocks for the rest
    ds = Images(200)
    for k, (x, y) in enumerate(kept):
        assert x.numpy().tolist() == ds.x[4 * k : 4 * k + 4].tolist()
        assert y.tolist() == list(range(4 * k, 4 * k + 4))


def test_batches_of_varying_size_come_back_intact(monkeypatch):
    names = spy_blocks(monkeypatch)
    first = None
    for i, x in enumerate(
        DataLoader(Sized(), batch_size=1, num_workers=2, collate_fn=lambda s: s[0])
    ):
        assert x.shape == (i // 8 + 1, 1000) and (x == i).all()
        if i == 3:
            first = x  # held across the rest of the epoch: its block is never lent again
    assert (first == 3).all()
    assert any(name.startswith("evicted") for name in names)  # blocks of the wrong size made room


def test_persistent_workers_keep_their_pool_and_release_it_with_the_loader():
    loader = DataLoader(Images(64), batch_size=8, num_workers=2, persistent_workers=True)
    for _ in range(3):
        assert sum(len(y) for _, y in loader) == 64
    # 2 workers x 2 blocks x 5 batches stay mapped between epochs, their files already unlinked
    assert 0 < _shm_mappings() <= 2 * 2 * 5 and not shm_files()
    del loader
    gc.collect()
    assert _shm_mappings() == 0
