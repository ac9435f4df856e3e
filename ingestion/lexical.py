"""The lexical (BM25) index beside the Chroma collection, always in step with it.

The chunk texts live in the ingestion manifest (SQLite), written in the same
transaction that records a file as indexed; the `bm25s` arrays under
`Settings.bm25_dir` (`index/bm25-<collection>/`) are derived from them and stamped with the
manifest's generation and the index spec (embedder id and chunking). A stale
or missing stamp means "rebuild from the manifest", so an interrupted run can
never leave BM25 and Chroma disagreeing; a stamp written for another embedder
or chunking is refused like Chroma's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import IndexMismatchError, IndexMissingError
from ingestion.index import Hit, IndexSpec
from ingestion.manifest import Manifest

if TYPE_CHECKING:
    from chatbot.settings import Settings

log = logging.getLogger(__name__)

STAMP = "medchat-stamp.json"
FORMAT = 2  # 2: title and section are indexed with the text; an index of another format is rebuilt


def _searchable(text: str, metadata: str) -> str:
    """What BM25 indexes: the title and section (as the dense embedding sees them) and the text."""
    try:
        meta = json.loads(metadata)
    except ValueError:
        return text
    heading = " ".join(str(meta.get(k, "")) for k in ("title", "section") if meta.get(k))
    return f"{heading}\n{text}" if heading else text


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    tokens = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
    return tokens if isinstance(tokens, list) else list(tokens)


class LexicalIndex:
    """BM25 over the indexed chunks; `query(text, k)` returns `Hit`s like `ChromaIndex.query`."""

    def __init__(self, folder: Path, manifest: Manifest, spec: IndexSpec) -> None:
        self.folder = folder
        self.manifest = manifest
        self.spec = spec
        self._bm25: Any = None
        self._ids: list[str] = []
        self._generation = -1
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, spec: IndexSpec, manifest: Manifest | None = None) -> LexicalIndex:
        """Open the BM25 index of the settings' collection; refuse one built differently."""
        path = settings.manifest_path
        if manifest is None:
            if not path.is_file():
                raise IndexMissingError(
                    f"no lexical index at {settings.index_dir}: run `medchat ingest PATH...` first"
                )
            manifest = Manifest(path, spec.as_metadata())
        index = cls(settings.bm25_dir, manifest, spec)
        index._check_stamp()
        return index

    def _stamp(self) -> dict[str, Any]:
        file = self.folder / STAMP
        try:
            return dict(json.loads(file.read_text()))
        except (OSError, ValueError):
            return {}

    def _check_stamp(self) -> None:
        stamp = self._stamp().get("spec")
        if stamp and stamp != self.spec.as_metadata():
            raise IndexMismatchError(
                f"the BM25 index at {self.folder} was built with {stamp}, the settings ask for "
                f"{self.spec.as_metadata()}: rebuild with `medchat ingest --rebuild PATH...`"
            )

    @property
    def fresh(self) -> bool:
        stamp = self._stamp()
        return (
            stamp.get("generation") == self.manifest.generation
            and stamp.get("format") == FORMAT
            and (self.folder / "ids.json").is_file()
        )

    def sync(self) -> bool:
        """Rebuild from the manifest when it moved on since the last build; True if rebuilt."""
        if self.fresh:
            return False
        self.rebuild()
        return True

    def rebuild(self) -> None:
        import bm25s

        generation = self.manifest.generation
        ids: list[str] = []
        texts: list[str] = []
        for cid, text, meta in self.manifest.iter_chunks():
            ids.append(cid)
            texts.append(_searchable(text, meta))
        tmp = self.folder.with_name(f"{self.folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        bm25 = bm25s.BM25()
        if texts:
            bm25.index(_tokenize(texts), show_progress=False)
            bm25.save(str(tmp))
        (tmp / "ids.json").write_text(json.dumps(ids))
        (tmp / STAMP).write_text(
            json.dumps({"generation": generation, "format": FORMAT, "spec": self.spec.as_metadata()})
        )
        # swap in the new folder; a crash here leaves a stale or missing stamp, rebuilt next time
        old = self.folder.with_name(f"{self.folder.name}.old{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        try:
            if self.folder.exists():
                self.folder.rename(old)
            tmp.rename(self.folder)
        except OSError as e:  # another process swapped at the same moment; its copy is as good
            log.info("BM25 index not saved (%s); using the one built in memory", e)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        self._bm25 = bm25 if texts else None
        self._ids = ids
        self._generation = generation
        log.info("BM25 index rebuilt: %d chunks (generation %d)", len(ids), generation)

    def _load(self) -> None:
        """Load the arrays once, and again whenever an ingestion moved the manifest on."""
        if self._generation == self.manifest.generation:
            return
        if not self.fresh:
            self.rebuild()
            return
        import bm25s

        generation = int(self._stamp().get("generation", -1))
        self._ids = json.loads((self.folder / "ids.json").read_text())
        self._bm25 = bm25s.BM25.load(str(self.folder)) if self._ids else None
        self._generation = generation

    def count(self) -> int:
        with self._lock:
            self._load()
            return len(self._ids)

    def query(self, text: str, k: int) -> list[Hit]:
        """The `k` best chunks by BM25 score (only those sharing a term with the query)."""
        tokens = _tokenize([text])
        if not tokens or not tokens[0]:
            return []
        with self._lock:
            self._load()
            if self._bm25 is None or not self._ids:
                return []
            docs, scores = self._bm25.retrieve(tokens, k=min(k, len(self._ids)), show_progress=False)
            picked = [(self._ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
            stored = self.manifest.get_chunks([cid for cid, _ in picked])
        return [
            Hit(id=cid, text=stored[cid][0], metadata=json.loads(stored[cid][1]), score=score)
            for cid, score in picked
            if cid in stored
        ]
