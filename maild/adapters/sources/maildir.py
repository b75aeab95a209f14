"""A local Maildir as a MailSource: the embedded default when no IMAP server is configured.

The watched folder is the Maildir root (its ``new/`` and ``cur/``). UIDs live in
``maild-uidlist`` in the root, like Dovecot's ``dovecot-uidlist``::

    maild-uidlist 1 V<uidvalidity> N<next uid>
    <uid> <base file name>          (the name up to the ':2,...' info part)

New files get increasing UIDs in order of (mtime, name); the list is rewritten atomically
(tmp + rename) under an flock, so several instances on one Maildir agree. Message files are
never modified. ``move(uids, "Processed")`` renames the files into the Maildir++ subfolder
``.Processed/cur/`` (created when missing). ``deliver()`` writes a message the Maildir way.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maild.adapters.sources.base import Fetched, MailSourceError, within

log = logging.getLogger("maild.intake")

UIDLIST = "maild-uidlist"
_MAGIC = "maild-uidlist 1"
_counter = itertools.count(1)


@dataclass
class _UidList:
    validity: int
    next_uid: int
    uid_of: dict[str, int] = field(default_factory=dict)  # base name -> uid


def _new_validity() -> int:
    """A fresh UIDVALIDITY in microseconds: a uid list recreated within the same second
    must still differ from the old one, or old UIDs would be taken for already handled.
    (Ours is not an IMAP server, so it need not fit in 32 bits; the store keeps 64.)"""
    return time.time_ns() // 1000


def _base(filename: str) -> str:
    return filename.split(":", 1)[0]


def _ensure_maildir(path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)


def deliver(path: str | os.PathLike[str], raw: bytes) -> Path:
    """Write ``raw`` into the Maildir at ``path`` (tmp/ then rename into new/); returns it."""
    root = Path(path)
    _ensure_maildir(root)
    now = time.time()
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    name = f"{int(now)}.M{int(now % 1 * 1e6):06d}P{os.getpid()}Q{next(_counter)}.{host}"
    tmp = root / "tmp" / name
    with open(tmp, "xb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    final = root / "new" / name
    os.rename(tmp, final)
    return final


class MaildirSource:
    """The root folder of a local Maildir (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, processed: str = "Processed") -> None:
        self.root = Path(path).resolve()
        self.name = f"maildir://{self.root}"
        self.processed = processed
        self._lock = threading.Lock()

    # -- the MailSource port ---------------------------------------------------------------

    def open(self) -> None:
        with self._guard("open"):
            _ensure_maildir(self.root)
            self._sync()

    def close(self) -> None:
        """Nothing to release: the lock is only held during a call."""

    def uidvalidity(self) -> int:
        with self._guard("uidvalidity"):
            return self._sync()[0].validity

    def fetch_after(self, last_uid: int, limit: int, max_bytes: int | None = None,
                    cap: int | None = None, first_alone: bool = True) -> list[Fetched]:
        if limit <= 0:
            return []
        with self._guard("fetch"):
            _, paths = self._sync()
            sizes = []
            for uid in sorted(u for u in paths if u > last_uid)[:limit]:
                size = self._size(paths[uid])
                if size is not None:
                    sizes.append((uid, size))
            out: list[Fetched] = []
            for uid, size in within(sizes, max_bytes, first_alone):
                raw = self._read(paths[uid], cap)
                if raw is not None:
                    out.append(Fetched(uid, raw, max(size, len(raw))))
            return out

    def move(self, uids: Sequence[int], folder: str) -> None:
        wanted = {int(u) for u in uids}
        if not wanted:
            return
        with self._guard(f"move to {folder}"):
            dest = self._folder_dir(folder)
            if dest == self.root:
                return
            _ensure_maildir(dest)
            (dest / "maildirfolder").touch()
            listing, paths = self._sync()
            moved = 0
            for uid in sorted(wanted & paths.keys()):
                src = self._locate(paths[uid])
                if src is None:
                    continue
                name = src.name if ":" in src.name else src.name + ":2,"
                target = dest / "cur" / name
                for n in itertools.count(1):
                    if not target.exists():
                        break
                    target = dest / "cur" / f"{_base(name)}.dup{n}:{name.split(':', 1)[1]}"
                os.rename(src, target)
                listing.uid_of.pop(_base(src.name), None)
                moved += 1
            self._write(listing)
            log.info("moved %d message(s) from %s to %s", moved, self.name, folder)

    def count(self, folder: str | None = None) -> int:
        with self._guard("count"):
            base = self.root if folder is None else self._folder_dir(folder)
            return sum(1 for _ in _files(base))

    def watch(self, idle_seconds: float) -> MaildirWatch:
        return MaildirWatch(self.root)

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Serialise callers (threads via a lock, processes via flock); wrap OS errors."""
        try:
            with self._lock:
                _ensure_maildir(self.root)
                with open(self.root / f"{UIDLIST}.lock", "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    yield
        except OSError as exc:
            raise MailSourceError(f"{what} on {self.name} failed: {exc}") from exc

    def _folder_dir(self, folder: str) -> Path:
        if folder.upper() == "INBOX":
            return self.root
        parts = folder.replace("/", ".").split(".")
        if not all(parts) or any(p in ("..",) or "\0" in p for p in parts):
            raise MailSourceError(f"invalid Maildir folder name {folder!r}")
        return self.root / ("." + ".".join(parts))

    def _sync(self) -> tuple[_UidList, dict[int, Path]]:
        """Give new files UIDs, forget vanished ones; returns the list and uid -> path."""
        listing, dirty = self._load()
        files = _scan(self.root)
        if any(b not in files for b in listing.uid_of):
            files = _scan(self.root)  # a second look before forgetting anything
        for base in [b for b in listing.uid_of if b not in files]:
            del listing.uid_of[base]
            dirty = True
        fresh = [(_mtime(p), b) for b, p in files.items() if b not in listing.uid_of]
        for _, base in sorted(fresh):
            listing.uid_of[base] = listing.next_uid
            listing.next_uid += 1
            dirty = True
        if dirty:
            self._write(listing)
        return listing, {uid: files[b] for b, uid in listing.uid_of.items()}

    def _load(self) -> tuple[_UidList, bool]:
        path = self.root / UIDLIST
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return _UidList(_new_validity(), 1), True
        try:
            magic, v, n = lines[0].rsplit(" ", 2)
            if magic != _MAGIC or v[0] != "V" or n[0] != "N":
                raise ValueError("bad header")
            listing = _UidList(int(v[1:]), int(n[1:]))
            for line in lines[1:]:
                uid, base = line.split(" ", 1)
                listing.uid_of[base] = int(uid)
            return listing, False
        except (ValueError, IndexError) as exc:
            log.warning(
                "%s: unreadable %s (%s); starting a new UIDVALIDITY", self.name, UIDLIST, exc
            )
            old = re.search(r"\bV(\d+)", lines[0] if lines else "")
            validity = max(_new_validity(), int(old.group(1)) + 1 if old else 1)
            return _UidList(validity, 1), True

    def _write(self, listing: _UidList) -> None:
        tmp = self.root / f"{UIDLIST}.tmp"
        body = [f"{_MAGIC} V{listing.validity} N{listing.next_uid}"]
        body += [
            f"{uid} {base}" for base, uid in sorted(listing.uid_of.items(), key=lambda kv: kv[1])
        ]
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\n".join(body) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / UIDLIST)

    def _locate(self, path: Path) -> Path | None:
        """``path``, or where the file went meanwhile (new/ -> cur/, flags changed)."""
        if path.exists():
            return path
        return _scan(self.root).get(_base(path.name))

    def _size(self, path: Path) -> int | None:
        found: Path | None = path
        for _ in range(2):
            if found is None:
                return None
            try:
                return found.stat().st_size
            except FileNotFoundError:
                found = self._locate(found)
        return None

    def _read(self, path: Path, cap: int | None = None) -> bytes | None:
        for _ in range(2):
            try:
                if cap is None:
                    return path.read_bytes()
                with open(path, "rb") as fh:
                    return fh.read(cap)
            except FileNotFoundError:
                found = self._locate(path)
                if found is None:
                    return None
                path = found
        return None


def _files(folder: Path) -> Iterator[os.DirEntry[str]]:
    for sub in ("new", "cur"):  # new/ first: a file moving new/ -> cur/ is never missed
        try:
            with os.scandir(folder / sub) as it:
                yield from (e for e in it if not e.name.startswith(".") and e.is_file())
        except FileNotFoundError:
            continue


def _scan(root: Path) -> dict[str, Path]:
    return {_base(e.name): Path(e.path) for e in _files(root)}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


class MaildirWatch:
    """New files in a Maildir's ``new/`` (a ``MailWatch``): each ``wait`` sleeps, then looks
    at the folder's mtime (one ``stat``) and reads its names only when that changed or is
    younger than ``_SETTLE_NS`` (a file landing within the same clock tick as the last look
    leaves the mtime as it was). True when a name not seen before is there."""

    def __init__(self, root: Path) -> None:
        self.new = root / "new"
        self._mtime: int | None = None  # None: not looked yet (or the look failed)
        self._seen: set[str] = set()

    def wait(self, timeout: float) -> bool:
        first = self._mtime is None
        if not first:
            time.sleep(max(0.0, timeout))
        try:
            mtime = self.new.stat().st_mtime_ns
            if mtime == self._mtime and time.time_ns() - mtime > _SETTLE_NS:
                return False
            with os.scandir(self.new) as it:
                names = {e.name for e in it if not e.name.startswith(".")}
        except OSError as exc:
            self._mtime = None
            raise MailSourceError(f"watching {self.new} failed: {exc}") from exc
        self._mtime = mtime
        fresh = bool(names - self._seen)
        self._seen = names
        return first or fresh

    def close(self) -> None:
        """Nothing to release."""


#: a folder's mtime younger than this is looked into even when unchanged
_SETTLE_NS = 2_000_000_000
