"""Attacks a steered model could make through the file tools: each is refused or capped, and nothing
outside the workspace is read, changed or created.

Layout of every test: tmp_path/outside/secret.txt (the sentinel) next to tmp_path/workspace (the root).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import time
import unicodedata
from pathlib import Path

import pytest

from agentkit import ToolCall
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
    _, root, _outside = sandbox
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


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../workspace", "is the workspace root itself"),
        ("sub/../../workspace", "is the workspace root itself"),
        ("./../workspace", "is the workspace root itself"),
        ("../../workspace", "outside the workspace"),  # a look-alike two levels up is another folder
        ("../workspace/", "names a folder"),
        ("sub/..", "names a folder"),
    ],
)
def test_writing_to_the_workspace_root_itself_is_refused_clearly(sandbox, tmp_path, path, message):
    tools, root, _ = sandbox
    before = snapshot_outside(tmp_path)
    with pytest.raises(FileToolError, match=message):
        tools["write_file"](path=path, content="x")  # once an IndexError
    assert root.is_dir() and (root / "readme.txt").read_text() == "hello\n"
    assert snapshot_outside(tmp_path) == before


@pytest.mark.parametrize(
    "name",
    [
        "é" * 127 + "x",  # 2-byte characters
        "日" * 85,  # 3-byte characters
        "😀" * 63 + "abc",  # 4-byte characters
        "a" * 255,
    ],
    ids=["latin", "cjk", "emoji", "ascii"],
)
def test_a_255_byte_name_can_be_written_and_replaced(sandbox, name):
    tools, root, _ = sandbox
    assert len(name.encode()) == 255
    assert tools["write_file"](path=f"sub/{name}", content="one").startswith("Created")
    assert tools["write_file"](path=f"sub/{name}", content="two").startswith("Replaced")
    assert tools["read_file"](path=f"sub/{name}") == "two"
    assert os.listdir(root / "sub") == [name]  # no temporary file left beside it


def test_a_name_too_long_for_the_file_system_is_refused_clearly(sandbox):
    tools, root, _ = sandbox
    with pytest.raises(FileToolError, match="longer than the file system allows.*shorter name"):
        tools["write_file"](path="é" * 128 + ".txt", content="x")  # 260 bytes
    assert os.listdir(root / "sub") == []


@pytest.mark.parametrize("special", [stat.S_ISUID, stat.S_ISGID, stat.S_ISUID | stat.S_ISGID, stat.S_ISVTX])
def test_overwriting_a_setuid_file_drops_the_special_bits(sandbox, special):
    tools, root, _ = sandbox
    program = root / "tool.sh"
    program.write_text("#!/bin/sh\necho safe\n")
    os.chmod(program, 0o755 | special)
    if stat.S_IMODE(program.stat().st_mode) & special != special:
        pytest.skip("this file system or user cannot set that bit")
    tools["write_file"](path="tool.sh", content="#!/bin/sh\necho planted\n")
    mode = stat.S_IMODE(program.stat().st_mode)
    assert mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) == 0, oct(mode)
    assert mode & 0o700 == 0o700  # the ordinary permission bits are kept
    assert program.read_text().endswith("planted\n")


NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(("first", "second"), [(NFC, NFD), (NFD, NFC)], ids=["nfc-then-nfd", "nfd-then-nfc"])
def test_names_differing_only_in_normalisation_are_one_file(sandbox, first, second):
    tools, root, _ = sandbox
    assert tools["write_file"](path=f"sub/{first}.txt", content="one").startswith("Created")
    assert tools["write_file"](path=f"sub/{second}.txt", content="two").startswith("Replaced")
    assert os.listdir(root / "sub") == [f"{NFC}.txt"]  # created in NFC, whichever spelling came first
    assert (root / "sub" / f"{NFC}.txt").read_text() == "two"


def test_folders_differing_only_in_normalisation_are_one_folder(sandbox):
    tools, root, _ = sandbox
    tools["write_file"](path=f"{NFD}/a.txt", content="a")
    tools["write_file"](path=f"{NFC}/b.txt", content="b")
    assert sorted(os.listdir(root)) == sorted(["readme.txt", "sub", NFC])
    assert sorted(os.listdir(root / NFC)) == ["a.txt", "b.txt"]


def test_a_look_alike_made_outside_the_tools_is_replaced_not_doubled(sandbox):
    tools, root, _ = sandbox
    (root / "sub" / f"{NFD}.txt").write_text("old")  # e.g. copied from a Mac
    assert tools["write_file"](path=f"sub/{NFC}.txt", content="new").startswith("Replaced")
    assert os.listdir(root / "sub") == [f"{NFD}.txt"] and (root / "sub" / f"{NFD}.txt").read_text() == "new"


def test_several_existing_look_alikes_are_refused_as_ambiguous(sandbox):
    tools, root, _ = sandbox
    composed, decomposed = unicodedata.normalize("NFC", "ḗ"), unicodedata.normalize("NFD", "ḗ")
    third = "\u0113\u0301"  # e-macron + acute: a third spelling of the same NFC name
    assert len({composed, decomposed, third}) == 3 and unicodedata.normalize("NFC", third) == composed
    (root / "sub" / composed).write_text("1")
    (root / "sub" / decomposed).write_text("2")
    with pytest.raises(FileToolError, match="differ only in Unicode normalisation.*rename"):
        tools["write_file"](path=f"sub/{third}", content="3")
    assert sorted(p.read_text() for p in (root / "sub").iterdir()) == ["1", "2"]


def docs_approver(tmp_path, monkeypatch):
    """The approver example of docs/tools.md, run as written in `tmp_path`, and its tool."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "tools.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "requires_approval=True" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "docs/tools.md approver example", "exec"), namespace)
    return namespace["approve"], namespace["delete_file"]


@pytest.mark.parametrize(
    "path",
    [
        "tmp/../../etc/passwd",
        "tmp/../secrets.txt",
        "/etc/passwd",
        "/tmp/x",
        "tmp/./../../../etc/shadow",
        "tmp/out/passwd",  # tmp/out is a link to /etc
        "tmpfoo/x",
        "tmp",
    ],
)
def test_the_documented_approver_refuses_paths_leaving_tmp(tmp_path, monkeypatch, path):
    approve, delete_file = docs_approver(tmp_path, monkeypatch)
    (tmp_path / "workspace" / "tmp").mkdir(parents=True)
    (tmp_path / "workspace" / "tmp" / "out").symlink_to("/etc", target_is_directory=True)
    assert approve(ToolCall(id="1", name="delete_file", arguments={"path": path}), delete_file) is False


@pytest.mark.parametrize("path", ["tmp/report.txt", "tmp/a/../b.txt", "./tmp/old/log.txt"])
def test_the_documented_approver_allows_paths_inside_tmp(tmp_path, monkeypatch, path):
    approve, delete_file = docs_approver(tmp_path, monkeypatch)
    assert approve(ToolCall(id="1", name="delete_file", arguments={"path": path}), delete_file) is True
