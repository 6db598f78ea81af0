"""Data a user has on disk: the MNIST handwritten digits in their IDX files, and plain
text for a character-level language model (``load_text``, defined in ``zeronn.text``
beside the vocabulary and the batches it feeds, and named here too).

Nothing here downloads anything: ``load_mnist(folder)`` reads the four files of the
MNIST database that a user fetched once (from yann.lecun.com/exdb/mnist or a mirror),
raw or gzip-compressed, and returns arrays in the layout the convolution layers take:

    images  (n, 1, 28, 28)  float in [0, 1]  (NCHW: one channel, the pixel value / 255)
    labels  (n,)            int64, the digit 0-9

The IDX format (the MNIST page describes it): a 4-byte magic number ``00 00 TT DD``,
``TT`` the element type (``08``: unsigned byte, the only one MNIST uses) and ``DD`` the
number of dimensions (3 for images: n, rows, columns; 1 for labels: n); then each
dimension's size as a big-endian 32-bit integer; then the elements, row-major. The same
format holds Fashion-MNIST and KMNIST (same file names), which load the same way.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike, NDArray

from zeronn._validation import resolve_dtype
from zeronn.text import load_text

__all__ = ["load_mnist", "load_text"]

_PREFIX = {"train": "train", "test": "t10k"}
_UBYTE = 0x08
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"
_DOWNLOAD = ("download the four MNIST files (train-images-idx3-ubyte.gz, "
             "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
             "t10k-labels-idx1-ubyte.gz) from yann.lecun.com/exdb/mnist or a mirror "
             "into that folder; raw or .gz both work")


def load_mnist(folder: str | os.PathLike[str], kind: str = "train",
               dtype: DTypeLike = "float32") -> tuple[NDArray, NDArray]:
    """The MNIST images and labels of ``kind`` (``"train"``: 60000, ``"test"``: 10000).

    ``folder`` holds ``{train,t10k}-images-idx3-ubyte`` and ``...-labels-idx1-ubyte``, each
    raw or ``.gz`` (the names with ``.idx`` for ``-idx``, as some mirrors spell them, work
    too). Returns ``images`` (n, 1, rows, cols) of ``dtype`` (float32 by default: MNIST's
    60000 training images take 188 MB so, twice that in float64) with values in [0, 1],
    and ``labels`` (n,) int64. Any problem with a file (missing, not IDX, truncated, a
    count that differs from the other file's) raises a ValueError naming the file.
    """
    if kind not in _PREFIX:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    dt = resolve_dtype(dtype)
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"MNIST folder {str(root)!r} is not a directory: {_DOWNLOAD}")
    prefix = _PREFIX[kind]
    images_path = _find(root, f"{prefix}-images", "idx3-ubyte")
    labels_path = _find(root, f"{prefix}-labels", "idx1-ubyte")
    pixels = _read_idx(images_path, ndim=3, what="images")
    labels = _read_idx(labels_path, ndim=1, what="labels")
    if pixels.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {pixels.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels: the two files come from different downloads; "
            "download both again")
    n, rows, cols = pixels.shape
    if rows == 0 or cols == 0:
        raise ValueError(f"{images_path} has images of {rows}x{cols} pixels: "
                         "not an images file; download it again")
    images = np.empty((n, 1, rows, cols), dtype=dt)
    # Divided, not multiplied by 1/255: the quotient is correctly rounded, so 255 gives
    # exactly 1 and each value equals torchvision's ToTensor() (no float64 temporary).
    np.divide(pixels[:, None], 255, out=images, dtype=dt)
    return images, labels.astype(np.int64)


def _find(root: Path, stem: str, suffix: str) -> Path:
    """The first existing spelling of one MNIST file in ``root``."""
    names = [f"{stem}-{suffix}", f"{stem}.{suffix}"]
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise ValueError(f"MNIST file {names[0]} (or {names[0]}.gz) not found in "
                     f"{str(root)!r}: {_DOWNLOAD}")


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip (whatever its name says)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path} is a damaged or incomplete gzip file ({exc}): "
                             "download it again") from None
    return data


def _read_idx(path: Path, ndim: int, what: str) -> NDArray[np.uint8]:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, as a uint8 array."""
    data = _read_bytes(path)
    magic = data[:4]
    expected = bytes((0, 0, _UBYTE, ndim))
    if len(magic) < 4 or magic[:2] != b"\0\0":
        shown = magic.hex() or "(empty file)"
        raise ValueError(f"{path} is not an IDX file: it starts with {shown}, expected the "
                         f"magic number {expected.hex()} of MNIST {what}; check the file "
                         "name, or download it again")
    if magic[2] != _UBYTE:
        kind = _TYPE_NAMES.get(magic[2], f"type code 0x{magic[2]:02x}")
        raise ValueError(f"{path} holds {kind} elements (magic number {magic.hex()}), "
                         f"expected unsigned bytes ({expected.hex()}) as MNIST {what} have")
    if magic[3] != ndim:
        raise ValueError(
            f"{path} has {magic[3]} dimensions (magic number {magic.hex()}), expected "
            f"{ndim} for MNIST {what} ({expected.hex()}): is it the "
            f"{'labels' if what == 'images' else 'images'} file under the wrong name?")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, shorter than its "
                         f"{header}-byte header; download it again")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = math.prod(shape)  # Python ints: a bogus header cannot overflow
    body = len(data) - header
    dims = " x ".join(map(str, shape))
    if body < size:
        raise ValueError(f"{path} is truncated: its header says {dims} bytes of {what} "
                         f"({size}) but it holds {body}; download it again")
    if body > size:
        raise ValueError(f"{path} has {body - size} bytes beyond the {dims} {what} its "
                         "header announces: the file is damaged; download it again")
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(shape)
