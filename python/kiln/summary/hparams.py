"""Hyperparameter summaries for TensorBoard's HPARAMS tab.

A run that holds the experiment, session-start and session-end records is one
session; its metric values are the run's scalars with the metric tags, so
logging those tags later updates the metrics shown.
"""

import numbers

import numpy as np

from kiln.summary import _proto


def hparams_summaries(hparam_dict, metric_dict, hparam_domain_discrete=None):
    """The three Summary protos (experiment, session start, session end)."""
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    if not isinstance(hparam_dict, dict) or not isinstance(metric_dict, dict):
        raise TypeError("[add_hparams] hparam_dict and metric_dict must be dicts")
    domains = hparam_domain_discrete or {}
    for name, values in domains.items():
        if name not in hparam_dict:
            raise ValueError(
                f"[add_hparams] hparam_domain_discrete names '{name}', not in hparam_dict"
            )
        if not isinstance(values, (list, tuple)) or hparam_dict[name] not in values:
            raise ValueError(
                f"[add_hparams] the domain of '{name}' must be a list holding its value {hparam_dict[name]!r}"
            )

    infos, start = [], plugin_data_pb2.SessionStartInfo()
    for name, value in hparam_dict.items():
        value, dtype = _hparam_value(name, value)
        start.hparams[name].CopyFrom(_proto_value(struct_pb2, value))
        info = api_pb2.HParamInfo(name=name, type=dtype)
        if name in domains:
            info.domain_discrete.extend([_hparam_value(name, v)[0] for v in domains[name]])
        infos.append(info)
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metric_dict]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
    return [
        _summary("_hparams_/experiment", plugin_data_pb2.HParamsPluginData(experiment=experiment)),
        _summary(
            "_hparams_/session_start_info",
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        ),
        _summary(
            "_hparams_/session_end_info", plugin_data_pb2.HParamsPluginData(session_end_info=end)
        ),
    ]


def _hparam_value(name, value):
    from tensorboard.plugins.hparams import api_pb2

    if isinstance(value, (bool, np.bool_)):
        return bool(value), api_pb2.DATA_TYPE_BOOL
    if isinstance(value, str):
        return value, api_pb2.DATA_TYPE_STRING
    if isinstance(value, numbers.Number):
        return float(value), api_pb2.DATA_TYPE_FLOAT64
    from kiln.summary._convert import to_float

    try:
        return to_float(value), api_pb2.DATA_TYPE_FLOAT64
    except (TypeError, ValueError):
        raise TypeError(
            f"[add_hparams] hparam '{name}' must be a bool, str, number or one-element tensor, "
            f"got {type(value).__name__}"
        ) from None


def _proto_value(struct_pb2, value):
    if isinstance(value, (bool, np.bool_)):
        return struct_pb2.Value(bool_value=bool(value))
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    return struct_pb2.Value(number_value=float(value))


def _summary(tag, plugin_data):
    plugin_data.version = 0
    empty = _proto.tensor_proto(np.zeros(0, dtype=np.float32))
    value = _proto.Summary.Value(
        tag=tag,
        tensor=empty,
        metadata=_proto.plugin_metadata("hparams", plugin_data.SerializeToString()),
    )
    return _proto.Summary(value=[value])
