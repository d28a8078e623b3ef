"""Attacks a steered model could make through the file tools: each is refused or capped, and nothing
outside the workspace is read, changed or created.

Layout of every test: tmp_path/outside/secret.txt (the sentinel) next to tmp_path/workspace (the root).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from agentkit.tools.files import FileToolError, _Workspace, file_tools

SECRET = "TOP SECRET: the launch codes"


@pytest.fixture()
def sandbox(tmp_path):
    outside, root = tmp_path / "outside", tmp_path / "workspace"
    outside.mkdir()
    root.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "sub").mkdir()
    (root / "readme.txt").write_text("hello\n")
    tools = {t.name: t for t in file_tools(root, allow_write=True, max_read_bytes=64 * 1024, max_write_bytes=1000)}
    return tools, root, outside


def snapshot_outside(tmp_path):
    """Every path outside the workspace with its content (files) or kind: any change shows up."""
    seen = {}
    for folder, dirnames, filenames in os.walk(tmp_path):
        dirnames[:] = [d for d in dirnames if os.path.join(folder, d) != str(tmp_path / "workspace")]
        for name in filenames:
            path = os.path.join(folder, name)
            seen[path] = os.readlink(path) if os.path.islink(path) else Path(path).read_bytes()
    return seen


# Each attack: set up links/files inside the workspace, then make the call a steered model would make.
def dotdot(tools, root, outside):
    return tools["read_file"](path="../outside/secret.txt")


def deep_dotdot(tools, root, outside):
    return tools["read_file"](path="../" * 30 + "etc/passwd")


def dotdot_through_a_subfolder(tools, root, outside):
    return tools["read_file"](path="sub/../../outside/secret.txt")


def absolute_path(tools, root, outside):
    return tools["read_file"](path=str(outside / "secret.txt"))


def etc_passwd(tools, root, outside):
    return tools["read_file"](path="/etc/passwd")


def symlink_to_outside_file(tools, root, outside):
    (root / "link.txt").symlink_to(outside / "secret.txt")
    return tools["read_file"](path="link.txt")


def symlinked_folder_to_outside(tools, root, outside):
    (root / "out").symlink_to(outside, target_is_directory=True)
    return tools["read_file"](path="out/secret.txt")


def symlink_chain_inside_pointing_out(tools, root, outside):
    (root / "sub" / "hop2").symlink_to("../../outside/secret.txt")
    (root / "hop1").symlink_to("sub/hop2")
    return tools["read_file"](path="hop1")


def hard_link_to_outside_file(tools, root, outside):
    os.link(outside / "secret.txt", root / "alias.txt")
    return tools["read_file"](path="alias.txt")


def nul_byte_in_path(tools, root, outside):
    return tools["read_file"](path="readme.txt\x00../../outside/secret.txt")


def fifo_would_block(tools, root, outside):
    os.mkfifo(root / "pipe")
    return tools["read_file"](path="pipe")


def symlink_to_dev_zero(tools, root, outside):
    (root / "zero").symlink_to("/dev/zero")
    return tools["read_file"](path="zero")


def list_parent_folder(tools, root, outside):
    return tools["list_files"](path="..")


def list_symlinked_folder_out(tools, root, outside):
    (root / "out").symlink_to(outside, target_is_directory=True)
    return tools["list_files"](path="out")


def search_parent_folder(tools, root, outside):
    return tools["search_files"](pattern="TOP SECRET", path="../outside")


def write_through_symlink(tools, root, outside):
    (root / "link.txt").symlink_to(outside / "secret.txt")
    return tools["write_file"](path="link.txt", content="pwned")


def write_to_parent(tools, root, outside):
    return tools["write_file"](path="../planted.txt", content="pwned")


def write_absolute_path(tools, root, outside):
    return tools["write_file"](path=str(outside / "planted.txt"), content="pwned")


def write_into_symlinked_folder(tools, root, outside):
    (root / "out").symlink_to(outside, target_is_directory=True)
    return tools["write_file"](path="out/planted.txt", content="pwned")


def write_over_hard_link(tools, root, outside):
    os.link(outside / "secret.txt", root / "alias.txt")
    return tools["write_file"](path="alias.txt", content="pwned")


def write_new_folders_through_symlink(tools, root, outside):
    (root / "out").symlink_to(outside, target_is_directory=True)
    return tools["write_file"](path="out/new/deeper/planted.txt", content="pwned")


def write_oversized_content(tools, root, outside):
    return tools["write_file"](path="big.txt", content="x" * 1001)


ATTACKS = [
    (dotdot, "outside the workspace"),
    (deep_dotdot, "outside the workspace"),
    (dotdot_through_a_subfolder, "outside the workspace"),
    (absolute_path, "absolute path"),
    (etc_passwd, "absolute path"),
    (symlink_to_outside_file, "outside the workspace"),
    (symlinked_folder_to_outside, "outside the workspace"),
    (symlink_chain_inside_pointing_out, "outside the workspace"),
    (hard_link_to_outside_file, "hard links"),
    (nul_byte_in_path, "NUL byte"),
    (fifo_would_block, "not a regular file"),
    (symlink_to_dev_zero, "outside the workspace"),
    (list_parent_folder, "outside the workspace"),
    (list_symlinked_folder_out, "outside the workspace"),
    (search_parent_folder, "outside the workspace"),
    (write_through_symlink, "symbolic link"),
    (write_to_parent, "outside the workspace"),
    (write_absolute_path, "absolute path"),
    (write_into_symlinked_folder, "outside the workspace"),
    (write_over_hard_link, "hard links"),
    (write_new_folders_through_symlink, "outside the workspace"),
    (write_oversized_content, "the limit is 1000"),
]


@pytest.mark.parametrize(("attack", "message"), ATTACKS, ids=[attack.__name__ for attack, _ in ATTACKS])
def test_attack_is_refused_and_nothing_outside_changes(sandbox, tmp_path, attack, message):
    tools, root, outside = sandbox
    before = snapshot_outside(tmp_path)
    with pytest.raises(FileToolError, match=message):
        attack(tools, root, outside)
    assert snapshot_outside(tmp_path) == before
    assert (outside / "secret.txt").read_text() == SECRET
    assert not (root / "big.txt").exists()


def test_device_file_inside_the_workspace_is_refused(sandbox):
    tools, root, _ = sandbox
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs privileges this machine does not give")
    with pytest.raises(FileToolError, match="not a regular file"):
        tools["read_file"](path="null")


def test_search_does_not_follow_links_out(sandbox, tmp_path):
    tools, root, outside = sandbox
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    os.link(outside / "secret.txt", root / "alias.txt")
    result = tools["search_files"](pattern="TOP SECRET")
    assert result.startswith("No matches") and SECRET not in result


def test_huge_sparse_file_is_read_only_up_to_the_cap(sandbox):
    tools, root, _ = sandbox
    with open(root / "huge.log", "wb") as handle:
        handle.write(b"start\n")
        handle.truncate(8 * 1024**3)  # 8 GB, sparse: no disk used, but a naive read() would try
    started = time.perf_counter()
    with pytest.raises(FileToolError, match="binary file"):  # the zeros past "start" are NUL bytes
        tools["read_file"](path="huge.log")
    assert time.perf_counter() - started < 2


def test_huge_text_file_read_is_capped(sandbox):
    tools, root, _ = sandbox
    with open(root / "huge.txt", "w") as handle:
        handle.writelines("A" * 99 + "\n" for _ in range(20_000))  # 2 MB
    last_line = tools["read_file"](path="huge.txt", offset=655, limit=2000)  # 655 lines of 100 bytes < 64 KB
    assert last_line.startswith("A" * 99 + "\n\n[") and "only its first 655 lines can be read" in last_line
    with pytest.raises(FileToolError, match="655 readable lines; offset 656 is past the end"):
        tools["read_file"](path="huge.txt", offset=656)


def test_huge_folder_listing_is_capped(sandbox):
    tools, root, _ = sandbox
    for number in range(300):
        (root / "sub" / f"f{number:03d}").write_text("")
    listing = tools["list_files"](path="sub").splitlines()
    assert len(listing) == 201 and "100 more entries omitted" in listing[0]


def test_symlink_swapped_in_after_the_check_is_not_followed(sandbox):
    """The race a realpath check alone loses: the walk from the root refuses any link it meets."""
    _, root, outside = sandbox
    (root / "looks-inside").symlink_to(root / "sub", target_is_directory=True)
    with pytest.raises(OSError) as caught:
        _Workspace(root).open_folder(["looks-inside"])  # as if "looks-inside" had just been swapped in
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)  # O_NOFOLLOW with O_DIRECTORY: either


def test_racing_folder_swaps_never_reach_outside(sandbox, tmp_path):
    """A thread keeps replacing a folder with a link to the outside while the model reads and writes."""
    tools, root, outside = sandbox
    (root / "flip").mkdir()
    (root / "flip" / "secret.txt").write_text("harmless")
    before = snapshot_outside(tmp_path)
    stop = threading.Event()

    def swap():
        count = 0
        while not stop.is_set():
            count += 1
            try:
                os.rename(root / "flip", root / f"parked-{count}")  # the real folder steps aside...
                os.symlink(outside, root / "flip")  # ...a link out takes its place...
                os.unlink(root / "flip")
                os.rename(root / f"parked-{count}", root / "flip")  # ...and the real folder comes back
            except OSError:
                pass  # write_file made a new "flip" folder in a gap: keep swapping with that one

    swapper = threading.Thread(target=swap)
    swapper.start()
    calls = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            calls += 1
            for call, arguments in (("read_file", {"path": "flip/secret.txt"}), ("write_file", {"path": "flip/secret.txt", "content": "pwned"})):
                try:
                    assert SECRET not in tools[call](**arguments)
                except FileToolError:
                    pass
    finally:
        stop.set()
        swapper.join()
    assert calls > 50
    assert snapshot_outside(tmp_path) == before
