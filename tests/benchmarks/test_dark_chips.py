"""benchmarks/dark_chips.py: its brightening, with tinyface.data.align's luminance."""

import numpy as np

from tests.conftest import load_benchmark as _load


def test_dark_chips_luminance_is_aligns():
    """dark_chips.py's brightening as it was (a 3x3 median, then the gain) with PIL's luminance
    (tinyface.data.align.luminance)."""
    from PIL import Image, ImageFilter

    from tinyface.data.align import BRIGHTEN_TO

    dark_chips = _load("dark_chips")
    rgb = np.random.default_rng(0).integers(0, 30, (40, 40, 3), dtype=np.uint8)  # very dark: the median first
    out = dark_chips.brighten_with_median(rgb)
    smoothed = np.asarray(Image.fromarray(rgb).filter(ImageFilter.MedianFilter(3)))
    hi = float(np.percentile(np.asarray(Image.fromarray(smoothed).convert("L")), 99.5))
    assert np.array_equal(out, np.clip(np.rint(smoothed.astype(np.float32) * BRIGHTEN_TO / max(hi, 1.0)), 0, 255)
                          .astype(np.uint8))
