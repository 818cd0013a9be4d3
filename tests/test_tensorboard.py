"""kiln.summary.SummaryWriter: every kind of record read back by tensorboard's own readers."""

import glob
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import wave

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="needs the tensorboard package (kiln[tensorboard])")

import kiln
from kiln.summary import SummaryWriter
from kiln.summary.crc32c import masked_crc32c, masked_crc32c_many
from kiln.summary.png import encode_png_zlib
from tensorboard.backend.event_processing import event_accumulator as ea_mod
from tensorboard.util import tensor_util

# Subprocesses import the same kiln as this process (a dev tree or an install).
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(kiln.__file__)))


def accumulator(logdir):
    acc = ea_mod.EventAccumulator(
        str(logdir),
        size_guidance={"scalars": 0, "histograms": 0, "images": 0, "audio": 0, "tensors": 0},
    )
    acc.Reload()
    return acc


def scalars(logdir, tag):
    return [(e.step, e.value) for e in accumulator(logdir).Scalars(tag)]


def decode_png(data):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


# ---- framing ----------------------------------------------------------------


def test_crc_matches_tensorboard():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    rng = np.random.default_rng(0)
    chunks = [b"", b"a", b"abc", b"123456789"] + [
        rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (4, 255, 256, 257, 600, 5000)
    ]
    assert [int(c) for c in masked_crc32c_many(chunks)] == [reference(c) for c in chunks]
    assert masked_crc32c(b"hello") == reference(b"hello")


def test_framing_matches_tensorboard_record_writer():
    from kiln.summary.event_file import _frame
    from tensorboard.summary.writer.record_writer import RecordWriter

    rng = np.random.default_rng(1)
    records = [
        rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (0, 1, 40, 40, 300, 70000)
    ]
    out = io.BytesIO()
    writer = RecordWriter(out)
    for record in records:
        writer.write(record)
    assert _frame(records) == out.getvalue()


# ---- scalars ----------------------------------------------------------------


def test_scalar_inputs_and_steps(tmp_path):
    with SummaryWriter(tmp_path) as w:
        w.add_scalar("loss", 0.5, 0)
        w.add_scalar("loss", np.float32(0.25), 1)
        w.add_scalar("loss", kiln.tensor(0.125), 2)
        w.add_scalar("loss", kiln.tensor([2.0]).to(kiln.bfloat16), 3)
        w.add_scalar("loss", np.array(7), np.int64(4), walltime=123.0)
        w.add_scalar("exact", 1.0 / 3.0, 0, new_style=True, double_precision=True)
    acc = accumulator(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [
        (0, 0.5),
        (1, 0.25),
        (2, 0.125),
        (3, 2.0),
        (4, 7.0),
    ]
    assert acc.Scalars("loss")[4].wall_time == 123.0
    (event,) = acc.Tensors("exact")
    assert tensor_util.make_ndarray(event.tensor_proto) == 1.0 / 3.0


def test_scalar_rejects_arrays(tmp_path):
    with SummaryWriter(tmp_path) as w, pytest.raises(ValueError, match="scalar"):
        w.add_scalar("x", np.ones(3), 0)


def test_add_scalars_writes_one_run_per_key(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(3):
            w.add_scalars("run/loss", {"train": step, "val": 10 + step}, step)
    assert scalars(tmp_path / "run_loss_train", "run/loss") == [(0, 0), (1, 1), (2, 2)]
    assert scalars(tmp_path / "run_loss_val", "run/loss") == [(0, 10), (1, 11), (2, 12)]


def test_data_provider_reads_scalars_and_histograms(tmp_path):
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    with SummaryWriter(tmp_path) as w:
        for step in range(4):
            w.add_scalar("acc", step / 4, step)
        w.add_histogram("w", np.array([1.0, 2.0, 2.0, 3.0]), 0, bins=3)
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(tmp_path))
    ctx = context.RequestContext()
    series = provider.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=100)[
        "."
    ]["acc"]
    assert [(p.step, p.value) for p in series] == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75)]
    hist = provider.read_tensors(ctx, experiment_id="", plugin_name="histograms", downsample=100)[
        "."
    ]["w"][0].numpy
    # (left edge, right edge, count) per bucket: np.histogram's three buckets on [1, 3].
    np.testing.assert_allclose(hist, [[1, 5 / 3, 1], [5 / 3, 7 / 3, 2], [7 / 3, 3, 1]])


# ---- histograms -------------------------------------------------------------


def test_histogram_buckets(tmp_path):
    values = np.random.randn(1000)
    with SummaryWriter(tmp_path) as w:
        w.add_histogram("default", kiln.from_numpy(values), 1)
        w.add_histogram("edges", values, 2, bins=[-1.0, 0.0, 1.0])
        w.add_histogram("merged", values, 3, bins=50, max_bins=10)
        w.add_histogram_raw("raw", 0.0, 3.0, 6, 9.0, 17.0, [1.0, 2.0, 3.0], [1, 2, 3], 4)
    acc = accumulator(tmp_path)
    h = acc.Histograms("default")[0].histogram_value
    assert (h.min, h.max, h.num) == (values.min(), values.max(), 1000)
    assert h.sum == pytest.approx(values.sum()) and h.sum_squares == pytest.approx(values @ values)
    limits = np.array(h.bucket_limit)
    assert np.all(np.diff(limits) > 0) and h.bucket[0] > 0 and h.bucket[-1] > 0
    assert limits[0] > values.min() and limits[-1] >= values.max()
    # Bucket i holds the values in [limit[i-1], limit[i]) (np.histogram's convention).
    which = np.searchsorted(limits, values, side="right")
    np.testing.assert_array_equal(np.bincount(which, minlength=len(limits)), h.bucket)
    e = acc.Histograms("edges")[0].histogram_value
    counts, _ = np.histogram(values, bins=[-1.0, 0.0, 1.0])
    assert list(e.bucket_limit) == [0.0, 1.0] and list(e.bucket) == list(counts)
    m = acc.Histograms("merged")[0].histogram_value
    assert len(m.bucket) <= 10 and sum(m.bucket) == 1000
    r = acc.Histograms("raw")[0].histogram_value
    assert (list(r.bucket_limit), list(r.bucket), r.num, r.sum_squares) == (
        [1.0, 2.0, 3.0],
        [1, 2, 3],
        6,
        17.0,
    )


def test_histogram_errors(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match=r"\[add_histogram\]"):
            w.add_histogram("nan", np.array([np.nan]), 0)
        with pytest.raises(ValueError, match=r"\[add_histogram_raw\]"):
            w.add_histogram_raw("bad", 0, 1, 1, 1, 1, [1.0, 2.0], [1], 0)


# ---- images -----------------------------------------------------------------


def test_images_layouts_and_pixels(tmp_path):
    chw = np.random.rand(3, 4, 5).astype(np.float32)
    hwc = np.random.randint(0, 256, (4, 5, 3), dtype=np.uint8)
    gray = np.random.rand(6, 7)
    batch = np.random.randint(0, 256, (10, 3, 2, 3), dtype=np.uint8)
    with SummaryWriter(tmp_path) as w:
        w.add_image("chw", kiln.from_numpy(chw), 0)
        w.add_image("hwc", hwc, 0, dataformats="HWC")
        w.add_image("hw", gray, 0, dataformats="HW")
        w.add_images("nchw", batch, 0)
        w.add_images("nhwc", batch.transpose(0, 2, 3, 1), 0, dataformats="NHWC")
    acc = accumulator(tmp_path)

    def pixels(tag):
        img = acc.Images(tag)[0]
        decoded = decode_png(img.encoded_image_string)
        assert decoded.shape[:2] == (img.height, img.width)
        return decoded

    expected = np.clip(np.rint(chw.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels("chw"), expected.transpose(1, 2, 0))
    np.testing.assert_array_equal(pixels("hwc"), hwc)
    np.testing.assert_array_equal(pixels("hw"), np.rint(gray * 255).astype(np.uint8))
    grid = pixels("nchw")
    assert grid.shape == (2 * 2, 8 * 3, 3)  # 10 images: 8 columns, 2 rows
    np.testing.assert_array_equal(grid[0:2, 0:3], batch[0].transpose(1, 2, 0))
    np.testing.assert_array_equal(grid[2:4, 3:6], batch[9].transpose(1, 2, 0))
    np.testing.assert_array_equal(grid[2:4, 6:9], 0)
    np.testing.assert_array_equal(pixels("nhwc"), grid)


def test_png_without_pillow_decodes():
    for channels in (1, 2, 3, 4):
        image = np.random.randint(0, 256, (5, 7, channels), dtype=np.uint8)
        decoded = decode_png(encode_png_zlib(image))
        np.testing.assert_array_equal(decoded.reshape(5, 7, channels), image)


def test_image_errors(tmp_path):
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match=r"\[add_image\] dataformats"):
            w.add_image("x", np.zeros((3, 4, 4)), dataformats="CXW")
        with pytest.raises(ValueError, match=r"\[add_image\].*3-D"):
            w.add_image("x", np.zeros((4, 4)))
        with pytest.raises(ValueError, match="channels"):
            w.add_image("x", np.zeros((5, 4, 4)))


def test_figure(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = plt.figure(figsize=(2, 1), dpi=50)
    plt.plot([0, 1], [0, 1])
    figs = [plt.figure(figsize=(2, 1), dpi=50) for _ in range(2)]
    with SummaryWriter(tmp_path) as w:
        w.add_figure("fig", fig, 0)
        w.add_figure("figs", figs, 0)
    acc = accumulator(tmp_path)
    img = acc.Images("fig")[0]
    assert (img.width, img.height) == (100, 50)
    pixels = decode_png(img.encoded_image_string)
    assert pixels.shape == (50, 100, 4) and pixels.min() < 255  # the line was drawn
    assert decode_png(acc.Images("figs")[0].encoded_image_string).shape == (50, 200, 4)
    assert not plt.get_fignums()  # close=True closed them


# ---- audio and text ---------------------------------------------------------


def test_audio_samples(tmp_path):
    t = np.linspace(0, 1, 800, endpoint=False)
    mono = 0.5 * np.sin(2 * np.pi * 5 * t)
    stereo = np.stack([mono, -mono])
    with SummaryWriter(tmp_path) as w:
        w.add_audio("mono", kiln.from_numpy(mono), 3, sample_rate=800)
        w.add_audio("stereo", stereo, 3, sample_rate=800)
    acc = accumulator(tmp_path)
    for tag, expected in (("mono", mono[None]), ("stereo", stereo)):
        a = acc.Audio(tag)[0]
        assert (a.step, a.sample_rate, a.content_type) == (3, 800, "audio/wav")
        with wave.open(io.BytesIO(a.encoded_audio_string)) as wav:
            assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (
                len(expected),
                800,
                800,
            )
            frames = np.frombuffer(wav.readframes(800), dtype="<i2")
        got = frames.reshape(800, len(expected)).T / 32767.0
        np.testing.assert_allclose(got, expected, atol=1 / 32767)


def test_text(tmp_path):
    with SummaryWriter(tmp_path) as w:
        w.add_text("notes", "**hello** kiln ✓", 7)
    (event,) = accumulator(tmp_path).Tensors("notes")
    assert event.step == 7
    assert tensor_util.make_ndarray(event.tensor_proto)[0].decode() == "**hello** kiln ✓"


# ---- projector --------------------------------------------------------------


def test_embedding_files_and_config(tmp_path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    mat = np.random.rand(5, 3)
    with SummaryWriter(tmp_path) as w:
        w.add_embedding(
            kiln.from_numpy(mat),
            metadata=list("abcde"),
            label_img=np.random.rand(5, 3, 4, 4),
            global_step=2,
            tag="emb",
        )
        w.add_embedding(
            mat,
            metadata=[(i, f"n{i}") for i in range(5)],
            metadata_header=["id", "name"],
            tag="other",
        )
        with pytest.raises(ValueError, match=r"\[add_embedding\] metadata"):
            w.add_embedding(mat, metadata=["a"])
    config = text_format.Parse((tmp_path / "projector_config.pbtxt").read_text(), ProjectorConfig())
    by_name = {e.tensor_name: e for e in config.embeddings}
    assert set(by_name) == {"emb:00002", "other:00000"}
    emb = by_name["emb:00002"]
    np.testing.assert_allclose(np.loadtxt(tmp_path / emb.tensor_path, delimiter="\t"), mat)
    assert (tmp_path / emb.metadata_path).read_text().splitlines() == list("abcde")
    sprite = decode_png((tmp_path / emb.sprite.image_path).read_bytes())
    assert sprite.shape == (12, 12, 3) and list(emb.sprite.single_image_dim) == [4, 4]
    other = by_name["other"] if "other" in by_name else by_name["other:00000"]
    assert (tmp_path / other.metadata_path).read_text().splitlines()[:2] == ["id\tname", "0\tn0"]


# ---- hparams, PR curves, custom scalars -------------------------------------


def test_hparams_in_same_run_and_metric_updates(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    with SummaryWriter(tmp_path) as w:
        w.add_hparams(
            {"lr": 0.1, "opt": "adam", "bn": True, "layers": kiln.tensor(3)},
            {"hparam/accuracy": 0.5, "hparam/loss": None},
            hparam_domain_discrete={"opt": ["adam", "sgd"]},
        )
        w.add_scalar("hparam/accuracy", 0.9, 10)
    assert os.listdir(tmp_path) == [p for p in os.listdir(tmp_path) if "tfevents" in p]
    acc = accumulator(tmp_path)
    content = acc.PluginTagToContent("hparams")
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [i.name for i in exp.hparam_infos] == ["lr", "opt", "bn", "layers"]
    assert list(exp.hparam_infos[1].domain_discrete) == ["adam", "sgd"]
    assert [m.name.tag for m in exp.metric_infos] == ["hparam/accuracy", "hparam/loss"]
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["lr"].number_value == 0.1 and start.hparams["opt"].string_value == "adam"
    assert start.hparams["bn"].bool_value is True and start.hparams["layers"].number_value == 3
    assert "_hparams_/session_end_info" in content
    assert scalars(tmp_path, "hparam/accuracy") == [(0, 0.5), (10, pytest.approx(0.9))]


def test_hparams_plugin_sees_session(tmp_path):
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    with SummaryWriter(tmp_path) as w:
        w.add_hparams({"lr": 0.1}, {"m": 1.0})
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(tmp_path))
    ctx = backend_context.Context(
        base_plugin.TBContext(data_provider=provider, logdir=str(tmp_path))
    )
    rctx = context.RequestContext()
    content = ctx.hparams_metadata(rctx, "")
    assert "." in content and "_hparams_/session_start_info" in content["."]
    last = ctx.read_last_scalars(rctx, "", None)
    assert last["."]["m"].value == 1.0


def test_pr_curve(tmp_path):
    from tensorboard.plugins.pr_curve import plugin_data_pb2

    labels = np.array([1, 0, 1, 1, 0, 0])
    predictions = np.array([0.9, 0.8, 0.6, 0.3, 0.2, 0.0])
    with SummaryWriter(tmp_path) as w:
        w.add_pr_curve("pr", kiln.from_numpy(labels), predictions, 1, num_thresholds=5)
        w.add_pr_curve_raw(
            "raw", [3, 2], [3, 0], [0, 3], [0, 1], [0.5, 1.0], [1.0, 2 / 3], 1, num_thresholds=2
        )
    acc = accumulator(tmp_path)
    meta = plugin_data_pb2.PrCurvePluginData.FromString(acc.PluginTagToContent("pr_curves")["pr"])
    assert meta.num_thresholds == 5
    data = tensor_util.make_ndarray(acc.Tensors("pr")[0].tensor_proto)
    thresholds = np.linspace(0, 1, 5)
    positive = predictions[None, :] >= thresholds[:, None]
    tp = (positive & (labels == 1)).sum(1)
    fp = (positive & (labels == 0)).sum(1)
    np.testing.assert_allclose(data[:4], [tp, fp, 3 - fp, 3 - tp])
    np.testing.assert_allclose(data[4], tp / np.maximum(tp + fp, 1e-7), rtol=1e-6)
    np.testing.assert_allclose(data[5], tp / 3, rtol=1e-6)
    raw = tensor_util.make_ndarray(acc.Tensors("raw")[0].tensor_proto)
    np.testing.assert_allclose(raw[:, 1], [2, 0, 3, 1, 1.0, 2 / 3], rtol=1e-6)


def test_custom_scalars(tmp_path):
    from tensorboard.plugins.custom_scalar import layout_pb2

    layout = {
        "Training": {
            "loss": ["Multiline", ["loss/train", "loss/val"]],
            "band": ["Margin", ["m", "m_lo", "m_hi"]],
        }
    }
    with SummaryWriter(tmp_path) as w:
        w.add_custom_scalars(layout)
        with pytest.raises(ValueError, match=r"\[add_custom_scalars\]"):
            w.add_custom_scalars({"c": {"x": ["Pie", ["a"]]}})
    (event,) = accumulator(tmp_path).Tensors("custom_scalars__config__")
    parsed = layout_pb2.Layout.FromString(tensor_util.make_ndarray(event.tensor_proto)[0])
    (category,) = parsed.category
    assert category.title == "Training"
    assert list(category.chart[0].multiline.tag) == ["loss/train", "loss/val"]
    assert category.chart[1].margin.series[0].upper == "m_hi"


# ---- writer behaviour -------------------------------------------------------


def test_default_logdir_comment_and_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = SummaryWriter(comment="_exp", filename_suffix=".v2")
    w.close()
    (run,) = os.listdir(tmp_path / "runs")
    assert run.endswith(socket.gethostname() + "_exp")
    (name,) = os.listdir(tmp_path / "runs" / run)
    assert name.startswith("events.out.tfevents.") and name.endswith(".v2")


def test_flush_makes_records_readable_before_close(tmp_path):
    w = SummaryWriter(tmp_path, max_queue=1000, flush_secs=3600)
    for step in range(50):
        w.add_scalar("x", step, step)
    w.flush()
    assert len(scalars(tmp_path, "x")) == 50
    w.close()
    w.close()  # idempotent


def test_flush_secs_writes_without_flush(tmp_path):
    w = SummaryWriter(tmp_path, max_queue=1000, flush_secs=0.05)
    w.add_scalar("x", 1.0, 0)
    deadline = time.monotonic() + 30
    while not accumulator(tmp_path).Tags()["scalars"]:
        assert time.monotonic() < deadline, "the periodic flush never wrote the scalar"
        time.sleep(0.05)
    w.close()


def test_max_queue_triggers_write(tmp_path):
    with SummaryWriter(tmp_path, max_queue=5, flush_secs=3600) as w:
        for step in range(5):
            w.add_scalar("x", step, step)
        path = w.file_writer.path
        deadline = time.monotonic() + 30
        while os.path.getsize(path) < 5 * 30:
            assert time.monotonic() < deadline, "a full queue was not written out"
            time.sleep(0.01)


def test_rollover_keeps_every_record_in_order(tmp_path):
    with SummaryWriter(tmp_path, max_queue=7, max_file_bytes=400) as w:
        for step in range(200):
            w.add_scalar("x", step * 0.5, step)
            if step % 20 == 0:
                w.flush()
    files = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert len(files) > 3
    assert all(os.path.getsize(f) < 400 + 20 * 60 for f in files)
    assert scalars(tmp_path, "x") == [(s, s * 0.5) for s in range(200)]


def test_purge_step_drops_orphaned_steps(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(10):
            w.add_scalar("x", 1.0, step)
    with SummaryWriter(tmp_path, purge_step=5) as w:
        for step in range(5, 8):
            w.add_scalar("x", 2.0, step)
    assert scalars(tmp_path, "x") == [(s, 1.0) for s in range(5)] + [(s, 2.0) for s in range(5, 8)]


def test_logging_after_close_opens_a_new_file(tmp_path):
    w = SummaryWriter(tmp_path)
    w.add_scalar("x", 1.0, 0)
    w.close()
    w.add_scalar("x", 2.0, 1)
    w.close()
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 2
    assert scalars(tmp_path, "x") == [(0, 1.0), (1, 2.0)]


def test_utils_tensorboard_reexport():
    from kiln.utils.tensorboard import SummaryWriter as Reexported

    assert Reexported is SummaryWriter


def test_missing_tensorboard_says_how_to_install():
    code = "import sys; sys.modules['tensorboard'] = None\nimport kiln.summary"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
        timeout=120,
    )
    assert proc.returncode != 0 and "pip install kiln[tensorboard]" in proc.stderr


def test_torn_last_record_leaves_earlier_records_readable(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(10):
            w.add_scalar("x", step, step)
        path = w.file_writer.path
    size = os.path.getsize(path)
    for cut in (3, 20):  # inside the last record's CRC, inside its payload
        with open(path, "r+b") as f:
            f.truncate(size - cut)
        assert scalars(tmp_path, "x") == [(s, s) for s in range(9)]
        size -= cut


def test_unclosed_writer_is_flushed_at_exit(tmp_path):
    script = (
        f"from kiln.summary import SummaryWriter\n"
        f"w = SummaryWriter({str(tmp_path)!r}, flush_secs=3600)\n"
        f"for s in range(20): w.add_scalar('x', s, s)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )
    assert scalars(tmp_path, "x") == [(s, s) for s in range(20)]


def test_threads_logging_concurrently(tmp_path):
    import threading

    with SummaryWriter(tmp_path, max_queue=3) as w:

        def log(tag):
            for step in range(500):
                w.add_scalar(tag, step, step)
                if step % 100 == 0:
                    w.add_text(tag + "_text", str(step), step)

        threads = [threading.Thread(target=log, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    acc = accumulator(tmp_path)
    for i in range(4):
        assert [(e.step, e.value) for e in acc.Scalars(f"t{i}")] == [(s, s) for s in range(500)]
        assert len(acc.Tensors(f"t{i}_text")) == 5


def test_flushed_records_survive_sigkill(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from kiln.summary import SummaryWriter
        w = SummaryWriter({str(tmp_path)!r}, max_queue=10)
        for step in range(1000):
            w.add_scalar("x", step * 2.0, step)
        w.add_image("img", [[[0.0, 1.0]]], 0)
        w.flush()
        print("flushed", flush=True)
        step = 1000
        while True:  # keep writing until killed
            w.add_scalar("x", step * 2.0, step)
            step += 1
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )
    try:
        assert proc.stdout.readline().strip() == "flushed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(60)
    values = scalars(tmp_path, "x")
    assert len(values) >= 1000
    assert values == [(s, s * 2.0) for s in range(len(values))]
    assert len(accumulator(tmp_path).Images("img")) == 1


# ---- the real TensorBoard server ---------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_server_shows_scalars(tmp_path):
    logdir = tmp_path / "logs"
    with SummaryWriter(logdir / "run1") as w:
        for step in range(5):
            w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_embedding(np.eye(3), metadata=["a", "b", "c"], tag="emb")
        w.add_histogram("w", np.random.randn(100), 2)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # readiness: the server answers and has loaded the run's tags
            assert server.poll() is None, "tensorboard exited"
            try:
                if "loss" in _get_json(base + "/data/plugin/scalars/tags").get("run1", {}):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not become ready"
            time.sleep(0.2)
        points = _get_json(base + "/data/plugin/scalars/scalars?run=run1&tag=loss")
        assert [(p[1], p[2]) for p in points] == [
            (s, pytest.approx(1.0 / (s + 1))) for s in range(5)
        ]
        assert "run1" in _get_json(base + "/data/plugin/projector/runs")
        ((_, step, buckets),) = _get_json(
            base + "/data/plugin/histograms/histograms?run=run1&tag=w"
        )
        assert step == 2 and sum(b[2] for b in buckets) == 100
        assert all(left <= right for left, right, _ in buckets)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)
