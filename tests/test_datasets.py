"""zeronn.datasets.load_mnist on small IDX files written here (nothing is downloaded)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.datasets import load_mnist

PREFIX = {"train": "train", "test": "t10k"}


def idx_bytes(a: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding of a uint8 array: magic 00 00 08 ndim, big-endian sizes, the bytes."""
    return (bytes((0, 0, type_code, a.ndim)) + struct.pack(f">{a.ndim}I", *a.shape)
            + np.ascontiguousarray(a, dtype=np.uint8).tobytes())


def write(folder: Path, name: str, data: bytes, gz: bool = False) -> Path:
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray, kind: str = "train",
                gz: bool = False, dot: bool = False) -> tuple[Path, Path]:
    sep = "." if dot else "-"
    p = PREFIX[kind]
    return (write(folder, f"{p}-images{sep}idx3-ubyte", idx_bytes(images), gz),
            write(folder, f"{p}-labels{sep}idx1-ubyte", idx_bytes(labels), gz))


def sample(n: int = 5, rows: int = 28, cols: int = 28, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    images.flat[:1] = 255  # the brightest pixel must read as exactly 1
    return images, rng.integers(0, 10, n, dtype=np.uint8)


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 12), rows=st.integers(1, 9), cols=st.integers(1, 9),
       gz=st.booleans(), dot=st.booleans(), kind=st.sampled_from(["train", "test"]),
       dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16))
def test_reads_back_what_was_written(tmp_path_factory: pytest.TempPathFactory, n: int,
                                     rows: int, cols: int, gz: bool, dot: bool, kind: str,
                                     dtype: str, seed: int) -> None:
    folder = tmp_path_factory.mktemp("mnist")
    images, labels = sample(n, rows, cols, seed)
    write_mnist(folder, images, labels, kind, gz=gz, dot=dot)
    X, y = load_mnist(folder, kind, dtype=dtype)
    assert X.shape == (n, 1, rows, cols) and X.dtype == np.dtype(dtype)
    assert X.flags.c_contiguous
    np.testing.assert_array_equal(X[:, 0], images.astype(dtype) / np.asarray(255, dtype))
    assert y.dtype == np.int64 and y.shape == (n,)
    np.testing.assert_array_equal(y, labels)
    if n:
        assert X.min() >= 0 and X.max() <= 1 and X[0, 0, 0, 0] == 1.0


def test_mnist_sized_files_and_the_public_name(tmp_path: Path) -> None:
    images, labels = sample(30)
    write_mnist(tmp_path, images, labels, "test", gz=True)
    X, y = zn.datasets.load_mnist(str(tmp_path), kind="test")
    assert X.shape == (30, 1, 28, 28) and X.dtype == np.float32
    np.testing.assert_array_equal(np.rint(X[:, 0] * 255).astype(np.uint8), images)
    np.testing.assert_array_equal(y, labels)


def test_a_gzip_file_under_the_raw_name_is_read(tmp_path: Path) -> None:
    images, labels = sample(3)
    write(tmp_path, "train-images-idx3-ubyte", gzip.compress(idx_bytes(images)))
    write(tmp_path, "train-labels-idx1-ubyte", idx_bytes(labels))
    np.testing.assert_array_equal(load_mnist(tmp_path)[1], labels)


def test_missing_files_say_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte \(or .*\.gz\) not found"
                                         r".*download.*train-labels-idx1-ubyte\.gz"):
        load_mnist(tmp_path)
    images, labels = sample(3)
    write_mnist(tmp_path, images, labels, "train")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte .*not found"):
        load_mnist(tmp_path, "test")
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte .*not found"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"is not a directory.*download"):
        load_mnist(tmp_path / "nowhere")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"kind must be 'train' or 'test', got 'valid'"):
        load_mnist(tmp_path, "valid")
    with pytest.raises(ValueError, match=r"dtype must be 'float64' or 'float32'"):
        load_mnist(tmp_path, dtype="int8")


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"not an IDX file: it starts with \(empty file\), expected the magic number "
          r"00000803"),
    (b"<html>Forbidden</html>", r"not an IDX file: it starts with 3c68746d"),
    (bytes((0, 0, 0x0D, 3)) + bytes(12), r"holds float32 elements \(magic number 00000d03\)"),
    (bytes((0, 0, 0x42, 3)) + bytes(12), r"holds type code 0x42 elements"),
    (bytes((0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3)),
     r"has 1 dimensions .*expected 3 .*is it the labels file under the wrong name"),
    (bytes((0, 0, 8, 3, 0, 0)), r"truncated: 6 bytes, shorter than its 16-byte header"),
])
def test_malformed_images_file_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    images, labels = sample(3)
    write_mnist(tmp_path, images, labels)
    path = write(tmp_path, "train-images-idx3-ubyte", content)
    with pytest.raises(ValueError, match=message) as err:
        load_mnist(tmp_path)
    assert str(path) in str(err.value)


@settings(max_examples=examples(20), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(1, 3 * 4 * 5), which=st.sampled_from(["images", "labels"]),
       gz=st.booleans())
def test_truncated_files_are_named(tmp_path_factory: pytest.TempPathFactory, cut: int,
                                   which: str, gz: bool) -> None:
    folder = tmp_path_factory.mktemp("mnist")
    images, labels = sample(3, 4, 5)
    data = idx_bytes(images if which == "images" else labels)
    cut = min(cut, len(data) - 16) if which == "images" else min(cut, 3)
    write_mnist(folder, images, labels, gz=gz)
    name = "train-images-idx3-ubyte" if which == "images" else "train-labels-idx1-ubyte"
    (folder / (name + ".gz" if gz else name)).write_bytes(
        gzip.compress(data[:-cut]) if gz else data[:-cut])
    with pytest.raises(ValueError, match=rf"{name}(\.gz)? is truncated: its header says "
                                         r".* but it holds .*download it again"):
        load_mnist(folder)


def test_a_cut_gzip_stream_is_named(tmp_path: Path) -> None:
    images, labels = sample(3)
    write_mnist(tmp_path, images, labels, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"images-idx3-ubyte\.gz is a damaged or incomplete "
                                         r"gzip file"):
        load_mnist(tmp_path)


def test_extra_bytes_mismatched_counts_and_empty_images(tmp_path: Path) -> None:
    images, labels = sample(4)
    imgs, labs = write_mnist(tmp_path, images, labels)
    imgs.write_bytes(idx_bytes(images) + b"\0\0")
    with pytest.raises(ValueError, match=r"has 2 bytes beyond the 4 x 28 x 28 images"):
        load_mnist(tmp_path)
    imgs.write_bytes(idx_bytes(images))
    labs.write_bytes(idx_bytes(labels[:3]))
    with pytest.raises(ValueError, match=r"holds 4 images but .*train-labels-idx1-ubyte "
                                         r"holds 3 labels"):
        load_mnist(tmp_path)
    labs.write_bytes(idx_bytes(np.zeros((4, 1), np.uint8)))
    with pytest.raises(ValueError, match=r"has 2 dimensions .*expected 1 for MNIST labels"):
        load_mnist(tmp_path)
    labs.write_bytes(idx_bytes(labels))
    imgs.write_bytes(idx_bytes(np.zeros((4, 0, 28), np.uint8)))
    with pytest.raises(ValueError, match=r"images of 0x28 pixels"):
        load_mnist(tmp_path)


@pytest.mark.skipif(not os.environ.get("ZERONN_MNIST"),
                    reason="set ZERONN_MNIST to a folder holding the real MNIST files")
def test_the_real_files() -> None:
    folder = os.environ["ZERONN_MNIST"]
    for kind, n in (("train", 60000), ("test", 10000)):
        X, y = load_mnist(folder, kind)
        assert X.shape == (n, 1, 28, 28) and y.shape == (n,)
        assert set(np.unique(y)) == set(range(10)) and X.max() == 1.0
