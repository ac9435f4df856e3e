"""The ingestion manifest: which files are indexed, with which chunks, in one SQLite file.

A file is recorded as done only after its chunks are in Chroma, in one
transaction that also stores the chunk texts the BM25 index is built from.
Until then its chunks wait in a `staged` table, batch by batch, so that a file
of any size never has to be held in memory; staged chunks count for nothing
until their file is committed, and an interrupted run's are discarded.
A run marks the manifest dirty before its first write to Chroma and clean
after its last; a dirty manifest at start means an interrupted run, and the
pipeline then reconciles Chroma with the manifest (see `pipeline.reconcile`).
Every commit bumps a generation number that the BM25 index is stamped with.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import IndexMismatchError
from ingestion.documents import Chunk, sha256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    file_hash TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    ingested_at REAL NOT NULL DEFAULT (julianday('now'))
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE TABLE IF NOT EXISTS staged (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staged_path ON staged(path);
"""


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    file_hash: str
    chunks: int


def fingerprint(chunk: Chunk) -> str:
    """What the stored vector and metadata depend on: equal fingerprints need no new embedding."""
    return sha256(chunk.embed_text + "\x00" + json.dumps(chunk.store_metadata(), sort_keys=True))[:32]


class Manifest:
    def __init__(self, path: Path, spec: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # readers such as a long-running chat server query from several threads
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        stored = self._get("spec")
        wanted = json.dumps(spec, sort_keys=True)
        if stored is None:
            self._set("spec", wanted)
        elif stored != wanted:
            raise IndexMismatchError(
                f"the manifest {path} was written for {stored}, the settings ask for {wanted}: "
                "restore the settings or rebuild with `medchat ingest --rebuild PATH...`"
            )

    @staticmethod
    def drop(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO info(key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self._get("generation") or 0)

    def _bump(self) -> None:
        self._set("generation", str(self.generation + 1))

    @property
    def dirty(self) -> bool:
        return self._get("dirty") == "1"

    def set_dirty(self, dirty: bool) -> None:
        self._set("dirty", "1" if dirty else "0")

    def files(self) -> dict[str, FileRecord]:
        rows = self._db.execute("SELECT path, size, mtime_ns, file_hash, chunks FROM files")
        return {r[0]: FileRecord(*r) for r in rows}

    def fingerprints(self, path: str) -> dict[str, str]:
        rows = self._db.execute("SELECT id, fingerprint FROM chunks WHERE path = ?", (path,))
        return dict(rows.fetchall())

    def chunk_ids(self, path: str | None = None) -> set[str]:
        if path is None:
            return {r[0] for r in self._db.execute("SELECT id FROM chunks")}
        return {r[0] for r in self._db.execute("SELECT id FROM chunks WHERE path = ?", (path,))}

    def chunk_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def paths_of(self, ids: Sequence[str]) -> set[str]:
        paths: set[str] = set()
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            paths.update(
                r[0]
                for r in self._db.execute(f"SELECT DISTINCT path FROM chunks WHERE id IN ({marks})", part)
            )
        return paths

    def commit_files(self, entries: Sequence[tuple[FileRecord, Sequence[Chunk]]]) -> None:
        """Record files as done with exactly these chunks, all in one transaction."""
        with self._transaction():
            for record, chunks in entries:
                self._db.execute("DELETE FROM chunks WHERE path = ?", (record.path,))
                self._db.executemany(
                    "INSERT OR REPLACE INTO chunks(id, path, fingerprint, text, metadata) VALUES (?,?,?,?,?)",
                    [
                        (c.id, record.path, fingerprint(c), c.text, json.dumps(c.store_metadata()))
                        for c in chunks
                    ],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO files(path, size, mtime_ns, file_hash, chunks) "
                    "VALUES (?,?,?,?,?)",
                    (record.path, record.size, record.mtime_ns, record.file_hash, record.chunks),
                )
            self._bump()

    def stage(self, path: str, chunks: Sequence[Chunk]) -> None:
        """Keep chunks of a file in progress (already in Chroma) until the file is committed."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO staged(id, path, fingerprint, text, metadata) VALUES (?,?,?,?,?)",
                [(c.id, path, fingerprint(c), c.text, json.dumps(c.store_metadata())) for c in chunks],
            )

    def commit_staged(self, records: Sequence[FileRecord]) -> list[tuple[int, list[str]]]:
        """Record files as done with exactly their staged chunks, all in one transaction.

        Returns, per file, the number of chunks it gained and the ids of the chunks it lost
        (the caller removes those from Chroma).
        """
        out = []
        with self._transaction():
            for r in records:
                added = self._db.execute(
                    "SELECT count(*) FROM staged WHERE path = ? AND id NOT IN "
                    "(SELECT id FROM chunks WHERE path = ?)",
                    (r.path, r.path),
                ).fetchone()[0]
                lost = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT id FROM chunks WHERE path = ? AND id NOT IN "
                        "(SELECT id FROM staged WHERE path = ?) ORDER BY id",
                        (r.path, r.path),
                    )
                ]
                self._db.execute("DELETE FROM chunks WHERE path = ?", (r.path,))
                self._db.execute(
                    "INSERT INTO chunks(id, path, fingerprint, text, metadata) "
                    "SELECT id, path, fingerprint, text, metadata FROM staged WHERE path = ?",
                    (r.path,),
                )
                self._db.execute("DELETE FROM staged WHERE path = ?", (r.path,))
                self._db.execute(
                    "INSERT OR REPLACE INTO files(path, size, mtime_ns, file_hash, chunks) "
                    "VALUES (?,?,?,?,?)",
                    (r.path, r.size, r.mtime_ns, r.file_hash, r.chunks),
                )
                out.append((int(added), lost))
            self._bump()
        return out

    def discard_staged(self, path: str | None = None) -> set[str]:
        """Drop the staged chunks of one file (or all); returns their ids."""
        where, args = ("WHERE path = ?", (path,)) if path is not None else ("", ())
        with self._transaction():
            ids = {r[0] for r in self._db.execute(f"SELECT id FROM staged {where}", args)}
            self._db.execute(f"DELETE FROM staged {where}", args)
        return ids

    def touch(self, record: FileRecord) -> None:
        """The file's bytes are unchanged but its size/mtime moved: remember the new stat."""
        self._db.execute(
            "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
            (record.size, record.mtime_ns, record.path),
        )

    def forget(self, paths: Sequence[str]) -> None:
        with self._transaction():
            for path in paths:
                self._db.execute("DELETE FROM chunks WHERE path = ?", (path,))
                self._db.execute("DELETE FROM files WHERE path = ?", (path,))
            self._bump()

    def iter_chunks(self) -> Iterator[tuple[str, str, str]]:
        """(id, text, metadata JSON) of every chunk, in a stable order."""
        yield from self._db.execute("SELECT id, text, metadata FROM chunks ORDER BY id")

    def get_chunks(self, ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for cid, text, meta in self._db.execute(
                f"SELECT id, text, metadata FROM chunks WHERE id IN ({marks})", part
            ):
                out[cid] = (text, meta)
        return out

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
