"""File tools confined to one workspace folder: list, read, search and (when enabled) write.

`file_tools(root)` builds the tools; every path the model sends is relative to `root`. Limits and
defaults (each can be changed through `file_tools`'s keyword arguments):

- paths: relative only, at most MAX_PATH_CHARS characters, no NUL byte; the real path (after
  resolving `..` and every symbolic link) must lie inside the root's real path. Files are then opened
  one folder at a time from the root with O_NOFOLLOW, so a link swapped in after the check is refused.
- reads: regular files only (no devices, FIFOs, sockets), no file with more than one hard link (it can
  alias a file outside), no binary file (a NUL byte); at most DEFAULT_MAX_READ_BYTES (256 KB) are read;
  one call returns whole lines, at most DEFAULT_READ_LINES (200, MAX_READ_LINES 2000 on request) and
  DEFAULT_MAX_READ_CHARS (3500) characters, with a note giving the offset to read on from.
- listing: DEFAULT_MAX_LIST_ENTRIES (200) entries shown, the rest counted (up to MAX_SCAN_ENTRIES).
- search: plain text (looser tiers when the exact text is absent: `_text_search`), DEFAULT_MAX_SEARCH_MATCHES (100) matches, at most MAX_SEARCH_FILES files and
  MAX_SEARCH_BYTES bytes scanned; symbolic links are not followed.
- writes (only with `allow_write=True`): at most DEFAULT_MAX_WRITE_BYTES (1 MB) of UTF-8, never through
  a symbolic link or onto a hard-linked or special file; missing parent folders are created inside
  the root; the new content goes to a temporary file that replaces the target atomically. A replaced
  file keeps its permission bits but never setuid, setgid or sticky bits.
- Unicode names: names are compared in NFC. A write goes to the existing file or folder whose name has
  the same NFC form (its exact spelling first); what it creates is named in NFC, so two look-alike names
  never come from the tools. Several existing look-alikes (made outside the tools) are refused as
  ambiguous. Reads, listings and searches use names as they are on disk (as list_files shows them).

POSIX only (it needs `dir_fd` and O_NOFOLLOW).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import stat
import unicodedata
from collections.abc import Generator

from agentkit.tool import Tool, tool
from agentkit.tools._text_search import TieredMatches, named_like, pattern_words, shown_match

DEFAULT_MAX_READ_BYTES = 256 * 1024
DEFAULT_MAX_WRITE_BYTES = 1024 * 1024
DEFAULT_MAX_LIST_ENTRIES = 200
DEFAULT_MAX_SEARCH_MATCHES = 100
DEFAULT_READ_LINES = 200
DEFAULT_MAX_READ_CHARS = 3500  # one read_file answer fits the registry's default 4000-character output limit
MAX_READ_LINES = 2000
MAX_PATH_CHARS = 1024
MAX_PATTERN_CHARS = 200
MAX_MATCH_LINE_CHARS = 200
MAX_SCAN_ENTRIES = 10_000
MAX_SEARCH_FILES = 2000
MAX_NAMED_FILES = 10  # files named in a "no matches" reply
MAX_SEARCH_BYTES = 32 * 1024 * 1024
_TEMPORARY_STEM_BYTES = 64  # of the target's name kept in the temporary name: the whole stays far below 255

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class FileToolError(ValueError):
    """The file request is outside what the workspace allows, or failed; the message says what to do."""


class _MissingPathError(FileToolError):
    """The path does not exist: the tools add the workspace's files named like it (`_offering_names_like`)."""


class _Workspace:
    """The root folder and the path checks every tool goes through."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise FileToolError(f"The workspace root {os.fspath(root)!r} is not an existing folder.")

    def parts(self, path: str, *, for_write: bool = False) -> list[str]:
        """The folders and name of `path` below the root, after resolving links; refuse what leaves it."""
        shown = _show(path)
        if "\x00" in path:
            raise FileToolError(f"The path {shown} contains a NUL byte. Use a plain relative path such as 'notes/todo.txt'.")
        if len(path) > MAX_PATH_CHARS:
            raise FileToolError(f"The path has {len(path)} characters; the limit is {MAX_PATH_CHARS}.")
        text = path.strip() or "."
        if os.path.isabs(text):
            raise FileToolError(f"{shown} is an absolute path. Use a path relative to the workspace root, e.g. 'notes/todo.txt'.")
        head, name = os.path.split(text) if for_write else (text, "")
        if for_write and name in ("", ".", ".."):
            raise FileToolError(f"{shown} names a folder, not a file. Give a file name, e.g. 'notes/todo.txt'.")
        try:
            real = os.path.join(os.path.realpath(os.path.join(self.root, head)), name).rstrip(os.sep) or os.sep
        except OSError as exc:  # a link that changed while it was being resolved
            raise _explain_os_error(exc, shown) from None
        if os.path.commonpath([self.root, real]) != self.root:
            raise FileToolError(
                f"{shown} is outside the workspace (through '..' or a symbolic link). Only files inside the "
                "workspace can be used; call list_files to see them."
            )
        relative = os.path.relpath(real, self.root)
        if for_write and relative == ".":  # e.g. '../ws' where ws is the root: there is no file name left
            raise FileToolError(f"{shown} is the workspace root itself, a folder. Give a file name inside it, e.g. 'notes/todo.txt'.")
        return [] if relative == "." else relative.split(os.sep)

    def open_folder(self, parts: list[str], *, create: bool = False) -> int:
        """Open `parts` one folder at a time from the root, never following a link; return the fd."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    part = _name_on_disk(fd, part)
                    with contextlib.suppress(FileExistsError):  # a look-alike folder that already exists
                        os.mkdir(part, 0o777, dir_fd=fd)
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd


def _name_on_disk(folder_fd: int, name: str) -> str:
    """The spelling under which to write `name` in the folder: names are compared in NFC.

    The exact spelling if it exists, else the one existing entry with the same NFC form, else the NFC
    form (for a new entry). Why: 'café' typed composed or decomposed must not become two look-alike files.
    """
    try:
        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        return name
    except FileNotFoundError:
        pass
    if name.isascii():
        return name  # ASCII has a single normal form
    wanted = unicodedata.normalize("NFC", name)
    with os.scandir(folder_fd) as entries:
        alike = sorted(entry.name for entry in entries if unicodedata.normalize("NFC", entry.name) == wanted)
    if len(alike) > 1:
        raise FileToolError(
            f"{_show(name)} matches several names that differ only in Unicode normalisation "
            f"({', '.join(_show(a) for a in alike)}). Ask the user to rename them; the tools write NFC names."
        )
    return alike[0] if alike else wanted


def _temporary_name(name: str) -> str:
    """A hidden name beside `name` for new content; a 255-byte `name` still gives a valid name."""
    stem = name
    while len(os.fsencode(stem)) > _TEMPORARY_STEM_BYTES:  # bytes, not characters: one can take 4 bytes
        stem = stem[:-1]
    return f".{stem}.{secrets.token_hex(6)}.tmp"


def _show(path: str) -> str:
    return repr(path if len(path) <= 120 else path[:120] + "...")


def _explain_os_error(exc: OSError, shown: str) -> FileToolError:
    if isinstance(exc, FileNotFoundError):
        return _MissingPathError(f"{shown} does not exist in the workspace. Call list_files to see what exists.")
    if isinstance(exc, NotADirectoryError):
        return FileToolError(f"{shown} (or a folder on its way) is a file, not a folder. Use read_file for files.")
    if isinstance(exc, IsADirectoryError):
        return FileToolError(f"{shown} is a folder. Use list_files for folders.")
    if exc.errno == errno.ENAMETOOLONG:
        return FileToolError(f"{shown} has a name longer than the file system allows (255 bytes per name, in UTF-8). Use a shorter name.")
    if exc.errno == errno.ELOOP:
        return FileToolError(f"{shown} goes through a symbolic link that changed during the call; it was refused.")
    if isinstance(exc, PermissionError):
        return FileToolError(f"{shown} cannot be accessed: permission denied.")
    return FileToolError(f"{shown} could not be accessed: {exc.strerror or exc}.")


@contextlib.contextmanager
def _offering_names_like(workspace: _Workspace, path: str) -> Generator[None, None, None]:
    """A missing `path`'s error also names the workspace entries named like its last part.

    Models guess paths ("faq" for docs/product_faq.md); the names let the next call be right.
    """
    try:
        yield
    except _MissingPathError as exc:
        words = pattern_words(path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0])
        alike: list[str] = []
        with contextlib.closing(_walk(workspace, ".", recursive=True)) as walk:
            for scanned, (_, name, shown_path) in enumerate(walk):
                if scanned >= MAX_SCAN_ENTRIES or len(alike) >= MAX_NAMED_FILES:
                    break
                if named_like(name, words):
                    alike.append(shown_path)
        if not alike:
            raise
        raise FileToolError(f"{exc} Named like it: {', '.join(alike)}.") from None


def _check_regular(info: os.stat_result, shown: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise FileToolError(f"{shown} is a folder. Use list_files for folders.")
    if stat.S_ISLNK(info.st_mode):
        raise FileToolError(f"{shown} is a symbolic link; links are not followed here. Use the file it points to.")
    if not stat.S_ISREG(info.st_mode):
        raise FileToolError(f"{shown} is not a regular file (a device, FIFO or socket); only regular files can be used.")
    if info.st_nlink > 1:
        raise FileToolError(
            f"{shown} has {info.st_nlink} hard links; it is refused because a hard link can alias a file outside "
            "the workspace. Ask the user to copy it instead."
        )


def _read_capped(dir_fd: int, name: str, cap: int, shown: str) -> tuple[bytes, bool]:
    """At most `cap` bytes of the regular file `name` in `dir_fd`, and whether there was more."""
    _check_regular(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), shown)
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        _check_regular(os.fstat(fd), shown)  # the same checks on what was opened: no swap in between
        chunks, remaining = [], cap
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks), bool(remaining == 0 and os.read(fd, 1))
    finally:
        os.close(fd)


def file_tools(
    root: str | os.PathLike[str],
    *,
    allow_write: bool = False,
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    max_read_chars: int = DEFAULT_MAX_READ_CHARS,
    max_write_bytes: int = DEFAULT_MAX_WRITE_BYTES,
    max_list_entries: int = DEFAULT_MAX_LIST_ENTRIES,
    max_search_matches: int = DEFAULT_MAX_SEARCH_MATCHES,
) -> list[Tool]:
    """Tools that list, read, search and (with `allow_write=True`) write files inside `root` only.

    Example:
        >>> import pathlib, tempfile
        >>> root = tempfile.mkdtemp()
        >>> _ = pathlib.Path(root, "notes.txt").write_text("buy milk\\n")
        >>> tools = {t.name: t for t in file_tools(root)}
        >>> sorted(tools)
        ['list_files', 'read_file', 'search_files']
        >>> tools["read_file"](path="notes.txt")
        'buy milk\\n'
        >>> tools["read_file"](path="../etc/passwd")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        agentkit.tools.files.FileToolError: '../etc/passwd' is outside the workspace (through '..' or a symbolic link).
        Only files inside the workspace can be used; call list_files to see them.
    """
    workspace = _Workspace(root)
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW"):
        raise FileToolError("file_tools needs a POSIX system (dir_fd and O_NOFOLLOW support).")

    @tool
    def list_files(path: str = ".", recursive: bool = False) -> str:
        """List the files and folders in a workspace folder (folders end with '/').

        Args:
            path: folder relative to the workspace root; "." is the root.
            recursive: also list everything in the subfolders.
        """
        shown: list[str] = []
        total = 0
        with _offering_names_like(workspace, path), contextlib.closing(_walk(workspace, path, recursive)) as listing:  # closes its folders on break
            for folder_fd, name, relative in listing:
                if total >= MAX_SCAN_ENTRIES:
                    break
                total += 1
                if len(shown) < max_list_entries:
                    shown.append(_describe(folder_fd, name, relative))
        if not shown:
            return f"The folder {_show(path)} is empty."
        omitted = total - len(shown)
        if omitted:  # first, so that an output limit cutting the list cannot hide it
            more = "at least " if total >= MAX_SCAN_ENTRIES else ""
            shown.insert(0, f"[{more}{omitted} more entries omitted (limit {max_list_entries}); list a subfolder to see them]")
        return "\n".join(shown)

    @tool
    def read_file(path: str, offset: int = 1, limit: int = DEFAULT_READ_LINES) -> str:
        """Read a text file from the workspace, `limit` lines starting at line `offset`.

        Args:
            path: file relative to the workspace root, e.g. "notes/todo.txt".
            offset: the first line to return, counting from 1.
            limit: how many lines to return at most (up to 2000).
        """
        if offset < 1 or not 1 <= limit <= MAX_READ_LINES:
            raise FileToolError(f"offset must be 1 or more and limit between 1 and {MAX_READ_LINES}; got offset={offset}, limit={limit}.")
        with _offering_names_like(workspace, path):
            data, cut = _read_file_bytes(workspace, path, max_read_bytes)
        if cut and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]  # whole lines only
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        if not lines:
            return f"[{_show(path)} is empty]"
        if offset > len(lines):
            raise FileToolError(f"{_show(path)} has {len(lines)} readable lines; offset {offset} is past the end.")
        shown_lines: list[str] = []
        size = 0
        for line in lines[offset - 1 : offset - 1 + limit]:
            if shown_lines and size + len(line) > max_read_chars:
                break  # stay within the output budget: the note says where to go on
            shown_lines.append(line[:max_read_chars])
            size += len(shown_lines[-1])
        last = offset + len(shown_lines) - 1
        notes = [f"lines {offset}-{last} of {len(lines)}"] if last < len(lines) or offset > 1 else []
        if len(lines[last - 1]) > max_read_chars:
            notes.append(f"line {last} is cut at {max_read_chars} characters")
        if last < len(lines):
            notes.append(f"call read_file with offset={last + 1} for more")
        if cut:
            notes.append(f"the file is larger than the {max_read_bytes}-byte read limit; only its first {len(lines)} lines can be read")
        return "".join(shown_lines) + (f"\n[{'; '.join(notes)}]" if notes else "")

    @tool
    def search_files(pattern: str, path: str = ".", ignore_case: bool = False) -> str:
        """Find the lines that contain a plain text (not a regex) in the workspace's text files.

        Args:
            pattern: the exact text to look for.
            path: folder (or file) to search, relative to the workspace root.
            ignore_case: match regardless of upper/lower case.
        """
        if not pattern or len(pattern) > MAX_PATTERN_CHARS or "\n" in pattern:
            raise FileToolError(f"The pattern must be 1 to {MAX_PATTERN_CHARS} characters on one line.")
        # The description above is what the model reads, kept short; when no line has the exact text, the
        # reply shows looser matches and says so (`_text_search`), or names the files named like it.
        found = TieredMatches(pattern, ignore_case=ignore_case, limit=max_search_matches)
        searched: list[str] = []  # named when nothing matches: the model can read one instead
        named: list[str] = []  # files whose names contain a word of the pattern, offered when no line matches
        files = scanned = 0
        with _offering_names_like(workspace, path), contextlib.closing(_walk(workspace, path, recursive=True, files_only=True)) as walk:
            for folder_fd, name, shown_path in walk:
                try:
                    data, _ = _read_capped(folder_fd, name, max_read_bytes, shown_path)
                except (FileToolError, OSError):
                    continue  # links, special, hard-linked or vanished files are skipped
                if b"\x00" in data:
                    continue  # binary
                files += 1
                scanned += len(data)
                if len(searched) < MAX_NAMED_FILES:
                    searched.append(shown_path)
                if len(named) < MAX_NAMED_FILES and found.names_file(shown_path):
                    named.append(shown_path)
                lines = data.decode("utf-8", errors="replace").splitlines()
                for index, line in enumerate(lines):
                    found.add(line, functools.partial(shown_match, shown_path, lines, index, MAX_MATCH_LINE_CHARS))
                    if found.full:
                        break
                if found.full or files >= MAX_SEARCH_FILES or scanned >= MAX_SEARCH_BYTES:
                    break
        note, matches, cut = found.result()
        if not matches:
            listed = f": {', '.join(searched)}{', ...' if files > len(searched) else ''}" if searched else ""
            if named:
                hint = f" Files whose names contain its words: {', '.join(named)}. Read one of them with read_file."
            else:
                hint = " Search for one word of it, or read one of these files." if searched else ""
            return f"No matches for {pattern!r} in {_show(path)} ({files} text files searched{listed}).{hint}"
        if cut:  # first, so that an output limit cutting the list cannot hide it
            matches.insert(0, f"[stopped at the limit of {max_search_matches} matches; search a narrower path or a longer pattern]")
        elif files >= MAX_SEARCH_FILES or scanned >= MAX_SEARCH_BYTES:
            matches.insert(0, f"[stopped after {files} files ({scanned} bytes); search a narrower path]")
        return "\n".join(([note] if note else []) + matches)

    @tool
    def write_file(path: str, content: str) -> str:
        """Create or replace a text file in the workspace with `content` (missing folders are created).

        Args:
            path: file relative to the workspace root, e.g. "notes/todo.txt".
            content: the complete new text of the file.
        """
        data = content.encode("utf-8")
        if len(data) > max_write_bytes:
            raise FileToolError(f"The content is {len(data)} bytes; the limit is {max_write_bytes}. Write a shorter file.")
        parts, shown = workspace.parts(path, for_write=True), _show(path)
        try:
            folder_fd = workspace.open_folder(parts[:-1], create=True)
        except OSError as exc:
            raise _explain_os_error(exc, shown) from None
        try:
            return _write_atomically(folder_fd, parts[-1], data, shown)
        except OSError as exc:  # e.g. a name too long for the file system
            raise _explain_os_error(exc, shown) from None
        finally:
            os.close(folder_fd)

    return [list_files, read_file, search_files] + ([write_file] if allow_write else [])


def _read_file_bytes(workspace: _Workspace, path: str, cap: int) -> tuple[bytes, bool]:
    parts, shown = workspace.parts(path), _show(path)
    if not parts:
        raise FileToolError(f"{shown} is the workspace root, a folder. Use list_files for folders.")
    folder_fd = _open_or_explain(workspace, parts[:-1], shown)
    try:
        data, cut = _read_capped(folder_fd, parts[-1], cap, shown)
    except OSError as exc:
        raise _explain_os_error(exc, shown) from None
    finally:
        os.close(folder_fd)
    if b"\x00" in data:
        raise FileToolError(f"{shown} is a binary file (it contains NUL bytes); only text files can be read.")
    return data, cut


def _walk(workspace: _Workspace, path: str, recursive: bool, files_only: bool = False) -> Generator[tuple[int, str, str], None, None]:
    """(folder fd, name, path to show) of each entry under `path`, sorted; links are never followed.

    A file `path` yields itself (when `files_only`); a folder with more than MAX_SCAN_ENTRIES entries
    is only partly listed when not recursive.
    """
    parts, shown = workspace.parts(path), _show(path)
    base = "/".join(parts)
    try:
        top_fd = workspace.open_folder(parts)
    except NotADirectoryError:
        if not files_only:
            raise FileToolError(f"{shown} is a file, not a folder. Use read_file for files.") from None
        folder_fd = _open_or_explain(workspace, parts[:-1], shown)
        try:
            yield folder_fd, parts[-1], base
        finally:
            os.close(folder_fd)
        return
    except OSError as exc:
        raise _explain_os_error(exc, shown) from None
    try:
        if not recursive:
            with os.scandir(top_fd) as scan:
                for name in sorted(entry.name for _, entry in zip(range(MAX_SCAN_ENTRIES + 1), scan)):
                    yield top_fd, name, name
            return
        walk = os.fwalk(".", dir_fd=top_fd, follow_symlinks=False)  # descends into real folders only
        try:
            for folder, dirnames, filenames, folder_fd in walk:
                dirnames.sort()
                for name in sorted(filenames if files_only else dirnames + filenames):
                    yield folder_fd, name, os.path.normpath(os.path.join(base, folder, name))
        finally:
            walk.close()  # type: ignore[attr-defined]  # fwalk is a generator; typeshed says Iterator
    finally:
        os.close(top_fd)


def _open_or_explain(workspace: _Workspace, parts: list[str], shown: str) -> int:
    try:
        return workspace.open_folder(parts)
    except OSError as exc:
        raise _explain_os_error(exc, shown) from None


def _describe(folder_fd: int, name: str, shown: str) -> str:
    try:
        info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except OSError:
        return f"{shown}  (vanished)"
    if stat.S_ISREG(info.st_mode):
        return f"{shown}  ({info.st_size} bytes)"
    return f"{shown}/" if stat.S_ISDIR(info.st_mode) else f"{shown}  ({'symbolic link' if stat.S_ISLNK(info.st_mode) else 'special file'})"


def _write_atomically(folder_fd: int, name: str, data: bytes, shown: str) -> str:
    """Write `data` to a temporary file beside `name`, then rename it over `name` (never half-written)."""
    name = _name_on_disk(folder_fd, name)
    try:
        existing = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        _check_regular(existing, shown)
    temporary = _temporary_name(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    # Only the permission bits carry over: a replaced setuid/setgid program must not stay one with new content.
    mode = 0o644 if existing is None else stat.S_IMODE(existing.st_mode) & 0o777
    try:
        fd = os.open(temporary, flags, mode, dir_fd=folder_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)  # replaces a link, never follows it
    except OSError as exc:
        try:
            os.unlink(temporary, dir_fd=folder_fd)
        except OSError:
            pass
        raise _explain_os_error(exc, shown) from None
    return f"{'Replaced' if existing else 'Created'} {shown} ({len(data)} bytes)."
