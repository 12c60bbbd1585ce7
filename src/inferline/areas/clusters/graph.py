"""The cluster map as a PNG, drawn with numpy and written with zlib (no plotting library).

Each chunk is a dot at its 2-D PCA position, coloured by its cluster (grey: noise); each cluster's id is
printed at its centre in a small bitmap font.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

WIDTH, HEIGHT, MARGIN, RADIUS, FONT_SCALE = 800, 600, 40, 4, 3
BACKGROUND = (255, 255, 255)
NOISE = (200, 200, 200)
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
# 3x5 glyphs, one string of 15 pixels per character, row by row.
GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    ".": "000000000000010",
}


def color(group: int) -> tuple[int, int, int]:
    """The colour of group `group` (-1: noise)."""
    return NOISE if group < 0 else PALETTE[group % len(PALETTE)]


def _to_pixels(xy: np.ndarray) -> np.ndarray:
    """Map coordinates onto the canvas inside the margins, keeping the aspect ratio."""
    if not len(xy):
        return np.zeros((0, 2), dtype=np.int64)
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(high - low, 1e-9)
    scale = min((WIDTH - 2 * MARGIN) / span[0], (HEIGHT - 2 * MARGIN) / span[1])
    centre = (low + high) / 2
    px = (xy - centre) * scale + np.array([WIDTH / 2, HEIGHT / 2])
    px[:, 1] = HEIGHT - px[:, 1]  # y grows upwards on the map
    return np.rint(px).astype(np.int64)


def _dot(canvas: np.ndarray, x: int, y: int, rgb: tuple[int, int, int]) -> None:
    y0, y1 = max(0, y - RADIUS), min(HEIGHT, y + RADIUS + 1)
    x0, x1 = max(0, x - RADIUS), min(WIDTH, x + RADIUS + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1][(yy - y) ** 2 + (xx - x) ** 2 <= RADIUS**2] = rgb


def _text(canvas: np.ndarray, text: str, x: int, y: int, rgb: tuple[int, int, int]) -> None:
    """`text` centred on (x, y) on a white box."""
    glyphs = [GLYPHS[c] for c in text if c in GLYPHS]
    width, height = (4 * len(glyphs) - 1) * FONT_SCALE, 5 * FONT_SCALE
    left = min(max(0, x - width // 2), WIDTH - width - 2)
    top = min(max(0, y - height // 2), HEIGHT - height - 2)
    canvas[max(0, top - 2) : top + height + 2, max(0, left - 2) : left + width + 2] = BACKGROUND
    for n, glyph in enumerate(glyphs):
        bits = np.array([int(b) for b in glyph], dtype=bool).reshape(5, 3)
        mask = np.kron(bits, np.ones((FONT_SCALE, FONT_SCALE), dtype=bool))
        gx = left + 4 * n * FONT_SCALE
        canvas[top : top + height, gx : gx + 3 * FONT_SCALE][mask] = rgb


def render(xy: np.ndarray, groups: list[int], labels: dict[int, str]) -> bytes:
    """A PNG of the points `xy` coloured by `groups`, each group's label (`labels`) at its centre."""
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    pixels = _to_pixels(np.asarray(xy, dtype=np.float64))
    order = sorted(range(len(groups)), key=lambda i: groups[i] >= 0)  # noise first, under the clusters
    for i in order:
        _dot(canvas, int(pixels[i, 0]), int(pixels[i, 1]), color(groups[i]))
    members = np.asarray(groups)
    for group, label in labels.items():
        inside = pixels[members == group] if len(members) else pixels[:0]
        if len(inside):
            cx, cy = inside.mean(axis=0)
            _text(canvas, label, int(cx), int(cy), tuple(max(0, c - 60) for c in color(group)))  # type: ignore[arg-type]
    return encode_png(canvas)


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of the (height, width, 3) array `rgb`."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
