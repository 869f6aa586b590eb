"""A folder of images per class as a dataset: `root/<class>/*.png` (Pillow, the `images` extra).

Classes are the sub-folders in sorted order (Keras' `image_dataset_from_directory` layout). Every
image must have the first one's size; they are decoded as grayscale unless some image has colour,
then all as RGB (channels last), straight into one uint8 array sized from the file count.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from neuraterm.core.errors import NeuratermError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def class_files(root: Path) -> tuple[list[str], list[list[Path]]]:
    """The class names and each class's image files, sorted; cheap (no image is opened)."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [sorted(p for p in (root / c).iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
             for c in classes]
    if len(classes) < 2:
        raise NeuratermError(f"{root}: expected one sub-folder of images per class (root/<class>/*.png), "
                             f"found {len(classes)} folder{'s' if len(classes) != 1 else ''}")
    for name, found in zip(classes, files):
        if not found:
            raise NeuratermError(f"{root / name}: no images ({', '.join(sorted(EXTENSIONS))})")
    return classes, files


def pillow():
    try:
        from PIL import Image
    except ImportError:
        raise NeuratermError("reading a folder of images needs Pillow: pip install 'neuraterm[images]'") from None
    return Image


def read(root: Path) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, ...]]:
    """Images (N, H*W[*3]) uint8, labels, class names and the image shape (H, W) or (H, W, 3)."""
    Image = pillow()
    classes, files = class_files(root)
    paths = [p for found in files for p in found]
    y = np.repeat(np.arange(len(classes)), [len(found) for found in files]).astype(np.int64)
    size, colour = None, False
    for path in paths:  # headers only: sizes agree, and whether any image has colour
        try:
            with Image.open(path) as image:
                if size is None:
                    size, first = image.size, path
                elif image.size != size:
                    raise NeuratermError(f"{path}: {image.size[0]}x{image.size[1]} pixels, but {first} is "
                                         f"{size[0]}x{size[1]}; all images must have one size")
                colour = colour or image.mode not in GRAY_MODES
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise NeuratermError(f"{path}: not a readable image ({exc})") from None
    mode = "RGB" if colour else "L"
    shape = (size[1], size[0], 3) if colour else (size[1], size[0])
    x = np.empty((len(paths), int(np.prod(shape))), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                x[i] = np.asarray(image.convert(mode), dtype=np.uint8).reshape(-1)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise NeuratermError(f"{path}: not a readable image ({exc})") from None
    return x, y, classes, shape
