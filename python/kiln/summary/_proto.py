"""TensorBoard's protobuf classes, from the optional `tensorboard` package.

They need no TensorFlow. Importing this module without the package raises an
ImportError that says how to get it.
"""

try:
    from tensorboard.compat.proto import (
        event_pb2,
        summary_pb2,
        tensor_pb2,
        tensor_shape_pb2,
        types_pb2,
    )
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "kiln.summary writes TensorBoard event files with the `tensorboard` package, "
        "which is not installed: pip install kiln[tensorboard]"
    ) from e

Event = event_pb2.Event
SessionLog = event_pb2.SessionLog
Summary = summary_pb2.Summary
SummaryMetadata = summary_pb2.SummaryMetadata
HistogramProto = summary_pb2.HistogramProto
TensorProto = tensor_pb2.TensorProto
TensorShapeProto = tensor_shape_pb2.TensorShapeProto


def plugin_metadata(plugin_name, content=b""):
    """SummaryMetadata naming the TensorBoard plugin that shows a value."""
    return SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(plugin_name=plugin_name, content=content)
    )


def tensor_proto(array):
    """TensorProto of a float32/float64 array or a 1-D array of bytes strings."""
    shape = TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in array.shape])
    if array.dtype.kind in "SOU":
        strings = [s if isinstance(s, bytes) else str(s).encode("utf-8") for s in array.flat]
        return TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=strings)
    dtype = types_pb2.DT_DOUBLE if array.dtype == "float64" else types_pb2.DT_FLOAT
    array = array.astype("<f8" if dtype == types_pb2.DT_DOUBLE else "<f4", copy=False)
    return TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=array.tobytes())
