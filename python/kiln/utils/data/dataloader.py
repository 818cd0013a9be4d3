"""DataLoader: batches from a dataset, in this process or in supervised worker processes.

Same arguments and semantics as torch.utils.data.DataLoader. Differences on
purpose: with ``pin_memory=True`` batches are pinned in the main process as they
are handed out (PyTorch pins them in a helper thread); ``time_to_first_batch`` (seconds from
``iter(loader)``, worker start-up included, to the first batch) is set after
each epoch's first batch. The worker machinery is in ``multiprocessing_iter``.
"""

import itertools
import multiprocessing
import os
import time
import warnings
import weakref

from kiln.utils.data import _random
from kiln.utils.data.collate import default_collate, default_convert
from kiln.utils.data.dataset import IterableDataset
from kiln.utils.data.fetch import make_fetcher
from kiln.utils.data.pin_memory import pin_memory
from kiln.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader"]

# A dataset attribute that is a Python list/tuple longer than this gets a copy-on-read warning.
LARGE_PYTHON_LIST = 100_000


class _InfiniteConstantSampler(Sampler):
    """The "sampler" of an IterableDataset: None forever (the dataset decides when to stop)."""

    def __iter__(self):
        return itertools.repeat(None)


def _warn_large_python_lists(dataset, num_workers):
    """Warns about big Python lists in the dataset or the datasets it wraps (copy-on-read)."""
    todo, seen = [("dataset", dataset)], set()
    while todo:
        path, obj = todo.pop()
        if id(obj) in seen or not hasattr(obj, "__dict__"):
            continue
        seen.add(id(obj))
        for name, value in vars(obj).items():
            if name == "dataset":
                todo.append((f"{path}.dataset", value))
            elif name == "datasets" and isinstance(value, (list, tuple)):
                todo.extend((f"{path}.datasets[{i}]", d) for i, d in enumerate(value))
            elif isinstance(value, (list, tuple)) and len(value) > LARGE_PYTHON_LIST:
                warnings.warn(
                    f"DataLoader: {path}.{name} is a Python {type(value).__name__} of {len(value):,} objects. "
                    f"With num_workers={num_workers} every worker that reads it touches the objects' "
                    "reference counts, so the memory pages holding them are copied into each worker "
                    "(copy-on-read) and resident memory grows over the epoch. Keep per-sample data in "
                    "NumPy arrays or tensors (e.g. file names as one np.array of strings, or offsets "
                    "into one bytes buffer); see kiln.utils.data's module docstring.",
                    stacklevel=3,
                )


class DataLoader:
    """Iterates over ``dataset`` in batches. See torch.utils.data.DataLoader for the arguments.

    With ``num_workers > 0`` batches are produced by worker processes and come
    back through shared memory; a worker's exception is re-raised here with its
    traceback, a worker that dies raises naming the worker and its signal, and
    ``timeout`` (seconds, 0 = wait forever) raises naming the worker and what it
    was doing. Workers and shared memory are released when the iteration ends,
    breaks, raises or the loader is deleted (``persistent_workers=True`` keeps
    the workers between epochs, until the loader is deleted).
    """

    _LOCKED = (
        "batch_size",
        "batch_sampler",
        "sampler",
        "drop_last",
        "dataset",
        "persistent_workers",
    )

    def __init__(
        self,
        dataset,
        batch_size=1,
        shuffle=None,
        sampler=None,
        batch_sampler=None,
        num_workers=0,
        collate_fn=None,
        pin_memory=False,
        drop_last=False,
        timeout=0,
        worker_init_fn=None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor=None,
        persistent_workers=False,
        pin_memory_device="",
        in_order=True,
    ):
        if num_workers < 0:
            raise ValueError(
                "[DataLoader] num_workers option should be non-negative; use num_workers=0 to disable multiprocessing."
            )
        if timeout < 0:
            raise ValueError("[DataLoader] timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "[DataLoader] prefetch_factor option could only be specified in multiprocessing. Let "
                "num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
            )
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and prefetch_factor <= 0:
            raise ValueError(
                f"[DataLoader] prefetch_factor should be a positive integer, got {prefetch_factor}"
            )
        if persistent_workers and num_workers == 0:
            raise ValueError("[DataLoader] persistent_workers option needs num_workers > 0")

        if isinstance(dataset, IterableDataset):
            if shuffle not in (None, False):
                raise ValueError(
                    f"[DataLoader] DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle}"
                )
            if sampler is not None:
                raise ValueError(
                    f"[DataLoader] DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}"
                )
            if batch_sampler is not None:
                raise ValueError(
                    f"[DataLoader] DataLoader with IterableDataset: expected unspecified batch_sampler option, but got batch_sampler={batch_sampler}"
                )
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("[DataLoader] sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "[DataLoader] batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError(
                "[DataLoader] batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
            )

        if sampler is None:
            if isinstance(dataset, IterableDataset):
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.collate_fn = (
            collate_fn
            if collate_fn is not None
            else (default_collate if batch_sampler is not None else default_convert)
        )
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.time_to_first_batch = None
        self._iterator = None
        if num_workers > 0:
            _warn_large_python_lists(dataset, num_workers)
            cpus = (
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            )
            if cpus and num_workers > cpus:
                warnings.warn(
                    f"DataLoader: num_workers={num_workers} exceeds the {cpus} CPUs this process may use; "
                    "workers will compete for them (and for memory).",
                    stacklevel=2,
                )
        self._initialized = True

    def __setattr__(self, name, value):
        if getattr(self, "_initialized", False) and name in self._LOCKED:
            raise ValueError(
                f"[DataLoader] {name} attribute should not be set after DataLoader is initialized"
            )
        super().__setattr__(name, value)

    @property
    def multiprocessing_context(self):
        return self._mp_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context):
        if context is not None:
            if self.num_workers == 0:
                raise ValueError(
                    f"[DataLoader] multiprocessing_context can only be used with multi-process loading "
                    f"(num_workers > 0), but got num_workers={self.num_workers}"
                )
            if isinstance(context, str):
                methods = multiprocessing.get_all_start_methods()
                if context not in methods:
                    raise ValueError(
                        f"[DataLoader] multiprocessing_context option should specify a valid start method in {methods!r}, but got multiprocessing_context={context!r}"
                    )
                context = multiprocessing.get_context(context)
            elif not isinstance(context, multiprocessing.context.BaseContext):
                raise TypeError(
                    "[DataLoader] multiprocessing_context option should be a valid context object or a string "
                    f"specifying the start method, but got multiprocessing_context={context!r}"
                )
        self._mp_context = context

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessIter(self)
        from kiln.utils.data.multiprocessing_iter import MultiProcessingIter

        return MultiProcessingIter(self)

    def __iter__(self):
        if self.persistent_workers and self.num_workers > 0:
            if (
                self._iterator is None or self._iterator._shutdown_done
            ):  # (shut down by a worker failure)
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()


def _pinning_possible():
    """Whether pinned memory can be had; warns as PyTorch does when it can't."""
    from kiln import cuda

    if cuda.is_available():
        return True
    warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device "
                  "pinned memory won't be used.", stacklevel=4)
    return False


class BaseIter:
    """What single- and multi-process iterators share: sampler, seed, first-batch timing."""

    def __init__(self, loader):
        self._dataset = loader.dataset
        self._iterable = isinstance(loader.dataset, IterableDataset)
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._collate_fn = loader.collate_fn
        self._index_sampler = loader._index_sampler
        self._sampler_iter = iter(self._index_sampler)
        self._base_seed = _random.draw_seed(loader.generator)
        self._loader = weakref.ref(loader)
        self._num_yielded = 0
        self._started = time.perf_counter()
        self._pin_memory = loader.pin_memory and _pinning_possible()

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._index_sampler)

    def _reset(self, loader):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._started = time.perf_counter()

    def _next_data(self):
        raise NotImplementedError

    def __next__(self):
        data = self._next_data()
        if self._pin_memory:
            data = pin_memory(data)
        self._num_yielded += 1
        if self._num_yielded == 1:
            loader = self._loader()
            if loader is not None:
                loader.time_to_first_batch = time.perf_counter() - self._started
        return data


class _SingleProcessIter(BaseIter):
    def __init__(self, loader):
        super().__init__(loader)
        self._fetcher = make_fetcher(
            self._iterable, self._dataset, self._auto_collation, self._collate_fn, self._drop_last
        )

    def _next_data(self):
        index = next(self._sampler_iter)
        return self._fetcher.fetch(index)
