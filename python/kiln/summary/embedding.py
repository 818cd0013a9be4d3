"""Embeddings for TensorBoard's projector: TSV/PNG files plus projector_config.pbtxt.

Layout (paths relative to the run directory, which the projector requires):
``<step:05d>/<tag>/tensors.tsv``, ``metadata.tsv``, ``sprite.png``, and one
``embeddings`` entry per (tag, step) in ``projector_config.pbtxt``.
"""

import math
import os
import re

import numpy as np

from kiln.summary.images import grid, to_nhwc_uint8
from kiln.summary.png import encode_png

CONFIG_NAME = "projector_config.pbtxt"


def write_embedding(
    logdir,
    mat,
    metadata=None,
    label_img=None,
    global_step=None,
    tag="default",
    metadata_header=None,
):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    if mat.ndim != 2:
        raise ValueError(f"[add_embedding] mat must be 2-D (points, dims), got shape {mat.shape}")
    step = 0 if global_step is None else int(global_step)
    subdir = f"{step:05d}/{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}"
    outdir = os.path.join(logdir, subdir)
    os.makedirs(outdir, exist_ok=True)
    _write_text(
        os.path.join(outdir, "tensors.tsv"),
        "".join("\t".join(map(repr, row)) + "\n" for row in mat.astype(float).tolist()),
    )

    config = ProjectorConfig()
    config_path = os.path.join(logdir, CONFIG_NAME)
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            text_format.Parse(f.read(), config)
    name = f"{tag}:{step:05d}"
    kept = [e for e in config.embeddings if e.tensor_name != name]
    del config.embeddings[:]
    config.embeddings.extend(kept)
    info = config.embeddings.add(tensor_name=name, tensor_path=f"{subdir}/tensors.tsv")

    if metadata is not None:
        _write_text(
            os.path.join(outdir, "metadata.tsv"),
            _metadata_tsv(list(metadata), metadata_header, len(mat)),
        )
        info.metadata_path = f"{subdir}/metadata.tsv"
    if label_img is not None:
        if len(label_img) != len(mat):
            raise ValueError(
                f"[add_embedding] label_img has {len(label_img)} images for {len(mat)} points"
            )
        images = to_nhwc_uint8(label_img, "NCHW", "add_embedding")
        n, h, w, c = images.shape
        side = math.ceil(math.sqrt(n))  # the projector expects a square sprite
        padded = np.zeros((side * side, h, w, c), dtype=np.uint8)
        padded[:n] = images
        with open(os.path.join(outdir, "sprite.png"), "wb") as f:
            f.write(encode_png(grid(padded, max_columns=side)))
        info.sprite.image_path = f"{subdir}/sprite.png"
        info.sprite.single_image_dim.extend([w, h])
    _write_text(config_path, text_format.MessageToString(config))


def _metadata_tsv(rows, header, points):
    if len(rows) != points:
        raise ValueError(f"[add_embedding] metadata has {len(rows)} rows for {points} points")

    def clean(x):
        return str(x).replace("\t", " ").replace("\n", " ")

    if header is None:
        return "".join(clean(r) + "\n" for r in rows)
    lines = ["\t".join(map(clean, header))]
    for r in rows:
        r = list(r) if isinstance(r, (list, tuple)) else [r]
        if len(r) != len(header):
            raise ValueError(
                f"[add_embedding] metadata row {r!r} has {len(r)} columns, header has {len(header)}"
            )
        lines.append("\t".join(map(clean, r)))
    return "\n".join(lines) + "\n"


def _write_text(path, text):
    """Atomic write: the server may read the file at any moment."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
