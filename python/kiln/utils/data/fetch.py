"""Fetchers: one batch (or sample) from a dataset for one entry of the index sampler."""


class _NoStatus:
    def set(self, phase, batch=-1, sample=-1):
        pass


class MapFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last, status=None):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.status = status or _NoStatus()
        self.getitems = getattr(dataset, "__getitems__", None) if auto_collation else None

    def fetch(self, index, batch=-1):
        status = self.status
        if not self.auto_collation:
            status.set("fetching", batch, index)
            data = self.dataset[index]
        elif callable(self.getitems):
            status.set("fetching", batch, index[0] if index else -1)
            data = self.getitems(index)
        else:
            data = []
            for i in index:
                status.set("fetching", batch, i)
                data.append(self.dataset[i])
        status.set("collating", batch)
        return self.collate_fn(data)


class IterableFetcher:
    """Pulls from one ``iter(dataset)``; raises StopIteration once it is exhausted."""

    def __init__(self, dataset, auto_collation, collate_fn, drop_last, status=None):
        self.it = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.status = status or _NoStatus()
        self.ended = False

    def fetch(self, index, batch=-1):
        if self.ended:
            raise StopIteration
        self.status.set("iterating", batch)
        if self.auto_collation:
            data = []
            for _ in index:
                try:
                    data.append(next(self.it))
                except StopIteration:
                    self.ended = True
                    break
            if not data or (self.drop_last and len(data) < len(index)):
                self.ended = True
                raise StopIteration
        else:
            data = next(self.it)
        self.status.set("collating", batch)
        return self.collate_fn(data)


def make_fetcher(iterable, *args, **kwargs):
    return (IterableFetcher if iterable else MapFetcher)(*args, **kwargs)
