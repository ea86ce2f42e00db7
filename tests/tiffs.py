"""TIFF files as a pipeline writes them (tifffile), in memory."""

from __future__ import annotations

import io

import numpy as np
import tifffile


def tiff_bytes(arr: np.ndarray) -> bytes:
    """``arr`` written by tifffile with its defaults, as a file's bytes."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()
