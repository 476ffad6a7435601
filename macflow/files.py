"""Files written whole or not at all, and their checksums: every cache, checkpoint and export goes through here.

:func:`atomic_write` writes into a temporary file beside the target (same filesystem), fsyncs it and renames it
into place, so a kill or a full disk leaves the previous file as it was.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from macflow.errors import InputError


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file in the same folder, fsync it, then rename it
    into place, so a reader never sees a partial file.

    The file gets the umask's normal permissions (not ``mkstemp``'s 0600); temporary files left beside ``path``
    by an earlier, killed write of it (``.<name>.*.tmp``) are removed. A full disk (or file-size limit) raises
    :class:`InputError` naming ``path``; the previous file, if any, is left as it was."""
    path = Path(path)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), new_file_mode())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        kept = "the previous file is kept" if path.exists() else "nothing was written"
        raise InputError(f"cannot write {path}: {os.strerror(err.errno)}; free space under {path.parent} and "
                         f"run again ({kept})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


STALE_AFTER_S = 60.0
"""A temporary file of a write older than this is taken as left by a killed process (a live write renames its
temporary file within seconds), so another process writing the same file at the same time keeps its own."""


def remove_stale_temp_files(path: Path) -> None:
    """Remove the temporary files (``.<name>.*.tmp``) that killed writes of ``path`` left beside it."""
    now = time.time()
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_AFTER_S:
                stale.unlink()
        except FileNotFoundError:  # removed meanwhile by another process
            pass


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Permissions of a new regular file under the process umask (0644 for the usual 022)."""
    return 0o666 & ~current_umask()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
