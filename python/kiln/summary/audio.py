"""Audio summaries: samples in [-1, 1] written as 16-bit PCM WAV."""

import io
import wave

import numpy as np

from kiln.summary import _proto


def audio_value(tag, samples, sample_rate):
    """``samples``: (L,) mono or (C, L) with C channels."""
    if samples.ndim == 1:
        samples = samples[None]
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise ValueError(
            f"[add_audio] '{tag}': expected (L,) or (channels, L) samples, got shape {samples.shape}"
        )
    if samples.dtype.kind not in "iuf":
        raise TypeError(f"[add_audio] '{tag}': samples must be numeric, got dtype {samples.dtype}")
    channels, frames = samples.shape
    pcm = np.clip(np.rint(samples.astype(np.float64) * 32767.0), -32767, 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(np.ascontiguousarray(pcm.T).tobytes())
    audio = _proto.Summary.Audio(
        sample_rate=float(sample_rate),
        num_channels=channels,
        length_frames=frames,
        encoded_audio_string=out.getvalue(),
        content_type="audio/wav",
    )
    return _proto.Summary.Value(tag=tag, audio=audio)
