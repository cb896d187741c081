"""Sliding-window layout shared by the segmentors."""
from __future__ import annotations


def slide_windows(height: int, width: int, crop: int | tuple[int, int],
                  stride: int | tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Windows (y1, x1, y2, x2) covering an image, as mmseg's ``slide_inference`` lays them out.

    ``n = max(L - c + s - 1, 0) // s + 1`` per axis; window i starts at ``i*s``, ends at
    ``min(start + c, L)``, and its start is pulled back to ``max(end - c, 0)``.
    """
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if min(ch, cw, sh, sw) <= 0:
        raise ValueError(f'crop and stride must be positive, got crop={crop} stride={stride}')
    windows = []
    for i in range(max(height - ch + sh - 1, 0) // sh + 1):
        for j in range(max(width - cw + sw - 1, 0) // sw + 1):
            y2, x2 = min(i * sh + ch, height), min(j * sw + cw, width)
            windows.append((max(y2 - ch, 0), max(x2 - cw, 0), y2, x2))
    return windows
