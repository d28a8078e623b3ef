"""A pool of user ids for `run_python`: each concurrent run (as root) gets a uid no other run holds.

A lease is an exclusive `flock` on a file named after the uid in a root-only directory, so it holds
across threads and across processes (two `agentkit serve` on one machine) and ends by itself when
its holder dies. The uids are not in /etc/passwd: no login, no home, no files of their own.

Example:
    >>> with leased_uid() as first, leased_uid() as second:   # two runs at once never share a uid
    ...     first != second and FIRST_UID <= min(first, second)
    True
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

FIRST_UID = 1_900_000_000  # far above the ranges distributions and systemd hand out
POOL_SIZE = 1024


def _lock_dir() -> str:
    """Root's private directory of lease files; refuses one someone else could have planted."""
    base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
    path = os.path.join(base, "agentkit-python-uids")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"run_python: {path} must be a directory only this user can use")
    return path


@contextmanager
def leased_uid() -> Iterator[int]:
    """Hold a uid no other run holds; on release, kill whatever still runs under it."""
    folder = _lock_dir()
    for uid in range(FIRST_UID, FIRST_UID + POOL_SIZE):
        fd = os.open(os.path.join(folder, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            _kill_all(uid)  # nothing of this run may live on to meet the uid's next holder
            os.close(fd)
        return
    raise RuntimeError(f"run_python: all {POOL_SIZE} sandbox user ids are in use; try again later")


def _kill_all(uid: int) -> None:
    """SIGKILL every process whose real uid is `uid` (its /proc entry is root's: it is not dumpable)."""
    wanted = f"Uid:\t{uid}\t"
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/status") as status:
                if any(line.startswith(wanted) for line in status):
                    os.kill(int(entry), signal.SIGKILL)
        except OSError:
            continue
