"""The workspace file tools as a user sees them: listing, reading, searching, writing, and their notes."""

from __future__ import annotations

import os

import pytest

from agentkit import ToolCall, ToolRegistry
from agentkit.tools.files import FileToolError, file_tools


def make_tools(root, **options):
    return {t.name: t for t in file_tools(root, **options)}


@pytest.fixture()
def workspace(tmp_path):
    root = tmp_path / "workspace"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "notes.txt").write_text("first line\nTODO: buy milk\nlast line\n")
    (root / "docs" / "guide.md").write_text("# Guide\nTODO write intro\nSee notes.\n")
    (root / "docs" / "deep" / "x.txt").write_text("todo lower case\n")
    (root / "image.bin").write_bytes(b"\x89PNG\x00\x00TODO")
    return root


def test_write_tool_exists_only_when_allowed(workspace):
    assert sorted(make_tools(workspace)) == ["list_files", "read_file", "search_files"]
    assert sorted(make_tools(workspace, allow_write=True)) == ["list_files", "read_file", "search_files", "write_file"]


def test_root_must_be_an_existing_folder(tmp_path):
    with pytest.raises(FileToolError, match="not an existing folder"):
        file_tools(tmp_path / "missing")


def test_list_shows_folders_with_slash_and_file_sizes_sorted(workspace):
    listing = make_tools(workspace)["list_files"]().splitlines()
    assert listing == ["docs/", "image.bin  (10 bytes)", "notes.txt  (36 bytes)"]


def test_list_recursive_and_subfolder(workspace):
    tools = make_tools(workspace)
    everything = tools["list_files"](recursive=True)
    assert "docs/deep/x.txt  (16 bytes)" in everything.splitlines()
    assert tools["list_files"](path="docs").splitlines() == ["deep/", "guide.md  (36 bytes)"]


def test_list_says_how_many_entries_were_omitted(workspace):
    for number in range(10):
        (workspace / f"file{number}.txt").write_text("x")
    listing = make_tools(workspace, max_list_entries=4)["list_files"]().splitlines()
    assert len(listing) == 5 and listing[1:] == ["docs/", "file0.txt  (1 bytes)", "file1.txt  (1 bytes)", "file2.txt  (1 bytes)"]
    assert listing[0].startswith("[9 more entries omitted (limit 4)")  # first: an output limit cannot cut it


def test_list_errors_name_the_fix(workspace):
    tools = make_tools(workspace)
    with pytest.raises(FileToolError, match="does not exist.*list_files"):
        tools["list_files"](path="nope")
    with pytest.raises(FileToolError, match="is a file, not a folder. Use read_file"):
        tools["list_files"](path="notes.txt")
    (workspace / "empty").mkdir()
    assert tools["list_files"](path="empty") == "The folder 'empty' is empty."


def test_read_whole_file(workspace):
    assert make_tools(workspace)["read_file"](path="docs/guide.md") == "# Guide\nTODO write intro\nSee notes.\n"


def test_read_pages_through_lines_with_a_note(workspace):
    (workspace / "long.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    read = make_tools(workspace)["read_file"]
    first = read(path="long.txt", limit=3)
    assert first.startswith("line 1\nline 2\nline 3\n")
    assert "[lines 1-3 of 10; call read_file with offset=4 for more]" in first
    last = read(path="long.txt", offset=9, limit=5)
    assert last.startswith("line 9\nline 10\n") and "[lines 9-10 of 10]" in last
    with pytest.raises(FileToolError, match="10 readable lines; offset 11 is past the end"):
        read(path="long.txt", offset=11)
    with pytest.raises(FileToolError, match="limit between 1 and 2000"):
        read(path="long.txt", limit=0)


def test_read_large_file_shows_whole_lines_up_to_the_limit(workspace):
    (workspace / "big.log").write_text("".join(f"entry {n:05d}\n" for n in range(10_000)))  # 120,000 bytes
    text = make_tools(workspace, max_read_bytes=1000)["read_file"](path="big.log", limit=2000)
    body, note = text.rsplit("\n[", 1)
    assert len(body.encode()) <= 1000 and body.endswith("entry 00082\n")  # 83 whole 12-byte lines
    assert "larger than the 1000-byte read limit; only its first 83 lines can be read" in note


def test_read_stays_within_the_character_budget_and_says_where_to_go_on(workspace):
    (workspace / "wide.txt").write_text("".join(f"{n:03d}" + "x" * 96 + "\n" for n in range(1, 101)))  # 100 x 100 chars
    read = make_tools(workspace, max_read_chars=1000)["read_file"]
    first = read(path="wide.txt")
    assert first.splitlines()[:10] == [f"{n:03d}" + "x" * 96 for n in range(1, 11)]
    assert first.endswith("\n[lines 1-10 of 100; call read_file with offset=11 for more]")
    assert read(path="wide.txt", offset=11).startswith("011xxx")
    (workspace / "one-line.json").write_text("[" + "1, " * 2000 + "1]")
    assert read(path="one-line.json").endswith("\n[line 1 is cut at 1000 characters]")


def test_read_refuses_binary_folders_and_missing_files(workspace):
    read = make_tools(workspace)["read_file"]
    with pytest.raises(FileToolError, match="binary file"):
        read(path="image.bin")
    with pytest.raises(FileToolError, match="is a folder. Use list_files"):
        read(path="docs")
    with pytest.raises(FileToolError, match="does not exist in the workspace"):
        read(path="docs/missing.md")
    (workspace / "empty.txt").write_text("")
    assert read(path="empty.txt") == "['empty.txt' is empty]"


def test_symbolic_links_inside_the_workspace_work(workspace):
    (workspace / "shortcut.txt").symlink_to("docs/guide.md")
    (workspace / "docs-link").symlink_to("docs", target_is_directory=True)
    read = make_tools(workspace)["read_file"]
    assert read(path="shortcut.txt").startswith("# Guide")
    assert read(path="docs-link/guide.md").startswith("# Guide")


def test_search_finds_lines_in_text_files_only(workspace):
    search = make_tools(workspace)["search_files"]
    # Top-down: the folder's own files first, then its subfolders; image.bin's "TODO" is binary, skipped.
    assert search(pattern="TODO").splitlines() == ["notes.txt:2: TODO: buy milk", "docs/guide.md:2: TODO write intro"]
    assert "docs/deep/x.txt:1: todo lower case" in search(pattern="todo", ignore_case=True)
    assert search(pattern="TODO", path="docs").splitlines() == ["docs/guide.md:2: TODO write intro"]
    assert search(pattern="milk", path="notes.txt") == "notes.txt:2: TODO: buy milk"
    # Nothing found: the files searched are named, so the model can read one instead of guessing.
    assert search(pattern="nowhere") == (
        "No matches for 'nowhere' in '.' (3 text files searched: notes.txt, docs/guide.md, docs/deep/x.txt). "
        "Search for one word of it, or read one of these files."
    )
    with pytest.raises(FileToolError, match="1 to 200 characters"):
        search(pattern="")


def test_a_markdown_heading_that_matches_brings_the_start_of_its_section(tmp_path):
    (tmp_path / "guide.md").write_text("# Setup\n\n1. Install.\n2. Configure.\n3. Run.\n4. Test.\n## Usage\nCall it.\n")
    (tmp_path / "setup.py").write_text("# Setup script\nimport os\n")
    search = make_tools(tmp_path)["search_files"]
    # At most three lines of the section, never past the next heading; a "#" comment in code is not a heading.
    assert search(pattern="Setup").splitlines() == [
        "guide.md:1: # Setup", "guide.md:3: 1. Install.", "guide.md:4: 2. Configure.", "guide.md:5: 3. Run.",
        "setup.py:1: # Setup script",
    ]
    assert search(pattern="Usage").splitlines() == ["guide.md:7: ## Usage", "guide.md:8: Call it."]


def test_search_without_the_exact_text_shows_looser_matches_and_says_so(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "travel_policy.md").write_text("# Travel policy\n\nTrains: book second class.\nMeals: 45 EUR a day.\n")
    (tmp_path / "docs" / "product_faq.md").write_text("# Lumo desk lamp: FAQ\nBattery: the lamp runs 9 hours on a full charge.\n")
    search = make_tools(tmp_path)["search_files"]
    # Another case: the heading, labelled, so the model knows it was not an exact hit, with its section's first lines.
    assert search(pattern="travel policy").splitlines() == [
        "[no line contains 'travel policy' exactly; these lines contain it in another case]",
        "docs/travel_policy.md:1: # Travel policy",
        "docs/travel_policy.md:3: Trains: book second class.",
        "docs/travel_policy.md:4: Meals: 45 EUR a day.",
    ]
    # Every word, in any order and case ("the" and "of" are not required).
    assert search(pattern="battery of the lamp").splitlines() == [
        "[no line contains 'battery of the lamp'; these lines contain all of its words: battery, lamp]",
        "docs/product_faq.md:2: Battery: the lamp runs 9 hours on a full charge.",
    ]
    # No line at all: the files named like the pattern are offered.
    assert search(pattern="policy for hotels") == (
        "No matches for 'policy for hotels' in '.' (2 text files searched: docs/product_faq.md, docs/travel_policy.md). "
        "Files whose names contain its words: docs/travel_policy.md. Read one of them with read_file."
    )
    # An exact match wins over looser ones, with no note.
    assert search(pattern="Trains") == "docs/travel_policy.md:3: Trains: book second class."


def test_a_missing_path_names_the_files_named_like_it(workspace):
    tools = make_tools(workspace)
    for call in (lambda: tools["read_file"](path="guide"), lambda: tools["search_files"](pattern="x", path="guide"),
                 lambda: tools["list_files"](path="docs/guides/")):
        with pytest.raises(FileToolError, match=r"does not exist in the workspace\. .* Named like it: docs/guide\.md\.$"):
            call()
    with pytest.raises(FileToolError, match=r"does not exist in the workspace\. Call list_files to see what exists\.$"):
        tools["read_file"](path="nothing/like/this")


def test_looser_search_tiers_keep_the_match_limit(tmp_path):
    (tmp_path / "many.txt").write_text("Hit here\n" * 50)
    result = make_tools(tmp_path, max_search_matches=3)["search_files"](pattern="hit here").splitlines()
    assert result[0].startswith("[no line contains 'hit here' exactly") and len(result) == 5
    assert result[1].startswith("[stopped at the limit of 3 matches")


def test_search_stops_at_the_match_limit_and_says_so(workspace):
    (workspace / "many.txt").write_text("hit\n" * 50)
    result = make_tools(workspace, max_search_matches=5)["search_files"](pattern="hit").splitlines()
    assert len(result) == 6 and result[1:3] == ["many.txt:1: hit", "many.txt:2: hit"]
    assert result[0].startswith("[stopped at the limit of 5 matches")


def test_write_creates_folders_and_replaces_files(workspace):
    tools = make_tools(workspace, allow_write=True)
    assert tools["write_file"](path="out/report/summary.txt", content="héllo\n") == "Created 'out/report/summary.txt' (7 bytes)."
    assert (workspace / "out" / "report" / "summary.txt").read_text() == "héllo\n"
    assert tools["write_file"](path="notes.txt", content="new") == "Replaced 'notes.txt' (3 bytes)."
    assert tools["read_file"](path="notes.txt") == "new"
    assert not [name for name in os.listdir(workspace) if name.endswith(".tmp")]  # no temporary file left


def test_refused_write_leaves_the_old_content(workspace):
    write = make_tools(workspace, allow_write=True, max_write_bytes=10)["write_file"]
    with pytest.raises(FileToolError, match="11 bytes; the limit is 10"):
        write(path="notes.txt", content="x" * 11)
    with pytest.raises(FileToolError, match="names a folder, not a file"):
        write(path="docs/", content="x")
    with pytest.raises(FileToolError, match="is a folder"):
        write(path="docs", content="x")
    assert (workspace / "notes.txt").read_text().startswith("first line")
    assert sorted(os.listdir(workspace)) == ["docs", "image.bin", "notes.txt"]


def test_refusals_come_back_as_error_observations(workspace):
    registry = ToolRegistry(file_tools(workspace))
    refused = registry.run(ToolCall(id="1", name="read_file", arguments={"path": "../../etc/passwd"}))
    assert refused.is_error and "outside the workspace" in refused.content
    missing_tool = registry.run(ToolCall(id="2", name="write_file", arguments={"path": "a.txt", "content": "x"}))
    assert missing_tool.is_error and not (workspace / "a.txt").exists()
    ok = registry.run(ToolCall(id="3", name="read_file", arguments={"path": "notes.txt", "limit": 1}))
    assert not ok.is_error and ok.content.startswith("first line\n")

