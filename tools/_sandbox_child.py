"""The child side of `run_python` (tools/python.py says what it guards): runs before the user's code.

`tools/python.py` passes this file's text to `python -I -S -c` (it is never imported) with the run's
settings as JSON in argv; it must work on Python 3.8+. Order matters: namespaces and read-only
mounts need privileges, so they come first; then the limits, the drop to the run's own uid (in a
user namespace: of every capability), the removal of unaudited functions, the audit hook, and only
then the user's code.
"""
from __future__ import annotations  # annotations stay strings: none is evaluated, on any Python 3.8+

import json
import os
import posix
import resource
import signal
import stat
import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: the sandbox never imports typing & co.
    from collections.abc import Callable, Iterable, Sized
    from ctypes import CDLL
    from importlib.machinery import ModuleSpec
    from typing import Any, NoReturn

    IsInstance = Callable[[object, type | tuple[type, ...]], bool]
    Split = Callable[[str, str], list[str]]
    Starts = Callable[[str, str | tuple[str, ...]], bool]

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
MS_PRIVATE, MS_STRICTATIME = 1 << 18, 1 << 24
KEPT_FLAGS = {b"nosuid": MS_NOSUID, b"nodev": MS_NODEV, b"noexec": MS_NOEXEC, b"noatime": 1024,
              b"nodiratime": 2048, b"relatime": 1 << 21}  # a user namespace may not change these
# C-level writers with no audit event, refused only where the filesystem is not read-only for us
UNSEALED_IMPORTS = ("_sqlite3", "_dbm", "_gdbm", "readline", "_multiprocessing")
UNSEALED_FUNCTIONS = ("mkfifo", "mknod")
UNAUDITED_FUNCTIONS = ("pidfd_open", "unshare", "setns")  # reach other processes or namespaces unseen


def isolate(libc: CDLL, cfg: dict[str, Any], root: bool) -> bool:
    """Enter new namespaces where the kernel permits; True when every mount but the box is read-only."""
    if not cfg["namespaces"]:
        return False
    private = 0 if cfg["net"] else CLONE_NEWNET | CLONE_NEWIPC
    user = 0 if root else CLONE_NEWUSER  # lets a non-root caller own a mount namespace
    for flags in (user | CLONE_NEWNS | private, user | private if private else 0):
        if flags and libc.unshare(flags) == 0:
            if user and not map_self():
                return False
            return bool(flags & CLONE_NEWNS) and seal(libc, cfg["dir"].encode())
    return False


def map_self() -> bool:
    """In a new user namespace: stay the same uid/gid (no root inside), keep the capabilities to mount."""
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (os.getuid(), os.getuid())),
                           ("gid_map", "%d %d 1" % (os.getgid(), os.getgid()))):
            with open("/proc/self/" + name, "w") as f:
                f.write(text)
        return True
    except OSError:
        return False


def seal(libc: CDLL, box: bytes) -> bool:
    """Make every mount of this (private) namespace read-only except a bind mount of the box."""
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) or libc.mount(box, box, None, MS_BIND, None):
        return False
    # an empty tmpfs over /dev/shm: the host's named semaphores and shared memory are out of sight
    libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=4k")
    sealed = True
    for point, options in mount_points().items():
        flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if point == box else MS_RDONLY)
        flags |= sum(KEPT_FLAGS.get(o, 0) for o in options)
        if not flags & (1024 | 1 << 21):
            flags |= MS_STRICTATIME
        if libc.mount(None, point, None, flags, None) and os.path.exists(point):  # a hidden one is unreachable
            sealed = False
    os.chdir(box)  # the old working directory is on the now read-only mount below the box's bind mount
    return sealed


def mount_points() -> dict[bytes, list[bytes]]:
    """{mount point: its per-mount options}, the topmost mount's where several share a point."""
    points: dict[bytes, list[bytes]] = {}
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            for code, char in ((b"\\040", b" "), (b"\\011", b"\t"), (b"\\012", b"\n"), (b"\\134", b"\\")):
                point = point.replace(code, char)
            points[point] = fields[5].split(b",")
    return points


def drop_capabilities(libc: CDLL) -> None:
    """In a user namespace the process holds every capability there; give them all up."""
    import ctypes
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    libc.capset(header, (ctypes.c_uint32 * 6)())


def strip_modules(sealed: bool, blocked: tuple[str, ...]) -> None:
    """Take away functions that act with no audit event; none can be brought back by re-importing."""
    names = UNAUDITED_FUNCTIONS + (() if sealed else UNSEALED_FUNCTIONS)
    for module in (os, posix, signal, sys.modules["_signal"]):
        for name in names + ("pidfd_send_signal",):
            module.__dict__.pop(name, None)
    os.__all__[:] = [n for n in os.__all__ if n not in names]
    for group in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks, os.supports_effective_ids):
        group -= {f for f in group if getattr(f, "__name__", None) in names}
    import _imp
    import warnings
    with warnings.catch_warnings():  # builtin modules not loaded yet: load them now, then no fresh copies
        warnings.simplefilter("ignore")
        for name in sys.builtin_module_names:
            if name not in sys.modules and not name.startswith(blocked) and name not in ("spwd", "_elementtree"):
                try:
                    __import__(name)
                except Exception:
                    pass
    _imp.create_builtin = refuse_builtin  # the real one builds a new posix or _signal with all their functions


def refuse_builtin(spec: ModuleSpec) -> NoReturn:
    raise ImportError(f"{spec.name} is not available in the sandbox", name=spec.name)


def confine(cfg: dict[str, Any], root: bool) -> bool:
    """Namespaces, mounts, capabilities, no new privileges; True when sealed. Its ctypes handles end with it."""
    sealed = False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        sealed = isolate(libc, cfg, root)
        if not root:
            drop_capabilities(libc)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    except Exception:
        pass
    return sealed


cfg = json.loads(sys.argv[1])
box, root = cfg["dir"], os.geteuid() == 0
sealed = confine(cfg, root)
import subprocess  # imported here so asyncio & co. still can; its unaudited process starter is taken away

for name in ("_posixsubprocess", "_fork_exec"):  # private names, not in the type stubs
    setattr(subprocess, name, None)
for name in [m for m in sys.modules if m.startswith(("ctypes", "_ctypes", "_posixsubprocess"))]:
    del sys.modules[name]  # importing them again is refused by the audit hook
for name, soft, hard in cfg["limits"]:
    held = resource.getrlimit(getattr(resource, name))[1]
    hard = hard if root or held == resource.RLIM_INFINITY else min(hard, held)
    resource.setrlimit(getattr(resource, name), (min(soft, hard), hard))
if root:
    os.setgroups([]); os.setgid(cfg["gid"]); os.setuid(cfg["uid"])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too big a file: OSError("File too large"), not death
BLOCKED = ("_test", "_xx", "_interp", "ctypes", "_ctypes", "_posixsubprocess", "_posixshmem",
           "_tkinter", "ossaudiodev") + (() if cfg["net"] else ("nis",)) + (() if sealed else UNSEALED_IMPORTS)
strip_modules(sealed, BLOCKED)
path = os.path.join(box, "main.py")
with open(path, encoding="utf-8") as f:
    source = f.read()


# The hook's and resolve's defaults bind the builtins they use: the user's code cannot swap them later.
# (absolute, lexically normalised path; whether it was relative and climbed with '..')
def resolve(p: Any, fspath: Callable[[Any], Any] = os.fspath, getcwd: Callable[[], str] = os.getcwd,
            isinstance: IsInstance = isinstance, bytes: type[bytes] = bytes, text: Callable[[str], str] = str.__str__,
            decode: Callable[[bytes, str, str], str] = bytes.decode, split: Split = str.split,
            join: Callable[[str, Iterable[str]], str] = str.join, starts: Starts = str.startswith) -> tuple[str, bool]:
    p = fspath(p)
    p = decode(p, "utf-8", "surrogateescape") if isinstance(p, bytes) else text(p)
    parts, climbs = split(p, "/"), False
    if not starts(p, "/"):
        climbs, parts = ".." in parts, split(getcwd(), "/") + parts
    out: list[str] = []
    for part in parts:
        if part == "..":
            out = out[:-1]
        elif part and part != ".":
            out.append(part)
    return "/" + join("/", out), climbs


# Audit events by what the hook does with them.
CHANGES = frozenset(("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.link", "os.symlink", "os.chmod",
                     "os.lchmod", "os.chown", "os.utime", "os.truncate", "os.setxattr", "os.removexattr",
                     "os.chflags", "os.lchflags"))
SPAWNS = frozenset(("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                    "subprocess.Popen", "os.startfile", "os.killpg", "sys.remote_exec"))
LISTINGS = frozenset(("os.listdir", "os.scandir"))
REFUSED = frozenset(("gc.get_objects", "gc.get_referrers", "gc.get_referents",
                     "sqlite3.enable_load_extension", "sqlite3.load_extension"))
NETWORK = frozenset(("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                     "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
                     "socket.getnameinfo", "syslog.openlog", "syslog.syslog"))
LIBS = tuple(p + "/" for p in sys.path)


def hook(event: str, args: tuple[Any, ...], resolve: Callable[[Any], tuple[str, bool]] = resolve, box: str = box,
         boxs: str = box + "/", peers: str = cfg["peers"], net: bool = cfg["net"], pid: int = os.getpid(),
         spid: str = str(os.getpid()), libs: tuple[str, ...] = LIBS, isinstance: IsInstance = isinstance,
         int: type[int] = int, len: Callable[[Sized], int] = len, str: type[str] = str, bytes: type[bytes] = bytes,
         text: Callable[[str], str] = str.__str__, starts: Starts = str.startswith, split: Split = str.split,
         isdigit: Callable[[str], bool] = str.isdigit, deny: type[PermissionError] = PermissionError,
         stat: Callable[[str], os.stat_result] = os.stat, isdir: Callable[[int], bool] = stat.S_ISDIR,
         write: int = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
         changes: frozenset[str] = CHANGES, spawns: frozenset[str] = SPAWNS, blocked: tuple[str, ...] = BLOCKED,
         listings: frozenset[str] = LISTINGS, refused: frozenset[str] = REFUSED, network: frozenset[str] = NETWORK,
         mine: frozenset[int] = frozenset(), id: Callable[[object], int] = id) -> None:
    if event == "open":
        if isinstance(args[0], int):
            return
        where, climbs = resolve(args[0])
        inside = where == box or starts(where, boxs)
        if starts(where, peers) and not inside:
            raise deny(f"the sandbox may not reach another run's directory: {where}")
        if (args[2] or 0) & write and (climbs or not inside) and where != "/dev/null":
            raise deny(f"the sandbox may only write inside its working directory {box}, not {where}")
        if args[1] is None and not inside:  # os.open: no directory handles outside (dir_fd tricks)
            try:
                climbs = climbs or isdir(stat(where).st_mode)
            except OSError:
                pass
            if climbs:
                raise deny(f"the sandbox may not open directories outside {box}: {where}")
        part = split(where, "/")
        if starts(where, "/proc/") and ((isdigit(part[2]) and part[2] != spid) or "root" in part or "cwd" in part):
            raise deny(f"the sandbox may not read {where}")
    elif event in changes:
        for p in args[:2] if event in ("os.rename", "os.link", "os.symlink") else args[:1]:
            if isinstance(p, int) and event in ("os.truncate", "os.utime"):
                continue
            where, climbs = ("a file descriptor", True) if isinstance(p, int) else resolve(p)
            if event == "os.symlink" or climbs or not (where == box or starts(where, boxs)):
                raise deny(f"{event} is not allowed outside the sandbox's working directory {box}: {where}")
    elif event in listings:
        where = resolve(args[0])[0] + "/" if isinstance(args[0], (str, bytes)) else boxs
        if starts(where, peers) and not starts(where, boxs):
            raise deny(f"the sandbox may not reach another run's directory: {where}")
    elif event in spawns:
        raise deny(f"starting or signalling other processes is not allowed in the sandbox ({event})")
    elif event in ("os.kill", "resource.prlimit") and args[0] != pid and not (event[0] == "r" and args[0] == 0):
        raise deny(f"{event} on another process is not allowed in the sandbox")
    elif event == "import":
        if starts(text(args[0]), blocked) or text(args[0]) in ("posix", "_signal"):  # those two: stripped copies only
            raise deny(f"importing {args[0]} is not allowed in the sandbox")
        if len(args) > 1 and args[1] is not None and not starts(text(args[1]), libs):
            raise deny(f"loading native code from {args[1]} is not allowed in the sandbox")
    elif starts(event, "ctypes.") or event in refused:
        raise deny(f"{event} is not allowed in the sandbox")
    elif event == "object.__setattr__" and id(args[0]) in mine and args[1] in ("__code__", "__defaults__"):
        raise deny(f"changing a function's {args[1]} is not allowed in the sandbox")
    elif event == "sqlite3.connect":  # its file is opened in C, with no "open" event
        name: Any = args[0] if isinstance(args[0], (str, bytes)) else resolve(args[0])[0]  # str or bytes
        name = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else text(name)
        if starts(name, "file:"):
            name = split(split(name[5:], "?")[0], "#")[0]
        if name not in ("", ":memory:") and not starts(resolve(name)[0] + "/", boxs):
            raise deny(f"the sandbox may only write inside its working directory {box}, not {name}")
    elif event == "socket.bind" and isinstance(args[1], (str, bytes)) and args[1][:1] not in ("\0", b"\0"):
        where = resolve(args[1])[0]  # a path: AF_UNIX creates a socket file there
        if not starts(where, boxs):
            raise deny(f"the sandbox may only write inside its working directory {box}, not {where}")
    elif not net and (event in network or (event == "socket.__new__" and args[1] != 1)):  # 1: AF_UNIX
        raise deny(f"network access is disabled in the sandbox ({event})")


hook.__defaults__ = (hook.__defaults__ or ())[:-2] + (frozenset((id(hook), id(resolve))), id)  # before it is active
__import__("gc").collect()  # the modules dropped above must be gone, not found again through gc
main = types.ModuleType("__main__")
main.__file__ = path
sys.modules["__main__"], sys.argv = main, [path]
sys.addaudithook(hook)
try:
    exec(compile(source, path, "exec"), main.__dict__)
except SystemExit:
    raise
except BaseException as exc:
    import traceback
    main.__dict__.clear()  # free what the code held: a MemoryError must still print
    traceback.clear_frames(exc.__traceback__)
    frames = exc.__traceback__
    traceback.print_exception(type(exc), exc, frames.tb_next if frames else None)  # without this bootstrap's frame
    sys.exit(1)
