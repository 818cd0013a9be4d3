"""Scalar summaries written as tensors (torch's ``new_style=True``).

The default path, `simple_value`, is encoded on the writer thread in bulk
(event_file._encode_scalars); TensorBoard shows both the same way.
"""

import numpy as np

from kiln.summary import _proto


def scalar_tensor_value(tag, value, double_precision=False):
    array = np.asarray(value, dtype=np.float64 if double_precision else np.float32)
    return _proto.Summary.Value(
        tag=tag, tensor=_proto.tensor_proto(array), metadata=_proto.plugin_metadata("scalars")
    )
