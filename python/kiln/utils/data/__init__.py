"""kiln.utils.data: datasets, samplers, collation and the DataLoader (torch.utils.data's API).

Existing ``torch.utils.data`` code ports by changing the import. Worker
processes (``num_workers > 0``) send batches back through shared memory
(/dev/shm): tensor data is written once, by ``default_collate`` stacking
straight into a shared block, and mapped zero-copy in the main process; only a
small description travels through a pipe. Blocks are pooled and reused once
the main process has dropped the batch in them, so a steady stream of batches
costs no file creation, mapping or page faults. Worker errors, crashes and
timeouts raise in the main process with the worker's traceback or signal, and
no worker process or shared-memory file outlives the iteration.

Keeping worker memory flat across epochs
----------------------------------------
Workers are forked: they share the dataset's memory with the main process
until a page is written. Reading a Python object *writes* its reference count,
so every list element, dict entry or per-sample Python object a worker touches
has its page copied into that worker; over an epoch each worker ends up with a
private copy of a dataset held as a big list of objects (``self.samples =
[(path, label), ...]``), and resident memory grows by that much per worker.
Array buffers are not Python objects: indexing a NumPy array or a tensor reads
its data without writing to it. So keep per-sample data in a few big arrays:

* images/features as one ndarray or tensor (``self.images[i]``);
* labels as an int64 array, not a list of ints;
* strings (file names) as one ``np.array(names)`` (fixed-width ``<U``) or as
  one ``bytes`` buffer plus an offsets array;
* nested records as several parallel arrays (a struct of arrays).

The DataLoader warns when a dataset (or a dataset it wraps) has a Python list
longer than ``dataloader.LARGE_PYTHON_LIST`` and ``num_workers > 0``.

Reproducibility: shuffling draws from ``generator`` or kiln's default
generator (``kiln.manual_seed``); each worker seeds Python's ``random``, kiln
and NumPy from ``base_seed + worker_id``, where ``base_seed`` is drawn from the
same generator once per iterator (per epoch unless ``persistent_workers``).
"""

from kiln.utils.data.collate import default_collate, default_convert
from kiln.utils.data.dataloader import DataLoader
from kiln.utils.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from kiln.utils.data.distributed import DistributedSampler
from kiln.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from kiln.utils.data.worker import WorkerInfo, get_worker_info

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackDataset",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]
