"""Text summaries (Markdown), read by TensorBoard's text plugin."""

import numpy as np

from kiln.summary import _proto


def text_value(tag, text):
    array = np.array([text.encode("utf-8")], dtype=object)
    return _proto.Summary.Value(
        tag=tag, tensor=_proto.tensor_proto(array), metadata=_proto.plugin_metadata("text")
    )
