"""DataLoader worker processes: ordering, sharding, errors, deaths, timeouts, cleanup, seeding."""

import gc
import glob
import os
import random
import signal
import threading
import time

import kiln
import numpy as np
import pytest
from kiln.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    TensorDataset,
    _random,
    get_worker_info,
    multiprocessing_iter,
    shared_memory,
)


def shm_files():
    return glob.glob(f"/dev/shm/kiln_dl_{os.getpid()}_*")


def children():
    """Child processes, less multiprocessing's own helpers (spawn's resource tracker)."""
    pids = []
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(path) as f:
                pids += [int(p) for p in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass  # that thread exited between the listing and the read
    return [p for p in pids if not _is_mp_helper(p)]


def _is_mp_helper(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return b"resource_tracker" in cmd or b"forkserver" in cmd


def wait_until(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


@pytest.fixture(autouse=True)
def nothing_left_behind():
    assert not children() and not shm_files()
    yield
    gc.collect()
    assert wait_until(lambda: not children()), f"worker processes left: {children()}"
    assert not shm_files(), f"shared memory left: {shm_files()}"


class Images(Dataset):
    """Samples are (float32 3x4 image, int label); ``fail``/``kill``/``hang`` misbehave at one index."""

    def __init__(self, n=40, fail=None, kill=None, segv=None, hang=None):
        self.x = np.arange(n * 12, dtype=np.float32).reshape(n, 3, 4)
        self.fail, self.kill, self.segv, self.hang = fail, kill, segv, hang

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.fail:
            raise ValueError(f"bad sample {i}")
        if i == self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        if i == self.segv:
            import ctypes

            ctypes.string_at(0)
        if i == self.hang:
            threading.Event().wait(60)
        return self.x[i], i


class WhoAmI(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return {
            "pid": os.getpid(),
            "id": info.id,
            "seed": info.seed,
            "py": random.random(),
            "np": float(np.random.rand()),
            "i": i,
        }


class Shards(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        return iter(range(info.id, self.n, info.num_workers))


def as_lists(batches):
    return [(b[0].numpy().tolist(), b[1].tolist()) for b in batches]


@pytest.mark.parametrize("kw", [{"batch_size": 6}, {"batch_size": 6, "drop_last": True}])
def test_order_matches_single_process(kw):
    ds = Images(27)
    assert as_lists(DataLoader(ds, num_workers=2, **kw)) == as_lists(DataLoader(ds, **kw))


def test_unbatched_order_matches_dataset():
    ds = Images(9)
    got = [(x.numpy().tolist(), int(y)) for x, y in DataLoader(ds, batch_size=None, num_workers=2)]
    assert got == [(ds.x[i].tolist(), i) for i in range(9)]


def test_shuffled_order_matches_single_process_with_same_seed():
    ds = Images(40)
    single = as_lists(
        DataLoader(ds, batch_size=8, shuffle=True, generator=_random.new_generator(11))
    )
    multi = as_lists(
        DataLoader(
            ds, batch_size=8, shuffle=True, num_workers=2, generator=_random.new_generator(11)
        )
    )
    assert single == multi
    assert sorted(sum((y for _, y in multi), [])) == list(range(40))


def test_batch_sampler_and_in_order_false():
    ds = Images(20)
    bs = [[5, 1], [19], [0, 2, 4, 6], [3]]
    got = [y.tolist() for _, y in DataLoader(ds, batch_sampler=bs, num_workers=2)]
    assert got == bs
    unordered = [y.tolist() for _, y in DataLoader(ds, batch_size=3, num_workers=2, in_order=False)]
    assert sorted(map(tuple, unordered)) == sorted(
        tuple(range(i, min(i + 3, 20))) for i in range(0, 20, 3)
    )


def test_iterable_dataset_sharded_with_worker_info():
    got = [b.tolist() for b in DataLoader(Shards(23), batch_size=4, num_workers=2)]
    assert sorted(sum(got, [])) == list(range(23))
    assert got[:2] == [[0, 2, 4, 6], [1, 3, 5, 7]]  # batches alternate between the workers
    # worker 0 yields 12 items (3 full batches), worker 1 yields 11 (2 full batches + 3 dropped)
    got = [b.tolist() for b in DataLoader(Shards(23), batch_size=4, num_workers=2, drop_last=True)]
    assert all(len(b) == 4 for b in got) and len(got) == 5
    got = list(DataLoader(Shards(23), batch_size=None, num_workers=2))
    assert sorted(got) == list(range(23))


def test_worker_info_and_seeds_reproducible():
    _random.manual_seed(123)
    a = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2))
    _random.manual_seed(123)
    b = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2))
    for x, y in zip(a, b):
        assert x["py"].tolist() == y["py"].tolist() and x["np"].tolist() == y["np"].tolist()
    ids = [int(x["id"][0]) for x in a]
    assert ids == [0, 1, 0, 1]  # round-robin assignment
    seeds = {int(x["id"][0]): int(x["seed"][0]) for x in a}
    assert seeds[1] == seeds[0] + 1
    assert a[0]["py"].tolist() != a[1]["py"].tolist()  # workers draw different streams
    _random.manual_seed(124)
    c = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2))
    assert c[0]["py"].tolist() != a[0]["py"].tolist()


def test_worker_exception_reraised_with_traceback():
    loader = DataLoader(Images(12, fail=7), batch_size=3, num_workers=2)
    it = iter(loader)
    assert next(it)[1].tolist() == [0, 1, 2]
    assert next(it)[1].tolist() == [3, 4, 5]
    with pytest.raises(ValueError) as e:
        next(it)
    msg = str(e.value)
    assert "Caught ValueError in DataLoader worker process 0" in msg
    assert "bad sample 7" in msg and "__getitem__" in msg and "Traceback" in msg
    assert next(it)[1].tolist() == [9, 10, 11]  # like PyTorch, the iteration can go on
    with pytest.raises(StopIteration):
        next(it)


def test_worker_init_fn_runs_and_its_errors_surface():
    seen = []

    def init(wid):
        if wid == 1:
            raise KeyError("no config for worker 1")

    loader = DataLoader(Images(8), batch_size=2, num_workers=2, worker_init_fn=init)
    it = iter(loader)
    seen.append(next(it)[1].tolist())
    with pytest.raises(KeyError, match="worker process 1"):
        next(it)
    assert seen == [[0, 1]]


@pytest.mark.parametrize("how,sig", [("kill", "SIGKILL"), ("segv", "SIGSEGV")])
def test_dead_worker_is_named_with_its_signal(how, sig):
    loader = DataLoader(Images(20, **{how: 9}), batch_size=2, num_workers=2)
    start = time.monotonic()
    with pytest.raises(
        RuntimeError, match=rf"DataLoader worker 0 \(pid \d+\) was killed by signal {sig}"
    ) as e:
        for _ in loader:
            pass
    assert "batches it still owed" in str(e.value)
    assert time.monotonic() - start < 30


def test_timeout_names_worker_and_what_it_was_doing(monkeypatch):
    monkeypatch.setattr(multiprocessing_iter, "_JOIN_SECONDS", 0.5)
    loader = DataLoader(Images(8, hang=5), batch_size=2, num_workers=2, timeout=0.5)
    it = iter(loader)
    assert next(it)[1].tolist() == [0, 1]
    assert next(it)[1].tolist() == [2, 3]
    with pytest.raises(
        RuntimeError, match=r"timed out after 0.5 seconds waiting for batch 2 from worker 0"
    ) as e:
        next(it)
    assert "fetching sample 5 (dataset[5]) of batch 2" in str(e.value)
    del it


def test_persistent_workers_across_epochs():
    loader = DataLoader(WhoAmI(), batch_size=2, num_workers=2, persistent_workers=True)
    pids = []
    for epoch in range(3):
        batches = list(loader)
        assert sum((b["i"].tolist() for b in batches), []) == list(range(8))
        pids.append(sorted({int(p) for b in batches for p in b["pid"].tolist()}))
        assert len(children()) == 2
    assert pids[0] == pids[1] == pids[2]
    # an epoch cut short leaves stale batches in flight: the next epoch must not see them
    for b in loader:
        break
    assert sum((b["i"].tolist() for b in loader), []) == list(range(8))
    assert loader.time_to_first_batch is not None
    del loader, b


def test_persistent_iterable_dataset_restarts_each_epoch():
    loader = DataLoader(Shards(10), batch_size=3, num_workers=2, persistent_workers=True)
    for _ in range(2):
        assert sorted(sum((b.tolist() for b in loader), [])) == list(range(10))
    del loader


def test_early_break_leaves_nothing_behind():
    loader = DataLoader(Images(400), batch_size=4, num_workers=2, prefetch_factor=4)
    for i, (x, _) in enumerate(loader):
        if i == 3:
            break
    held = x  # a tensor from the loader keeps its memory after the workers are gone
    del x
    gc.collect()
    assert wait_until(lambda: not children())
    assert not shm_files()
    assert held.numpy()[0].tolist() == Images(400).x[12].tolist()


def test_exception_in_training_loop_leaves_nothing_behind():
    def train():
        for step, _ in enumerate(DataLoader(Images(400), batch_size=4, num_workers=2)):
            if step == 2:
                raise ZeroDivisionError("loss is nan")

    with pytest.raises(ZeroDivisionError):
        train()


def test_deleting_loader_with_persistent_workers_stops_them():
    loader = DataLoader(Images(100), batch_size=4, num_workers=2, persistent_workers=True)
    next(iter(loader))
    assert len(children()) == 2
    del loader


def test_nested_collate_through_workers():
    class Nested(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return {
                "img": np.full((2, 2), i, np.uint8),
                "meta": {"name": f"n{i}", "score": i / 2},
                "t": kiln.from_numpy(np.arange(3) + i),
                "pair": (i, np.float32(i)),
            }

    single = list(DataLoader(Nested(), batch_size=4))
    multi = list(DataLoader(Nested(), batch_size=4, num_workers=2))
    for s, m in zip(single, multi):
        assert m["meta"]["name"] == s["meta"]["name"]
        for key in ("img", "t"):
            assert m[key].dtype == s[key].dtype and m[key].tolist() == s[key].tolist()
        assert m["meta"]["score"].tolist() == s["meta"]["score"].tolist()
        assert [p.tolist() for p in m["pair"]] == [p.tolist() for p in s["pair"]]


def test_custom_collate_arrays_and_tensors_come_back():
    def collate(samples):
        xs = np.stack([s[0] for s in samples])
        return {"x": xs, "t": kiln.from_numpy(xs.copy()), "n": len(samples), "small": np.arange(3)}

    ds = Images(10)
    got = list(DataLoader(ds, batch_size=5, num_workers=2, collate_fn=collate))
    assert isinstance(got[1]["x"], np.ndarray) and got[1]["x"].tolist() == ds.x[5:].tolist()
    assert got[1]["t"].numpy().tolist() == ds.x[5:].tolist() and got[1]["n"] == 5
    assert got[0]["small"].tolist() == [0, 1, 2]


def test_not_enough_shared_memory_is_reported_before_workers_start(monkeypatch):
    monkeypatch.setattr(shared_memory, "free_bytes", lambda: 1000)
    loader = DataLoader(Images(40), batch_size=8, num_workers=2, prefetch_factor=3)
    with pytest.raises(
        RuntimeError, match=r"prefetch_factor \(3\) x num_workers \(2\) = 6 batches"
    ) as e:
        iter(loader)
    msg = str(e.value)
    assert "8 samples of 56 bytes" in msg and "MiB free" in msg
    assert not children()


def test_tensor_dataset_with_spawn_context():
    x = kiln.from_numpy(np.arange(8, dtype=np.float32).reshape(4, 2))
    y = kiln.from_numpy(np.arange(4))
    loader = DataLoader(
        TensorDataset(x, y), batch_size=2, num_workers=1, multiprocessing_context="spawn"
    )
    got = [(a.tolist(), b.tolist()) for a, b in loader]
    assert got == [([[0.0, 1.0], [2.0, 3.0]], [0, 1]), ([[4.0, 5.0], [6.0, 7.0]], [2, 3])]
    assert loader.time_to_first_batch > 0


def _private_dirty_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return sum(
            int(line.split()[1])
            for line in f
            if line.startswith(("Private_Dirty", "Private_Clean"))
        )


class Big(Dataset):
    def __init__(self):
        self.x = np.random.default_rng(0).integers(0, 255, (2048, 8192), dtype=np.uint8)  # 16 MiB

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], os.getpid()


def test_array_dataset_memory_does_not_grow_across_epochs():
    loader = DataLoader(Big(), batch_size=256, num_workers=2, persistent_workers=True)
    usage = []
    for _ in range(3):
        pids = set()
        for _, pid in loader:
            pids.update(pid.tolist())
        usage.append({p: _private_dirty_kib(p) for p in pids})
    for pid in usage[0]:
        assert usage[2][pid] - usage[0][pid] < 4096, usage  # KiB; the data set is 16 MiB
    del loader


def test_shm_check_leaves_random_streams_alone():
    class Noisy(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.random.rand() + random.random()

    np.random.seed(5)
    random.seed(5)
    expected = (np.random.rand(), random.random())
    np.random.seed(5)
    random.seed(5)
    list(DataLoader(Noisy(), batch_size=2, num_workers=1))
    assert (np.random.rand(), random.random()) == expected


def test_persistent_loader_recovers_after_a_worker_death():
    loader = DataLoader(Images(8, kill=5), batch_size=2, num_workers=2, persistent_workers=True)
    with pytest.raises(RuntimeError, match="SIGKILL"):
        list(loader)
    assert not children()
    loader.dataset.kill = None
    assert sum((y.tolist() for _, y in loader), []) == list(range(8))
    del loader


_ORPHAN_SCRIPT = """
import os, signal, sys
import numpy as np
from kiln.utils.data import DataLoader
loader = DataLoader(np.zeros((64, 4096), np.float32), batch_size=4, num_workers=2, prefetch_factor=4)
it = iter(loader)
next(it)
print(os.getpid(), " ".join(str(w.pid) for w in it._workers), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_workers_exit_and_clean_up_when_the_main_process_is_killed():
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    main_pid, *pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
        except OSError:
            return False

    def gone():
        return not any(alive(p) for p in pids)

    assert wait_until(gone, 15), "orphaned workers did not exit"
    assert wait_until(lambda: not glob.glob(f"/dev/shm/kiln_dl_{main_pid}_*"), 5)


def test_iterable_dataset_room_checked_at_first_batch(monkeypatch):
    monkeypatch.setattr(shared_memory, "free_bytes", lambda: 100)  # one 64-byte batch fits, 4 don't
    with pytest.raises(RuntimeError, match="the size of the first batch"):
        list(DataLoader(Shards(40), batch_size=8, num_workers=2))


class Growing(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.zeros(10 if i < 2 else 100_000)


def test_worker_out_of_shared_memory_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shared_memory, "free_bytes", lambda: 200_000)
    it = iter(DataLoader(Growing(), batch_size=2, num_workers=1))
    assert next(it).shape == (2, 10)
    with pytest.raises(RuntimeError, match=r"out of shared memory: a block of 1,600,000 bytes does not fit"):
        next(it)
    del it


def _shm_mappings():
    with open("/proc/self/maps") as f:
        return sum(f"kiln_dl_{os.getpid()}_" in line for line in f)


def test_batches_are_mapped_zero_copy_and_released_with_the_tensor():
    loader = DataLoader(Images(16), batch_size=8, num_workers=1)
    batches = list(loader)
    assert _shm_mappings() >= 2  # each batch's tensors live in the worker's shared-memory blocks
    assert not shm_files()  # ... whose names were unlinked when the epoch ended
    assert batches[1][0].numpy().tolist() == Images(16).x[8:].tolist()
    del batches
    assert _shm_mappings() == 0


class InfoProbe(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        info = get_worker_info()
        try:
            info.id = 5
            frozen = False
        except RuntimeError:
            frozen = True
        return f"{info!r}|{frozen}|{info.dataset is self}"


def test_worker_info_is_frozen_and_holds_the_workers_dataset():
    (batch,) = DataLoader(InfoProbe(), batch_size=2, num_workers=1)
    text, frozen, same = batch[0].split("|")
    assert text.startswith("WorkerInfo(id=0, num_workers=1, seed=") and frozen == "True" and same == "True"
