"""The one atomic file writer: a file appears complete or not at all, never half written.

Every writer of the package goes through here (model files, ONNX files, the command
line's CSV output and figures). The data goes to a temporary file in the target's folder
(so ``os.replace`` is atomic: same file system), is fsynced, gets the permission bits a
plain ``open`` would have given it (or the replaced file's), and is renamed over the
target. On any error, Ctrl-C included, the temporary file is removed and an existing
target keeps its old content.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

__all__ = ["atomic_path", "atomic_write"]


def _new_file_mode(path: str) -> int:
    """Permission bits for the written file: the replaced file's, or 0o666 minus the umask."""
    with suppress(OSError):
        return os.stat(path).st_mode & 0o7777
    # The umask read without setting it (os.umask would change it for every thread).
    with suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return 0o644


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[str]:
    """Yields a temporary file name in ``path``'s folder; once the block has written it,
    it replaces ``path`` (for writers that want a file name: pandas, matplotlib, onnx).

    ``suffix`` ends the temporary name (``".png"``: libraries that pick a format from the
    extension see the right one). A missing folder is ``FileNotFoundError``, a folder as
    ``path`` ``IsADirectoryError``, both before anything is written.
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "the folder does not exist: create it first",
                                folder)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "is a folder: give a file name", target)
    mode = _new_file_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=suffix + ".tmp",
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        # The writer may have closed without syncing: flush the data before the rename,
        # or a crash could leave the new name pointing at empty blocks.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)  # mkstemp makes the file private (0600)
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable (not possible on every platform: best effort).
    with suppress(OSError, AttributeError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yields a binary file that replaces ``path`` only once it is completely on disk.

    The same rules as :func:`atomic_path` (which it uses), for writers that take an open
    file.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f
