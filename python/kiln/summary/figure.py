"""Matplotlib figures rendered to RGBA pixels (matplotlib is optional)."""

import numpy as np


def figure_to_hwc(figure, close=True):
    """(H, W, 4) uint8 pixels of a matplotlib figure drawn with the Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as e:
        raise ImportError("[add_figure] needs matplotlib: pip install matplotlib") from e
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.array(canvas.buffer_rgba(), dtype=np.uint8)
    if close:
        import matplotlib.pyplot as plt

        plt.close(figure)
    return pixels
