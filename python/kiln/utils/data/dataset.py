"""Datasets: the map-style and iterable protocols and their combinators (torch.utils.data names)."""

import bisect
import itertools
import math
import warnings

from kiln.utils.data import _random

__all__ = [
    "ChainDataset",
    "ConcatDataset",
    "Dataset",
    "IterableDataset",
    "StackDataset",
    "Subset",
    "TensorDataset",
    "random_split",
]


class Dataset:
    """A map-style dataset: ``__getitem__(index)`` and usually ``__len__``.

    May define ``__getitems__(indices)`` to fetch a whole batch at once; the
    DataLoader then calls it instead of ``__getitem__`` once per index.
    """

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: ``__iter__`` yields samples.

    With ``num_workers > 0`` each worker gets a copy of the dataset and runs its
    own ``__iter__``; use :func:`get_worker_info` inside ``__iter__`` to give
    each worker its own shard, otherwise every sample comes back once per worker.
    """

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the ``index``-th rows of each tensor (sizes along dim 0 must agree)."""

    def __init__(self, *tensors):
        if tensors and any(len(t) != len(tensors[0]) for t in tensors):
            sizes = [len(t) for t in tensors]
            raise ValueError(
                f"[TensorDataset] Size mismatch between tensors: sizes along dim 0 are {sizes}"
            )
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


class StackDataset(Dataset):
    """Zips datasets of equal length: ``StackDataset(a, b)[i] == (a[i], b[i])`` and
    ``StackDataset(x=a, y=b)[i] == {"x": a[i], "y": b[i]}``."""

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError(
                "[StackDataset] Supported either tuple- (via args) or dict- (via kwargs) like "
                "input/output, but both types are given."
            )
        datasets = args or tuple(kwargs.values())
        if not datasets:
            raise ValueError("[StackDataset] At least one dataset should be passed")
        self._length = len(datasets[0])
        if any(len(d) != self._length for d in datasets):
            raise ValueError(
                f"[StackDataset] Size mismatch between datasets: {[len(d) for d in datasets]}"
            )
        self.datasets = args if args else dict(kwargs)

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices):
        items = (
            self.datasets.items() if isinstance(self.datasets, dict) else enumerate(self.datasets)
        )
        columns = {}
        for key, d in items:
            if callable(getattr(d, "__getitems__", None)):
                column = d.__getitems__(indices)
                if len(column) != len(indices):
                    raise ValueError(
                        f"[StackDataset] Nested dataset's output size mismatch. Expected "
                        f"{len(indices)}, got {len(column)}"
                    )
            else:
                column = [d[i] for i in indices]
            columns[key] = column
        if isinstance(self.datasets, dict):
            return [{k: c[j] for k, c in columns.items()} for j in range(len(indices))]
        return [tuple(c[j] for c in columns.values()) for j in range(len(indices))]

    def __len__(self):
        return self._length


class ConcatDataset(Dataset):
    """Map-style datasets one after another."""

    @staticmethod
    def cumsum(sequence):
        return list(itertools.accumulate(len(d) for d in sequence))

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("[ConcatDataset] datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("[ConcatDataset] ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError(
                    "[ConcatDataset] absolute value of index should not exceed dataset length"
                )
            idx += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another (chained lazily)."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(
                    f"[ChainDataset] ChainDataset only supports IterableDataset, got {type(d).__name__}"
                )
            yield from d

    def __len__(self):
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(
                    f"[ChainDataset] ChainDataset only supports IterableDataset, got {type(d).__name__}"
                )
            total += len(d)
        return total


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        mapped = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(mapped)
        return [self.dataset[i] for i in mapped]

    def __len__(self):
        return len(self.indices)


def _split_lengths(n, lengths):
    """Integer lengths from ``lengths``, which are counts or fractions summing to 1."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(
                    f"[random_split] Fraction at index {i} is not between 0 and 1: {frac}"
                )
            counts.append(math.floor(n * frac))
        for i in range(n - sum(counts)):  # leftover samples go round-robin from the first split
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(
                    f"[random_split] Length of split at index {i} is 0. This might result in an empty dataset."
                )
        return counts
    if sum(lengths) != n:
        raise ValueError(
            f"[random_split] Sum of input lengths ({sum(lengths)}) does not equal the length of the "
            f"input dataset ({n})!"
        )
    return list(lengths)


def random_split(dataset, lengths, generator=None):
    """Splits ``dataset`` into non-overlapping random :class:`Subset` s of the given
    lengths (counts, or fractions that sum to 1)."""
    counts = _split_lengths(len(dataset), lengths)
    indices = _random.randperm(sum(counts), generator)
    ends = list(itertools.accumulate(counts))
    return [Subset(dataset, indices[end - c : end]) for end, c in zip(ends, counts)]
