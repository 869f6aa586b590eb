"""Images in a terminal with half blocks: '▀' in the top pixel's color on the bottom pixel's, so one
cell holds two pixels and a 28x28 image takes 28 columns by 14 lines (it renders in the browser view
too: nothing but colored text)."""
from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text


def diverging(values: np.ndarray) -> np.ndarray:
    """RGB for weights: blue below zero, red above, black at zero, scaled by the largest magnitude."""
    scale = float(np.abs(values).max()) or 1.0
    v = np.clip(values / scale, -1, 1)
    m = np.sqrt(np.abs(v))  # sqrt: faint strokes stay visible
    rgb = np.zeros((*v.shape, 3))
    rgb[..., 0] = np.where(v > 0, m, 0)
    rgb[..., 1] = 0.25 * m * (v < 0)
    rgb[..., 2] = np.where(v < 0, m, 0)
    return (255 * rgb).astype(np.uint8)


def gray(values: np.ndarray) -> np.ndarray:
    """RGB for pixels: black to white over the image's own range."""
    v = values.astype(np.float64)
    lo, hi = float(v.min()), float(v.max())
    v = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    return np.repeat((255 * v)[..., None], 3, axis=-1).astype(np.uint8)


def half_blocks(rgb: np.ndarray) -> Text:
    """An (H, W, 3) uint8 image as H/2 lines of W cells (an odd last row gets a black partner)."""
    if len(rgb) % 2:
        rgb = np.concatenate([rgb, np.zeros((1, *rgb.shape[1:]), rgb.dtype)])
    text = Text()
    for y in range(0, len(rgb), 2):
        for top, bottom in zip(rgb[y], rgb[y + 1]):
            text.append("▀", Style(color=Color.from_rgb(*map(int, top)), bgcolor=Color.from_rgb(*map(int, bottom))))
        if y + 2 < len(rgb):
            text.append("\n")
    return text


def image_side(features: int) -> int | None:
    """The side of a square grayscale image of `features` pixels (784 -> 28), else None."""
    side = int(round(features ** 0.5))
    return side if side * side == features and side >= 4 else None
