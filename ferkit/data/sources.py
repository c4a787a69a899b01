"""Where the image files of a data set come from: a zip archive read in place, or a folder.

Both list their files as POSIX paths and read one file at a time within `ReadLimits`:
the archive's member count and total size are checked from its headers before anything is
read, and every read is bounded again while it happens (a header can lie).

Symbolic links in a folder: a link to a file inside the folder is read like that file (the
quality gate sees the duplicate it makes); a link that leaves the folder, and any link to a
folder, is refused (a folder link inside would read that folder twice, or loop). An
archive's links are always refused. The ingest report lists both kinds with the reason.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ferkit.data.errors import DataError, raised_by_a_signal_handler
from ferkit.data.images import MB, BadImage, ReadLimits, env_hint, read_bounded, read_file


def _too_many(label: str, count: int, limits: ReadLimits) -> DataError:
    return DataError(f"{label}: holds {count:,} files, over the limit of {limits.max_files:,}; {env_hint('max_files')}")


class FolderSource:
    """Files under an extracted folder, as POSIX paths relative to it."""

    def __init__(self, root: Path, limits: ReadLimits):
        self.root, self.limits, self.label = root, limits, str(root)
        self.real_root = root.resolve()
        self.followed_links: list[str] = []  # links inside the folder, read like their targets
        self.refused_links: dict[str, str] = {}  # link -> why it was not followed
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = sorted(self._walk())
        return self._names

    def _walk(self) -> list[str]:
        names: list[str] = []

        def unreadable(error: OSError) -> None:
            self.refused_links[Path(error.filename).relative_to(self.root).as_posix() + "/"] = (
                f"folder cannot be read: {error.strerror}"
            )

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=unreadable):  # never through a link
            here = Path(dirpath)
            for name in dirnames:
                if (here / name).is_symlink():
                    self._refuse_folder_link(here / name)
            for name in filenames:
                if self._file_allowed(here / name):
                    names.append((here / name).relative_to(self.root).as_posix())
            if len(names) > self.limits.max_files:
                raise _too_many(self.label, len(names), self.limits)
        return names

    def _file_allowed(self, path: Path) -> bool:
        """A plain file, or a link to a file inside the folder (recorded); links elsewhere are refused.
        Pipes, devices and sockets are not files: `read` names them as bad files without blocking."""
        if not path.is_symlink():
            return True
        rel = path.relative_to(self.root).as_posix()
        try:
            real = path.resolve()
        except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError on a loop
            self.refused_links[rel] = "symbolic link loop"
            return False
        if not real.is_relative_to(self.real_root):
            self.refused_links[rel] = f"symbolic link to '{real}', outside the data folder"
        elif not real.is_file():
            self.refused_links[rel] = f"symbolic link to '{real}', which is not a file"
        else:
            self.followed_links.append(rel)
            return True
        return False

    def _refuse_folder_link(self, path: Path) -> None:
        """Folder links are never walked: outside they leave the data, inside they read a folder twice (or loop)."""
        rel = path.relative_to(self.root).as_posix()
        try:
            real = path.resolve()
        except (RuntimeError, OSError):
            self.refused_links[rel] = "symbolic link loop"
            return
        if real.is_relative_to(self.real_root):
            inside = real.relative_to(self.real_root).as_posix() or "."
            self.refused_links[rel] = f"symbolic link to the folder '{inside}', read under its own name"
        else:
            self.refused_links[rel] = f"symbolic link to '{real}', outside the data folder"

    def read(self, name: str) -> bytes:
        return read_file(self.root / name, self.limits)


class ZipSource:
    """Members of a zip archive, read one at a time in memory; unsafe member names are refused."""

    def __init__(self, path: Path, limits: ReadLimits):
        self.label, self.limits = str(path), limits
        self.followed_links: list[str] = []  # an archive's links are never followed
        self.refused_links: dict[str, str] = {}
        _check_directory(path, self.label, limits)
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DataError(f"{self.label}: not a readable zip archive: {exc}") from None
        self.infos = {info.filename: info for info in self.zf.infolist() if not info.is_dir()}
        if len(self.infos) > limits.max_files:
            raise _too_many(self.label, len(self.infos), limits)
        declared = sum(info.file_size for info in self.infos.values())
        if declared > limits.max_archive_bytes:
            raise DataError(
                f"{self.label}: members add up to {declared / MB:,.0f} MB uncompressed, over the limit of "
                f"{limits.max_archive_bytes / MB:g} MB; {env_hint('max_archive_bytes')}"
            )
        self.bytes_read = 0

    def close(self) -> None:
        self.zf.close()

    def names(self) -> list[str]:
        names = []
        for name, info in self.infos.items():
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
                raise DataError(f"{self.label}: refusing zip member '{name}': absolute paths and '..' are not allowed")
            if stat.S_ISLNK(info.external_attr >> 16):
                self.refused_links[name] = "symbolic link inside the archive (never followed)"
                continue
            names.append(name)
        return sorted(names)

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        try:
            with self.zf.open(info) as member:
                raw = read_bounded(member, self.limits, declared=info.file_size)
        except BadImage:
            raise
        except Exception as exc:  # noqa: BLE001 - bad CRC, zlib/bz2/lzma errors, encryption: this member's fault
            if raised_by_a_signal_handler(exc):  # a stop request that landed in the read
                raise
            raise BadImage(f"cannot read archive member: {type(exc).__name__}: {exc}") from None
        self.bytes_read += len(raw)
        if self.bytes_read > self.limits.max_archive_bytes:  # headers that understate sizes are caught here
            raise DataError(
                f"{self.label}: more than {self.limits.max_archive_bytes / MB:g} MB read from the archive, "
                f"more than its headers declared; {env_hint('max_archive_bytes')}"
            )
        return raw


# zipfile keeps about 540 bytes per entry; its directory is read by byte size, whatever count the
# end record states. An average entry of 128 bytes (names up to about 80 characters) is generous.
_DIRECTORY_BYTES_PER_FILE = 128


def _check_directory(path: Path, label: str, limits: ReadLimits) -> None:
    """Refuse an archive whose end record states more files than the limit, or a directory too large
    for that many, before zipfile reads the directory into memory (either field can lie)."""
    try:
        with open(path, "rb") as file:
            record = zipfile._EndRecData(file)  # noqa: SLF001 (the standard library's own parser)
    except (OSError, zipfile.BadZipFile, AttributeError, ValueError):
        return  # zipfile will say what is wrong
    if not record:
        return
    stated, size = int(record[zipfile._ECD_ENTRIES_TOTAL]), int(record[zipfile._ECD_SIZE])  # noqa: SLF001
    if stated > limits.max_files:
        raise _too_many(label, stated, limits)
    if size > limits.max_files * _DIRECTORY_BYTES_PER_FILE:
        raise DataError(
            f"{label}: its directory is {size / MB:,.1f} MB, more than {limits.max_files:,} files need; "
            f"{env_hint('max_files')}"
        )
