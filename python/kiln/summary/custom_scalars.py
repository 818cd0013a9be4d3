"""Custom scalar layouts for TensorBoard's CUSTOM SCALARS tab.

``layout``: ``{category: {chart title: ["Multiline", [tags]] or
["Margin", [value_tag, lower_tag, upper_tag]]}}``, as torch takes it.
"""

import numpy as np

from kiln.summary import _proto


def custom_scalars_summary(layout):
    from tensorboard.plugins.custom_scalar import layout_pb2

    categories = []
    for title, charts in layout.items():
        category = layout_pb2.Category(title=title)
        for chart_title, spec in charts.items():
            if not isinstance(spec, (list, tuple)) or len(spec) != 2:
                raise ValueError(
                    f"[add_custom_scalars] chart '{chart_title}' must be [kind, tags], got {spec!r}"
                )
            kind, tags = spec
            chart = category.chart.add(title=chart_title)
            if kind == "Multiline":
                chart.multiline.tag.extend(tags)
            elif kind == "Margin":
                if len(tags) != 3:
                    raise ValueError(
                        f"[add_custom_scalars] Margin chart '{chart_title}' needs 3 tags "
                        f"(value, lower, upper), got {len(tags)}"
                    )
                chart.margin.series.add(value=tags[0], lower=tags[1], upper=tags[2])
            else:
                raise ValueError(
                    f"[add_custom_scalars] chart kind must be 'Multiline' or 'Margin', got {kind!r}"
                )
        categories.append(category)
    data = layout_pb2.Layout(category=categories).SerializeToString()
    value = _proto.Summary.Value(
        tag="custom_scalars__config__",
        tensor=_proto.tensor_proto(np.array([data], dtype=object)),
        metadata=_proto.plugin_metadata("custom_scalars"),
    )
    return _proto.Summary(value=[value])
