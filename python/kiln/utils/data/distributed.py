"""DistributedSampler: each of ``num_replicas`` processes reads its own slice of the dataset."""

import math
import os

from kiln.utils.data import _random
from kiln.utils.data.sampler import Sampler

__all__ = ["DistributedSampler"]


def _world():
    """(world size, rank) from kiln.distributed when initialized, else the launcher's environment."""
    try:
        import kiln.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
    except (ImportError, AttributeError):
        pass
    for size_var, rank_var in (
        ("WORLD_SIZE", "RANK"),
        ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
        ("PMI_SIZE", "PMI_RANK"),
    ):
        if size_var in os.environ:
            return int(os.environ[size_var]), int(os.environ.get(rank_var, "0"))
    raise RuntimeError(
        "[DistributedSampler] num_replicas and rank were not given and no distributed process group is "
        "initialized (nor WORLD_SIZE/RANK set); pass num_replicas= and rank="
    )


class DistributedSampler(Sampler):
    """Replica ``rank`` of ``num_replicas`` gets indices ``rank, rank + num_replicas, ...`` of the
    (optionally shuffled) index list, padded by repetition (or truncated with ``drop_last``) so
    every replica gets the same count. Call :meth:`set_epoch` before each epoch so the shuffle
    changes: the permutation is seeded with ``seed + epoch``, identically on every replica.
    """

    def __init__(
        self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False
    ):
        if num_replicas is None or rank is None:
            world, my_rank = _world()
            num_replicas = world if num_replicas is None else num_replicas
            rank = my_rank if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(
                f"[DistributedSampler] Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = _random.randperm(n, _random.new_generator(self.seed + self.epoch))
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[: self.total_size]
        return iter(indices[self.rank : self.total_size : self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Sets the epoch that seeds the next shuffle (call it on every replica each epoch)."""
        self.epoch = epoch
