"""`run_python`: run model-written Python in a separate, limited process and read back what it printed.

Each call writes the code to `main.py` in a fresh temporary directory (deleted afterwards) and runs it
with `python -I -S` (standard library only) in a new session, stdin closed, with an empty environment
(no secrets: only PATH, HOME, TMPDIR and LANG), behind two layers:

* The operating system: rlimits on CPU time, address space, file size, open files, processes and
  threads (`RLIMIT_NPROC`) and core dumps; a wall-clock timeout that kills the whole process group;
  output read back with a cap. Started as root, each run drops to a uid/gid of its own, leased from
  a pool (tools/_sandbox_uids.py; no two concurrent runs, in any process, share one) and owning its
  0700 directory, so runs cannot read, change or signal each other, the process limit is per run and
  root's files and the caller's `/proc/<pid>/environ` are out of reach; it sets `PR_SET_NO_NEW_PRIVS`.
  Where the kernel permits (as root, or in a user namespace otherwise), the run gets a private mount
  namespace in which every mount but its directory is remounted read-only (nosuid, nodev) and
  /dev/shm is an empty read-only tmpfs, and without `allow_network` new network and IPC namespaces.
  Where refused, this is skipped and the audit layer below refuses more.
* Audit hooks (`sys.addaudithook`, installed before the code runs; Python code cannot remove them)
  refuse: writing, renaming, deleting or linking outside the temporary directory (world-writable /tmp
  included), directory handles outside it and any access to another run's directory; other
  processes' `/proc` entries; new processes (fork, exec, spawn, subprocess, os.system,
  `_posixsubprocess`) and signals to other processes; ctypes, Tcl, subinterpreters, CPython's
  `_test*` modules, POSIX shared memory, sqlite extensions, `gc` object lookups and native extensions
  from outside the standard library; AF_UNIX sockets bound to paths outside the directory; and
  without `allow_network`, sockets other than local socket pairs, connect, bind, sendto, DNS lookups
  and syslog. Functions that act with no audit event are taken away before the code runs:
  `os.pidfd_open`, `signal.pidfd_send_signal`, `os.unshare`/`os.setns`, and (so the module cannot be
  rebuilt with them) `_imp.create_builtin`. Without the read-only mounts, the C modules that create
  files with no audit event are refused too: `sqlite3` (ATTACH and VACUUM INTO write anywhere),
  `dbm.ndbm`/`dbm.gnu`, `readline`, `_multiprocessing` (named semaphores in /dev/shm), `os.mkfifo`
  and `os.mknod`.

What it does NOT isolate. It is not a container or a VM (for hostile code use one: gVisor,
Firecracker, a container with seccomp and a read-only root filesystem):

* Same kernel: the code reads every world-readable file, lists directories and sees the host's
  processes in /proc (their command lines; the hook refuses opening their entries).
* Not started as root, nothing changes user: the code reads all of the caller's files (~/.ssh),
  RLIMIT_NPROC counts all the caller's processes (set to their count plus `max_processes`), and
  concurrent runs share the caller's uid, so only the audit hooks keep them apart (and the user
  namespace, where the kernel permits one, keeps their writes in their own directory).
* Audit hooks are defence in depth, not a security boundary: a determined attacker gets past them
  with crafted bytecode (`marshal.loads`), interpreter memory bugs, a path-like object whose
  `__fspath__` (run inside the hook) changes its answer or, on Python 3.13+, rewrites the hook's
  locals through its frame. Native code then meets only the OS layer: with the read-only mounts it
  writes only its directory, device files such as /dev/null and its already open files; without
  them (a kernel that refuses mount namespaces) it writes wherever the uid may, world-writable
  directories included, and a later run leased the same uid could read what it left there.
* Memory is capped as address space (`RLIMIT_AS`) per process, not as a cgroup's resident memory.

Example:
    >>> python_tool(timeout_seconds=5).name
    'run_python'
    >>> python_tool()(code="print(6 * 7)")  # doctest: +SKIP
    '42\\n'
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import IO, NamedTuple

from agentkit.tool import Tool, tool
from agentkit.tools._sandbox_uids import FIRST_UID, POOL_SIZE, leased_uid

MB = 1024 * 1024
SANDBOX_UIDS = range(FIRST_UID, FIRST_UID + POOL_SIZE)  # as root, each concurrent run has one of its own
MAX_CODE_CHARS = 100_000
MAX_OPEN_FILES = 64
_NAMESPACES = True  # False: run as on a kernel that refuses them (the tests check that fallback)

# Runs in the child before the user's code (as root when the caller is): read as text, never imported here.
_BOOTSTRAP = Path(__file__).with_name("_sandbox_child.py").read_text(encoding="utf-8")
_LAUNCH = "import sys; exec(compile(sys.argv.pop(1), '<sandbox>', 'exec'))"


class PythonRunError(RuntimeError):
    """The code failed (exception, non-zero exit, limit reached); the message has its output and why."""


class _Limits(NamedTuple):
    timeout: float
    cpu: int
    memory: int
    fsize: int
    nproc: int
    chars: int
    net: bool


def python_tool(
    *,
    timeout_seconds: float = 10.0,
    cpu_seconds: int = 5,
    memory_bytes: int = 512 * MB,
    max_file_bytes: int = 10 * MB,
    max_processes: int = 32,
    max_output_chars: int = 4000,
    allow_network: bool = False,
    python_executable: str | None = None,
) -> Tool:
    """Build the `run_python` tool with these limits (the module docstring says what they cover).

    `max_processes` bounds processes and threads; stdout keeps its first `max_output_chars` characters,
    stderr its last `max_output_chars // 2`. A failed run raises `PythonRunError`, so the model reads
    an error observation with the output and the reason. As root, `python_executable` defaults to the
    first of this interpreter, its base interpreter, /usr/local/bin/python3 and /usr/bin/python3 whose
    standard library the sandbox's users can import.

    Example:
        >>> sandbox = python_tool(timeout_seconds=2, memory_bytes=256 * MB)
        >>> sandbox(code="import math; print(math.factorial(20))")  # doctest: +SKIP
        '2432902008176640000\\n'
    """
    given = dict(timeout_seconds=timeout_seconds, cpu_seconds=cpu_seconds, memory_bytes=memory_bytes,
                 max_file_bytes=max_file_bytes, max_processes=max_processes, max_output_chars=max_output_chars)
    for label, value in given.items():
        if not value > 0:
            raise ValueError(f"python_tool: {label} must be positive, got {value!r}.")
    limits = _Limits(float(timeout_seconds), int(cpu_seconds), int(memory_bytes), int(max_file_bytes),
                     int(max_processes), int(max_output_chars), bool(allow_network))
    description = (
        "Run a Python 3 program (standard library only) in a sandbox and return what it printed. "
        f"Limits: {timeout_seconds:g} s wall clock, {cpu_seconds} s CPU, {_mb(memory_bytes)} memory, files up to "
        f"{_mb(max_file_bytes)}, only inside the working directory; no subprocesses; network "
        f"{'allowed' if allow_network else 'disabled'}. Print the results you need; nothing is kept between calls."
    )

    @tool(name="run_python", description=description, timeout=timeout_seconds + 5,
          max_output_chars=2 * max_output_chars + 500, max_output_bytes=8 * max_output_chars + 2000)
    def run_python(code: str) -> str:
        """Run Python code in a sandbox.

        Args:
            code: a complete Python program; print() what you want to see.
        """
        if len(code) > MAX_CODE_CHARS:
            raise ValueError(f"The code has {len(code)} characters; the limit is {MAX_CODE_CHARS}.")
        status, out, err = _execute(python_executable or _interpreter(limits), code, limits)
        if status is None:
            if not out.strip() and not err.strip():
                return "(no output: the code ran without printing anything; print() the results you need)"
            return out + (f"\n[stderr]\n{err}" if err.strip() else "")
        raise PythonRunError(f"The code failed: {status}.\n[stdout]\n{out or '(empty)'}\n[stderr]\n{err or '(empty)'}")

    return run_python


_chosen: dict[tuple[str, ...], str] = {}
_choosing = threading.Lock()


def _interpreter(limits: _Limits) -> str:
    """As root: the first candidate interpreter whose standard library the dropped user can import."""
    if os.geteuid() != 0:
        return sys.executable
    candidates = [sys.executable, os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  "/usr/local/bin/python3", "/usr/bin/python3"]
    key = tuple(c for i, c in enumerate(candidates) if c not in candidates[:i] and os.access(c, os.X_OK))
    probe = limits._replace(timeout=10.0, cpu=5, memory=max(limits.memory, 256 * MB), chars=300)
    with _choosing:
        failures = []
        for exe in key if key not in _chosen else ():
            why, _, err = _execute(exe, "import decimal, fractions, traceback", probe)
            if why is None:
                _chosen[key] = exe
                break
            failures.append(f"{exe}: {why}: {err.strip()[-150:]}")
        if key not in _chosen:
            raise RuntimeError("run_python: no Python whose standard library the sandbox's users can import "
                               f"({'; '.join(failures) or 'none found'}); pass python_executable=...")
        return _chosen[key]


def _execute(exe: str, code: str, limits: _Limits) -> tuple[str | None, str, str]:
    """Run once as a uid of its own (as root) or the caller's; return (why it failed, or None), stdout, stderr."""
    with leased_uid() if os.geteuid() == 0 else nullcontext(None) as uid:
        return _run(exe, code, limits, uid)


def _run(exe: str, code: str, limits: _Limits, uid: int | None) -> tuple[str | None, str, str]:
    box = os.path.realpath(tempfile.mkdtemp(prefix="agentkit-python-"))  # 0700: only its owner gets in
    try:
        with open(os.path.join(box, "main.py"), "w", encoding="utf-8") as source:
            source.write(code)
        if uid is not None:
            for path in (box, os.path.join(box, "main.py")):
                os.chown(path, uid, uid)
        procs = limits.nproc + (0 if uid is not None else _task_count(os.getuid()))
        config = {"dir": box, "peers": os.path.join(os.path.dirname(box), "agentkit-python-"), "uid": uid,
                  "gid": uid, "net": limits.net, "namespaces": _NAMESPACES, "limits": [
                      ("RLIMIT_CPU", limits.cpu, limits.cpu + 1), ("RLIMIT_AS", limits.memory, limits.memory),
                      ("RLIMIT_FSIZE", limits.fsize, limits.fsize), ("RLIMIT_NOFILE", MAX_OPEN_FILES, MAX_OPEN_FILES),
                      ("RLIMIT_CORE", 0, 0), ("RLIMIT_NPROC", procs, procs)]}
        env = {"PATH": "/usr/bin:/bin", "HOME": box, "TMPDIR": box, "LANG": "C.UTF-8"}
        command = [exe, "-I", "-S", "-B", "-u", "-X", "utf8", "-c", _LAUNCH, _BOOTSTRAP, json.dumps(config)]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(command, cwd=box, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True)
            timed_out, cpu_used = _wait(proc, limits.timeout)
            stdout, stderr = _read(out, limits.chars, tail=False), _read(err, max(limits.chars // 2, 200), tail=True)
        return _explain(proc.returncode, timed_out, cpu_used, stderr, limits), stdout, stderr
    finally:
        _remove(box)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bool, float]:
    """Wait (not reaping) for the exit or the timeout, kill the process group, reap: (timed out, CPU s)."""
    deadline, delay, timed_out = time.monotonic() + timeout, 0.002, False
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    try:  # the unreaped leader keeps its group id from being reused: this cannot hit a stranger
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return timed_out, usage.ru_utime + usage.ru_stime


def _read(file: IO[bytes], chars: int, *, tail: bool) -> str:
    """At most `chars` characters from the start (or end) of a file, with a note if some were left out."""
    size = os.fstat(file.fileno()).st_size
    file.seek(max(0, size - 4 * chars) if tail else 0)
    text = file.read(4 * chars).decode("utf-8", errors="replace")
    text = text[-chars:] if tail else text[:chars]
    if len(text.encode("utf-8", errors="replace")) >= size:
        return text
    which = "stderr truncated: showing the last" if tail else "stdout truncated: showing the first"
    note = f"[{which} {len(text)} characters of {size} bytes]"
    return f"{note}\n{text}" if tail else f"{text}\n{note}"


def _explain(code: int, timed_out: bool, cpu_used: float, stderr: str, limits: _Limits) -> str | None:
    """Why the run failed, in words; None when it exited with status 0."""
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if timed_out:
        return f"stopped after the wall-clock time limit of {limits.timeout:g} s"
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and cpu_used >= limits.cpu):
        return f"stopped after the CPU time limit of {limits.cpu} s"
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name if -code in set(signal.Signals) else -code}"
    if code == 0:
        return None
    if "MemoryError" in last:
        return f"it ran out of memory (limit {_mb(limits.memory)}) and exited with status {code}"
    if "File too large" in last:
        return f"it wrote a file past the size limit of {_mb(limits.fsize)} and exited with status {code}"
    if "Traceback" in stderr or "Error" in last:
        return f"it raised an exception (exit status {code})"
    return f"it exited with status {code}"


def _mb(size: int) -> str:
    return f"{size / MB:g} MB"


def _task_count(uid: int) -> int:
    """Processes and threads of `uid` (what RLIMIT_NPROC counts); racy, for a non-root caller's limit."""
    count = 0
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            count += len(os.listdir(f"/proc/{entry}/task")) if os.stat(f"/proc/{entry}").st_uid == uid else 0
        except OSError:
            continue
    return count


def _remove(path: str) -> None:
    """Delete the temporary directory, even where the code made parts of it unreadable to a non-root us."""
    for folder, dirs, _ in os.walk(path) if os.geteuid() != 0 else ():
        for name in dirs:
            try:
                os.chmod(os.path.join(folder, name), 0o700)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
