"""kiln.utils.data in one process: datasets, samplers, collation, DataLoader arguments."""

import collections
import random
import warnings

import kiln
import numpy as np
import pytest
from kiln.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    _random,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

torch = pytest.importorskip("torch")
tud = torch.utils.data


def gen(seed):
    return _random.new_generator(seed)


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i

    def __len__(self):
        return self.n


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def test_tensor_dataset_and_mismatch():
    x = kiln.from_numpy(np.arange(12.0).reshape(6, 2))
    y = kiln.from_numpy(np.arange(6))
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    a, b = ds[4]
    assert a.tolist() == [8.0, 9.0] and b.item() == 4
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(x, kiln.from_numpy(np.arange(5)))


def test_concat_chain_subset_stack():
    c = Range(3) + Range(4)
    assert isinstance(c, ConcatDataset) and len(c) == 7
    assert [c[i] for i in range(7)] == [0, 1, 2, 0, 1, 2, 3]
    assert c[-1] == 3 and c.cumulative_sizes == [3, 7]
    with pytest.raises(ValueError, match="absolute value"):
        c[-8]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([Stream(2)])
    chain = Stream(2) + Stream(3)
    assert isinstance(chain, ChainDataset) and list(chain) == [0, 1, 0, 1, 2] and len(chain) == 5
    s = Subset(Range(10), [9, 3, 5])
    assert (
        len(s) == 3 and [s[i] for i in range(3)] == [9, 3, 5] and s.__getitems__([2, 0]) == [5, 9]
    )
    st = StackDataset(Range(3), Range(3))
    assert st[1] == (1, 1) and st.__getitems__([0, 2]) == [(0, 0), (2, 2)]
    sd = StackDataset(a=Range(2), b=Range(2))
    assert sd[1] == {"a": 1, "b": 1}
    with pytest.raises(ValueError, match="Size mismatch"):
        StackDataset(Range(2), Range(3))
    with pytest.raises(ValueError, match="both"):
        StackDataset(Range(2), b=Range(2))


def test_random_split_counts_and_fractions():
    parts = random_split(Range(10), [3, 7], generator=gen(0))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    again = random_split(Range(10), [3, 7], generator=gen(0))
    assert again[0].indices == parts[0].indices
    parts = random_split(Range(11), [0.5, 0.3, 0.2], generator=gen(1))
    assert [len(p) for p in parts] == [
        6,
        3,
        2,
    ]  # floor: 5,3,2; the leftover goes to the first split
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(Range(10), [3, 3])
    with pytest.warns(UserWarning, match="index 1 is 0"):
        random_split(Range(2), [0.9, 0.1])


def test_samplers():
    assert list(SequentialSampler(Range(4))) == [0, 1, 2, 3]
    perm = list(RandomSampler(Range(50), generator=gen(3)))
    assert sorted(perm) == list(range(50)) and perm != list(range(50))
    assert perm == list(RandomSampler(Range(50), generator=gen(3)))
    draws = list(RandomSampler(Range(5), replacement=True, num_samples=70, generator=gen(0)))
    assert len(draws) == 70 and set(draws) <= set(range(5))
    longer = list(RandomSampler(Range(5), num_samples=12, generator=gen(0)))
    assert len(longer) == 12 and sorted(longer[:5]) == list(range(5))
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(Range(5), num_samples=0)
    with pytest.raises(TypeError, match="replacement"):
        RandomSampler(Range(5), replacement=1)
    sub = list(SubsetRandomSampler([10, 20, 30], generator=gen(0)))
    assert sorted(sub) == [10, 20, 30]
    w = list(WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 200, generator=gen(0)))
    assert set(w) == {1, 3} and w.count(3) > w.count(1)
    nr = list(WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False, generator=gen(0)))
    assert sorted(nr) == [0, 1, 2]
    with pytest.raises(ValueError, match="1d"):
        WeightedRandomSampler([[1.0]], 1)
    assert list(BatchSampler(range(7), 3, False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(range(7), 3, True)) == [[0, 1, 2], [3, 4, 5]]
    assert len(BatchSampler(range(7), 3, False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(range(7), 0, False)
    with pytest.raises(ValueError, match="drop_last"):
        BatchSampler(range(7), 2, 1)


@pytest.mark.parametrize(
    "n,replicas,shuffle,drop_last",
    [(10, 3, False, False), (10, 3, False, True), (11, 4, True, False), (5, 8, False, False)],
)
def test_distributed_sampler_matches_torch_partition(n, replicas, shuffle, drop_last):
    ours = [
        list(DistributedSampler(Range(n), replicas, r, shuffle=shuffle, drop_last=drop_last))
        for r in range(replicas)
    ]
    ref = [
        list(tud.DistributedSampler(range(n), replicas, r, shuffle=False, drop_last=drop_last))
        for r in range(replicas)
    ]
    assert [len(o) for o in ours] == [len(r) for r in ref]
    if not shuffle:
        assert ours == ref
    else:  # every rank sees the same permutation: together they cover the data set
        covered = sorted(i for o in ours for i in o)
        assert set(covered) == set(range(n)) and len(covered) == len(ours[0]) * replicas


def test_distributed_sampler_set_epoch():
    s = DistributedSampler(Range(40), num_replicas=2, rank=0, seed=5)
    e0 = list(s)
    assert e0 == list(DistributedSampler(Range(40), num_replicas=2, rank=0, seed=5))
    s.set_epoch(1)
    assert list(s) != e0
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(Range(4), num_replicas=2, rank=2)


def _same(a, b):
    """kiln batch == torch batch, recursively (tensors by value and dtype)."""
    if isinstance(b, torch.Tensor):
        assert isinstance(a, kiln.Tensor), type(a)
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(b, dict):
        assert type(a) is type(b) and a.keys() == b.keys()
        for k in b:
            _same(a[k], b[k])
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


Point = collections.namedtuple("Point", "x y")


def test_default_collate_nested_matches_torch():
    rng = np.random.default_rng(0)
    samples = [
        {
            "img": rng.standard_normal((2, 3)).astype(np.float32),
            "label": i,
            "w": 0.5 * i,
            "flag": bool(i % 2),
            "name": f"s{i}",
            "np_scalar": np.float32(i),
            "pair": (i, [i * 2.0, np.int32(i)]),
            "pt": Point(i, np.arange(3, dtype=np.int16) + i),
        }
        for i in range(4)
    ]
    ours = default_collate(samples)
    ref = tud.default_collate(samples)
    _same(ours, ref)
    t = [kiln.from_numpy(np.full((2,), i, np.int64)) for i in range(3)]
    np.testing.assert_array_equal(default_collate(t).numpy(), [[0, 0], [1, 1], [2, 2]])


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="stack expects"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_default_convert_matches_torch():
    data = {
        "a": np.arange(3),
        "b": (np.float64(2.0), "s"),
        "c": [np.ones((2, 2), np.float32)],
        "p": Point(1, np.zeros(1)),
    }
    _same(default_convert(data), tud.default_convert(data))


def test_single_process_loader_matches_torch():
    x = np.arange(30, dtype=np.float32).reshape(15, 2)
    for kw in ({"batch_size": 4}, {"batch_size": 4, "drop_last": True}, {"batch_size": None}):
        ours = [b.numpy().tolist() for b in DataLoader(x, **kw)]
        ref = [b.numpy().tolist() for b in tud.DataLoader(x, **kw)]
        assert ours == ref
    bs = [[3, 1], [0], [14, 2, 5]]
    assert [b.numpy().tolist() for b in DataLoader(x, batch_sampler=bs)] == [
        x[i].tolist() for i in bs
    ]
    assert (
        len(DataLoader(x, batch_size=4)) == 4
        and len(DataLoader(x, batch_size=4, drop_last=True)) == 3
    )
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == [
        [0, 1, 2],
        [3, 4, 5],
    ]
    assert len(DataLoader(Stream(7), batch_size=3)) == 3


def test_loader_shuffle_reproducible_from_seed():
    x = np.arange(64)
    _random.manual_seed(7)
    a = [b.tolist() for b in DataLoader(x, batch_size=8, shuffle=True)]
    _random.manual_seed(7)
    b = [b.tolist() for b in DataLoader(x, batch_size=8, shuffle=True)]
    assert a == b and sorted(sum(a, [])) == list(range(64)) and sum(a, []) != list(range(64))
    c = [b.tolist() for b in DataLoader(x, batch_size=8, shuffle=True, generator=gen(1))]
    d = [b.tolist() for b in DataLoader(x, batch_size=8, shuffle=True, generator=gen(1))]
    assert c == d


def test_loader_argument_errors():
    x = np.arange(10)
    cases = [
        ({"num_workers": -1}, "non-negative"),
        ({"timeout": -1}, "timeout"),
        ({"prefetch_factor": 2}, "prefetch_factor"),
        ({"persistent_workers": True}, "persistent_workers"),
        ({"sampler": SequentialSampler(x), "shuffle": True}, "mutually exclusive with shuffle"),
        ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler"),
        ({"batch_size": None, "drop_last": True}, "drop_last"),
        ({"multiprocessing_context": "fork"}, "num_workers > 0"),
        ({"num_workers": 1, "multiprocessing_context": "nope"}, "start method"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            DataLoader(x, **kw)
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="sampler"):
        DataLoader(Stream(3), sampler=[0])
    loader = DataLoader(x, batch_size=2)
    with pytest.raises(ValueError, match="should not be set"):
        loader.batch_size = 3


@pytest.mark.skipif(kiln.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_pin_memory_without_gpu_warns_and_batches_stay_unpinned():
    x = np.arange(6, dtype=np.float32)
    with pytest.warns(UserWarning, match="no accelerator is found"):
        batches = list(DataLoader(x, batch_size=3, pin_memory=True))
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]
    assert not any(b.is_pinned() for b in batches)


def test_pin_memory_keeps_container_types():
    from collections import OrderedDict, namedtuple

    from kiln.utils.data.pin_memory import pin_memory

    class Pinnable:
        def pin_memory(self):
            return "pinned"

    Pair = namedtuple("Pair", "a b")
    data = {"x": [Pinnable(), (Pinnable(), 3)], "y": Pair(Pinnable(), "text"),
            "z": OrderedDict(k=Pinnable())}
    got = pin_memory(data)
    assert got == {"x": ["pinned", ("pinned", 3)], "y": Pair("pinned", "text"),
                   "z": OrderedDict(k="pinned")}
    assert type(got["y"]) is Pair and type(got["z"]) is OrderedDict
    assert pin_memory(b"raw") == b"raw" and pin_memory(None) is None


def test_time_to_first_batch_and_worker_info_in_main():
    loader = DataLoader(np.arange(4), batch_size=2)
    assert loader.time_to_first_batch is None
    next(iter(loader))
    assert loader.time_to_first_batch >= 0
    assert get_worker_info() is None


def test_large_python_list_warns_with_workers():
    class Listy(Dataset):
        def __init__(self):
            self.samples = [("f", i) for i in range(100_001)]

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            return self.samples[i][1]

    with pytest.warns(UserWarning, match="copy-on-read"):
        DataLoader(Subset(Listy(), np.arange(5)), num_workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataLoader(Listy(), num_workers=0)
        DataLoader(np.zeros(10), num_workers=1)


def test_python_random_untouched_by_single_process_loader():
    random.seed(3)
    before = random.random()
    random.seed(3)
    list(DataLoader(np.arange(5), batch_size=2, shuffle=True))
    assert random.random() == before


@pytest.mark.skipif(not hasattr(kiln, "manual_seed"), reason="kiln has no random ops in this build")
def test_shuffle_reproducible_from_kiln_manual_seed():
    x = np.arange(32)
    kiln.manual_seed(9)
    a = [b.tolist() for b in DataLoader(x, batch_size=4, shuffle=True)]
    kiln.manual_seed(9)
    b = [b.tolist() for b in DataLoader(x, batch_size=4, shuffle=True)]
    assert a == b
    g = kiln.Generator().manual_seed(2)
    c = list(RandomSampler(range(10), generator=g))
    assert c == list(RandomSampler(range(10), generator=kiln.Generator().manual_seed(2)))
