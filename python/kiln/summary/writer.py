"""SummaryWriter: torch.utils.tensorboard's API over kiln's event file writer."""

import os
import socket
import time
from datetime import datetime

from kiln._C import Tensor
from kiln.summary import _proto
from kiln.summary._convert import to_float, to_numpy
from kiln.summary.audio import audio_value
from kiln.summary.custom_scalars import custom_scalars_summary
from kiln.summary.embedding import write_embedding
from kiln.summary.event_file import DEFAULT_MAX_FILE_BYTES, EventFileWriter
from kiln.summary.figure import figure_to_hwc
from kiln.summary.histograms import histogram_raw_value, histogram_value
from kiln.summary.hparams import hparams_summaries
from kiln.summary.images import image_value, to_hwc_uint8
from kiln.summary.pr_curve import pr_curve_counts, pr_curve_value
from kiln.summary.scalars import scalar_tensor_value
from kiln.summary.text import text_value


class SummaryWriter:
    """Writes TensorBoard event files into ``log_dir``, as torch's SummaryWriter.

    Values may be kiln tensors, NumPy arrays or Python numbers. Writing happens
    on a background thread, woken once ``max_queue`` records are pending and
    every ``flush_secs`` (which also fsyncs); `flush()` and `close()` return once
    everything logged is on disk. ``max_file_bytes`` (kiln only) is the size at
    which event files roll over. ``purge_step``: when resuming a crashed run,
    TensorBoard hides the earlier files' events at steps >= purge_step.
    """

    def __init__(
        self,
        log_dir=None,
        comment="",
        purge_step=None,
        max_queue=10,
        flush_secs=120,
        filename_suffix="",
        *,
        max_file_bytes=DEFAULT_MAX_FILE_BYTES,
    ):
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = os.fspath(log_dir)
        self.purge_step = purge_step
        self.max_queue = max_queue
        self.flush_secs = flush_secs
        self.filename_suffix = filename_suffix
        self.max_file_bytes = max_file_bytes
        self.file_writer = None
        self.all_writers = {}
        self._get_file_writer()

    def get_logdir(self):
        return self.log_dir

    def _get_file_writer(self):
        """The run's writer; reopened (new file) when used after close(), as in torch."""
        if self.file_writer is None:
            self.file_writer = self._open(self.log_dir)
            if self.purge_step is not None:
                # TensorBoard drops earlier events at steps >= purge_step on seeing this.
                self.file_writer.add_event(
                    _proto.Event(
                        step=int(self.purge_step),
                        wall_time=time.time(),
                        session_log=_proto.SessionLog(status=_proto.SessionLog.START),
                    )
                )
                self.purge_step = None
        return self.file_writer

    def _open(self, logdir):
        writer = self.all_writers.get(logdir)
        if writer is None:
            writer = EventFileWriter(
                logdir, self.max_queue, self.flush_secs, self.filename_suffix, self.max_file_bytes
            )
            self.all_writers[logdir] = writer
        return writer

    def _add(self, value, global_step, walltime):
        summary = value if isinstance(value, _proto.Summary) else _proto.Summary(value=[value])
        self._get_file_writer().add_summary(summary, _step(global_step), walltime)

    # ---- scalars -----------------------------------------------------------

    def add_scalar(
        self,
        tag,
        scalar_value,
        global_step=None,
        walltime=None,
        new_style=False,
        double_precision=False,
    ):
        if new_style or double_precision:
            value = scalar_tensor_value(tag, to_float(scalar_value), double_precision)
            return self._add(value, global_step, walltime)
        # The training-loop hot path: plain floats and one-element tensors skip to_float.
        if type(scalar_value) is float:
            value = scalar_value
        elif type(scalar_value) is Tensor and scalar_value.numel() == 1:
            value = float(scalar_value.item())
        else:
            value = to_float(scalar_value)
        (self.file_writer or self._get_file_writer()).add_scalar(
            tag,
            value,
            0 if global_step is None else int(global_step),
            time.time() if walltime is None else float(walltime),
        )

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """One sub-run per key (``<log_dir>/<main_tag>_<key>``), all under ``main_tag``."""
        self._get_file_writer()
        walltime = time.time() if walltime is None else float(walltime)
        step = 0 if global_step is None else int(global_step)
        for tag, value in tag_scalar_dict.items():
            run = os.path.join(self.log_dir, main_tag.replace("/", "_") + "_" + tag)
            self._open(run).add_scalar(main_tag, to_float(value), step, walltime)

    # ---- distributions -----------------------------------------------------

    def add_histogram(
        self, tag, values, global_step=None, bins="tensorflow", walltime=None, max_bins=None
    ):
        self._add(histogram_value(tag, to_numpy(values), bins, max_bins), global_step, walltime)

    def add_histogram_raw(
        self,
        tag,
        min,
        max,
        num,
        sum,
        sum_squares,
        bucket_limits,
        bucket_counts,
        global_step=None,
        walltime=None,
    ):
        value = histogram_raw_value(
            tag, min, max, num, sum, sum_squares, to_numpy(bucket_limits), to_numpy(bucket_counts)
        )
        self._add(value, global_step, walltime)

    # ---- media -------------------------------------------------------------

    def add_image(self, tag, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        pixels = to_hwc_uint8(to_numpy(img_tensor), dataformats, "add_image")
        self._add(image_value(tag, pixels), global_step, walltime)

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        """A batch of images, shown as one grid image of up to 8 columns."""
        pixels = to_hwc_uint8(to_numpy(img_tensor), dataformats, "add_images")
        self._add(image_value(tag, pixels), global_step, walltime)

    def add_figure(self, tag, figure, global_step=None, close=True, walltime=None):
        """A matplotlib figure, or a list of same-sized figures shown as a grid."""
        if isinstance(figure, (list, tuple)):
            import numpy as np

            pixels = np.stack([figure_to_hwc(f, close) for f in figure])
            self.add_images(tag, pixels, global_step, walltime, dataformats="NHWC")
        else:
            self.add_image(
                tag, figure_to_hwc(figure, close), global_step, walltime, dataformats="HWC"
            )

    def add_audio(self, tag, snd_tensor, global_step=None, sample_rate=44100, walltime=None):
        self._add(audio_value(tag, to_numpy(snd_tensor), sample_rate), global_step, walltime)

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        self._add(text_value(tag, text_string), global_step, walltime)

    # ---- projector, hparams, curves, layouts -------------------------------

    def add_embedding(
        self,
        mat,
        metadata=None,
        label_img=None,
        global_step=None,
        tag="default",
        metadata_header=None,
    ):
        self._get_file_writer()  # the projector only looks at runs with event files
        write_embedding(
            self.log_dir,
            to_numpy(mat),
            metadata=None if metadata is None else _plain_list(metadata),
            label_img=None if label_img is None else to_numpy(label_img),
            global_step=global_step,
            tag=tag,
            metadata_header=metadata_header,
        )

    def add_hparams(
        self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None, global_step=None
    ):
        """Records this run's hyperparameters and metrics (this run unless ``run_name``).

        A metric's value is the last scalar logged under its tag, so logging
        ``add_scalar(metric_tag, value, step)`` later updates it; a metric given
        as None is declared without a value.
        """
        summaries = hparams_summaries(hparam_dict, metric_dict, hparam_domain_discrete)
        writer = (
            self._get_file_writer()
            if run_name is None
            else self._open(os.path.join(self.log_dir, run_name))
        )
        step = 0 if global_step is None else int(global_step)
        now = time.time()
        for summary in summaries:
            writer.add_summary(summary, step, now)
        for tag, value in metric_dict.items():
            if value is not None:
                writer.add_scalar(tag, to_float(value), step, now)

    def add_pr_curve(
        self,
        tag,
        labels,
        predictions,
        global_step=None,
        num_thresholds=127,
        weights=None,
        walltime=None,
    ):
        counts = pr_curve_counts(
            to_numpy(labels),
            to_numpy(predictions),
            num_thresholds,
            None if weights is None else to_numpy(weights),
        )
        self._add(pr_curve_value(tag, *counts), global_step, walltime)

    def add_pr_curve_raw(
        self,
        tag,
        true_positive_counts,
        false_positive_counts,
        true_negative_counts,
        false_negative_counts,
        precision,
        recall,
        global_step=None,
        num_thresholds=127,
        weights=None,
        walltime=None,
    ):
        arrays = [
            to_numpy(x)
            for x in (
                true_positive_counts,
                false_positive_counts,
                true_negative_counts,
                false_negative_counts,
                precision,
                recall,
            )
        ]
        self._add(pr_curve_value(tag, *arrays), global_step, walltime)

    def add_custom_scalars(self, layout):
        self._add(custom_scalars_summary(layout), None, None)

    def add_custom_scalars_multilinechart(self, tags, category="default", title="untitled"):
        self.add_custom_scalars({category: {title: ["Multiline", list(tags)]}})

    def add_custom_scalars_marginchart(self, tags, category="default", title="untitled"):
        self.add_custom_scalars({category: {title: ["Margin", list(tags)]}})

    # ---- lifetime ----------------------------------------------------------

    def flush(self):
        """Blocks until everything logged so far is on disk."""
        for writer in self.all_writers.values():
            writer.flush()

    def close(self):
        """Flushes and closes every file; logging again afterwards opens new files."""
        for writer in self.all_writers.values():
            writer.close()
        self.all_writers = {}
        self.file_writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _step(global_step):
    return None if global_step is None else int(global_step)


def _plain_list(metadata):
    if isinstance(metadata, (list, tuple)):
        return list(metadata)
    return to_numpy(metadata).tolist()
