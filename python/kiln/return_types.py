"""Named tuples returned by ops with several outputs, like torch.return_types."""

from kiln import _C

sort = _C._return_type_sort
topk = _C._return_type_topk
