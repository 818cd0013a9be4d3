"""Atomic file replacement: readers see the old file or the new one, never a mix."""

import contextlib
import os
import tempfile


def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path):
    """Yields a binary file in `path`'s directory; on success it is flushed, fsynced
    and renamed over `path`, and the directory is fsynced so the rename is durable.
    On any error (or if the process dies) `path` keeps its old contents; only a
    `.<name>.*.tmp` file may be left behind by a killed process."""
    path = os.path.realpath(os.fspath(path))  # write through symlinks, like open()
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would surprise users
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
