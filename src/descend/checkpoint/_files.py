"""Reading a checkpoint file whole, and replacing one atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from descend.errors import CheckpointError


def read_bytes(path: Path) -> bytes:
    """The file's content, read once (``safetensors.deserialize`` takes ``bytes``)."""
    name = repr(str(path))
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {name} does not exist; check the path") from None
    except IsADirectoryError:
        raise CheckpointError(f"{name} is a folder, not a checkpoint file") from None
    except PermissionError:
        raise CheckpointError(f"cannot read {name}: permission denied") from None
    if not data:
        raise CheckpointError(f"{name} is empty (0 bytes); it is not a descend checkpoint")
    return data


def foreign(path: Path, data: bytes) -> CheckpointError:
    """The error for a file of another format, saying which when it is a known one."""
    start = bytes(data[:8])
    if start[:1] == b"\x80":
        looks = "looks like a pickle file, which descend never loads: unpickling can run code"
    elif start.startswith(b"PK\x03\x04"):
        looks = "looks like a zip or .npz file"
    elif start.startswith(b"\x93NUMPY"):
        looks = "looks like a .npy file"
    else:
        looks = f"starts with {start!r}"
    return CheckpointError(
        f"{str(path)!r} is not a descend checkpoint (it {looks}); load it with the program "
        "that wrote it"
    )


def write_atomically(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """Write ``chunks`` to ``path`` so that it is always the old file or the new one, whole.

    A temporary file in the same folder is written, flushed and fsync-ed, given the old
    file's permissions, renamed over ``path`` (``os.replace`` is atomic on POSIX and
    Windows), then the folder is fsync-ed. A crash leaves at worst a stray
    ``.<name>.*.tmp`` file.
    """
    folder = path.parent
    if not folder.is_dir():
        raise CheckpointError(
            f"cannot save {str(path)!r}: the folder {str(folder)!r} does not exist"
        )
    mode = _file_mode(path)
    temporary_name = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as temporary:
            temporary_name = temporary.name
            for chunk in chunks:
                temporary.write(chunk)
            temporary.flush()
            os.fsync(temporary.fileno())
        os.chmod(temporary_name, mode)
        os.replace(temporary_name, path)
    except BaseException:
        if temporary_name is not None:
            Path(temporary_name).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)


def _file_mode(path: Path) -> int:
    """Keep an existing file's permissions; else the usual ones for a new file (umask)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0o022)  # reading the umask means setting it; restore at once
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    # Makes the rename durable on POSIX; folders cannot be opened like this on Windows.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
