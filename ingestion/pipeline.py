"""`medchat ingest`: files -> documents -> chunks -> embeddings -> Chroma + BM25.

Incremental: a file whose size and modification time (or, failing those, its
bytes) match the manifest is not read again; a changed file has its chunks
replaced, and only chunks whose text or metadata changed are embedded again.
Resumable: chunks stream through the embedder in batches across files, a file
is recorded in the manifest only after all its chunks are in Chroma, and a run
that finds the manifest dirty (an earlier run was killed) first removes from
Chroma whatever the manifest does not vouch for. The BM25 index is rebuilt
from the manifest whenever the manifest moved on. A file that cannot be read
is reported with its reason and the run goes on.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import MedchatError
from ingestion.documents import file_sha256

if TYPE_CHECKING:
    from chatbot.settings import Settings
    from ingestion.chunking import Chunker
    from ingestion.documents import Chunk
    from ingestion.embedding import Embedder
    from ingestion.index import ChromaIndex
    from ingestion.lexical import LexicalIndex
    from ingestion.manifest import FileRecord, Manifest

log = logging.getLogger(__name__)

# (file being read or "" at the end, files done, files in all, chunks embedded so far); called
# before each file and after each embedded batch, so that one large file shows progress too
IngestProgress = Callable[[str, int, int, int], None]
STAGES = ("scan", "reconcile", "load", "chunk", "embed", "write", "bm25")


@dataclass
class FileOutcome:
    path: str
    status: str  # ingested | unchanged | skipped | failed | removed
    chunks: int = 0
    reason: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    files_seen: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0
    total_chunks: int = 0
    gone: int = 0  # indexed files that no longer exist (removed only with --prune)
    recovered: bool = False  # an interrupted earlier run was cleaned up first
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    files: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["stages"] = {k: round(v, 3) for k, v in self.stages.items()}
        for status in ("ingested", "unchanged", "skipped", "failed", "removed"):
            data[f"files_{status}"] = self.count(status)
        return data


class _Clock:
    def __init__(self, report: IngestReport, stage: str) -> None:
        self.report, self.stage = report, stage

    def __enter__(self) -> None:
        self.t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.report.stages[self.stage] += time.perf_counter() - self.t


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def iter_files(paths: Iterable[Path], extensions: Iterable[str], report: IngestReport) -> Iterator[Path]:
    """Files under the given paths with a known suffix, each once, in a stable order.

    Symbolic links are followed only when they resolve inside the folder given;
    links out of it, dangling links and loops are reported as skipped. Folders
    reached through links are not descended (their files are reached directly).
    """
    exts = {e.lower() for e in extensions}
    seen: set[Path] = set()

    def skip(path: Path | str, reason: str) -> None:
        report.files.append(FileOutcome(_display(path), "skipped", reason=reason))

    for given in paths:
        if not given.exists() and not given.is_symlink():
            report.files.append(FileOutcome(_display(given), "failed", reason="no such file or folder"))
            continue
        try:
            root = given.resolve(strict=True)
        except (OSError, RuntimeError):
            skip(given, "a symbolic link that leads nowhere or in a loop; not followed")
            continue
        if root.is_file():
            candidates: Iterable[Path] = [given]
            top = root.parent
        elif not root.is_dir():  # a FIFO, a device (a link to /dev/zero) or a socket: never read
            skip(given, f"not a regular file ({_kind(root)}); not read")
            continue
        else:
            top = root
            candidates = _walk(root)
        for path in candidates:
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    skip(path, "a symbolic link that leads nowhere or in a loop; not followed")
                    continue
                if path is not given and not _inside(target, top):
                    skip(path, f"a symbolic link out of {top}; not followed")
                    continue
                if target.is_dir():
                    continue
            else:
                target = path if path.is_absolute() else path.resolve()
            if target in seen:
                continue
            seen.add(target)
            if path.suffix.lower() not in exts:
                if path is given:
                    skip(path, f"'{path.suffix}' is not an ingested type")
                continue
            try:
                str(target).encode("utf-8")
            except UnicodeEncodeError:
                skip(path, "the file name is not valid UTF-8; rename the file")
                continue
            if not target.is_file():
                skip(path, "not a regular file")
                continue
            yield target


def _walk(root: Path) -> Iterator[Path]:
    """Every entry under `root` in sorted order, without following linked folders."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        base = Path(folder)
        links = [d for d in dirs if (base / d).is_symlink()]
        for name in sorted(files + links):
            yield base / name


def _kind(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError:
        return "unreadable"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file or folder"


def _display(path: Path | str) -> str:
    return os.fsencode(str(path)).decode("utf-8", "replace")


@dataclass
class _File:
    """A file being ingested: what the manifest knew of it and its chunks not yet staged."""

    record: FileRecord
    old: dict[str, str]  # chunk id -> fingerprint, as the manifest has them
    outcome: FileOutcome
    seen: set[str] = field(default_factory=set)
    chunks: list[Chunk] = field(default_factory=list)  # read since the last flush
    to_embed: list[Chunk] = field(default_factory=list)  # of those, the ones needing new vectors
    done: bool = False


class _Run:
    """One ingestion run: the collaborators, the report and the batch being filled.

    Chunks stream from the loaders into a batch shared by all files; every
    `batch_size` chunks the batch is embedded, written to Chroma and staged in
    the manifest, so memory holds one batch (and the ids of the file in
    progress), however large a file or the corpus. A file is committed once all
    its chunks are written.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        index: ChromaIndex,
        manifest: Manifest,
        report: IngestReport,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self.manifest = manifest
        self.report = report
        self.pending: list[_File] = []
        self.buffered = 0  # chunks held in memory by the pending files
        self.progress: IngestProgress | None = None
        self.position = ("", 0, 0)  # (file, files done, files in all) for progress
        self._chunker: Chunker | None = None
        self.dirty = False

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            from ingestion.chunking import Chunker

            self._chunker = Chunker.from_settings(self.settings)
        return self._chunker

    def mark_dirty(self) -> None:
        if not self.dirty:
            self.manifest.set_dirty(True)
            self.dirty = True

    def process(self, path: Path, known: FileRecord | None) -> None:
        from ingestion.loaders import STREAMED, LoadOptions, iter_load
        from ingestion.manifest import FileRecord

        report = self.report
        source = str(path)
        try:
            st = path.stat()
        except OSError as e:
            report.files.append(FileOutcome(source, "failed", reason=f"cannot read the file ({e.strerror})"))
            return
        if known and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
            report.files.append(FileOutcome(source, "unchanged", chunks=known.chunks))
            return
        limit_mb = self.settings.ingestion.max_file_mb
        streamed = path.suffix.lower() in STREAMED  # read a line at a time, each line capped
        if st.st_size > limit_mb * 1_000_000 and not streamed:  # before a byte is parsed
            reason = (
                f"{path}: {st.st_size / 1_000_000:,.1f} MB, larger than ingestion.max_file_mb "
                f"({limit_mb:g} MB); split the file or raise MEDCHAT_INGESTION__MAX_FILE_MB"
            )
            log.warning("%s", reason)
            report.files.append(FileOutcome(source, "failed", reason=reason))
            return
        with _Clock(report, "load"):
            try:
                digest = file_sha256(path)
            except OSError as e:
                report.files.append(
                    FileOutcome(source, "failed", reason=f"cannot read the file ({e.strerror})")
                )
                return
            record = FileRecord(source, st.st_size, st.st_mtime_ns, digest, 0)
            if known and known.file_hash == digest:
                self.manifest.touch(record)
                report.files.append(FileOutcome(source, "unchanged", chunks=known.chunks))
                return
        ing = self.settings.ingestion
        opts = LoadOptions(
            jsonl_text_field=ing.jsonl_text_field,
            jsonl_id_field=ing.jsonl_id_field,
            jsonl_title_field=ing.jsonl_title_field,
            max_text_chars=ing.max_text_chars,
        )
        file = _File(record, self.manifest.fingerprints(source), FileOutcome(source, "ingested"))
        self.pending.append(file)
        docs = iter_load(path, opts)
        try:
            while True:
                with _Clock(report, "load"):
                    doc = next(docs, None)
                if doc is None:
                    break
                with _Clock(report, "chunk"):
                    for chunk in self.chunker.chunk(doc):
                        self._add(file, chunk)
                if self.buffered >= ing.batch_size:
                    self.flush()
        except MedchatError as e:  # IngestError from the loader, or a chunking error
            log.warning("%s", e)
            self._abandon(file, str(e), opts.warnings)
            return
        except Exception as e:  # a loader bug must not end the run; name the file and the error
            log.exception("unexpected error reading %s", path)
            self._abandon(file, f"{path}: unexpected {type(e).__name__} while reading ({e})", opts.warnings)
            return
        for w in opts.warnings:
            log.warning("%s", w)
        file.done = True
        file.record = FileRecord(source, st.st_size, st.st_mtime_ns, digest, len(file.seen))
        file.outcome.chunks, file.outcome.warnings = len(file.seen), opts.warnings
        if self.buffered >= ing.batch_size:
            self.flush()

    def tick(self) -> None:
        if self.progress:
            self.progress(*self.position, self.report.chunks_embedded)

    def _add(self, file: _File, chunk: Chunk) -> None:
        from ingestion.manifest import fingerprint

        if chunk.id in file.seen:
            return
        file.seen.add(chunk.id)
        file.chunks.append(chunk)
        if file.old.get(chunk.id) != fingerprint(chunk):
            file.to_embed.append(chunk)
        self.buffered += 1

    def _abandon(self, file: _File, reason: str, warnings: list[str]) -> None:
        """A file failed midway: drop what was read of it and remove from Chroma what was written."""
        self.pending.remove(file)
        self.buffered -= len(file.chunks)
        written = self.manifest.discard_staged(file.record.path) - set(file.old)
        if written:
            with _Clock(self.report, "write"):
                self.index.delete(sorted(written))
        self.report.files.append(FileOutcome(file.record.path, "failed", reason=reason, warnings=warnings))

    def flush(self) -> None:
        """Embed and write the pending chunks, stage them, and commit the files that are complete."""
        if not self.pending:
            return
        self.mark_dirty()
        batch = self.settings.ingestion.batch_size
        todo = [c for f in self.pending for c in f.to_embed]
        for i in range(0, len(todo), batch):
            part = todo[i : i + batch]
            with _Clock(self.report, "embed"):
                vectors = self.embedder.embed_documents([c.embed_text for c in part])
            with _Clock(self.report, "write"):
                self.index.add(part, vectors)
            self.report.chunks_embedded += len(part)
            self.tick()
        with _Clock(self.report, "write"):
            for f in self.pending:
                if f.chunks:
                    self.manifest.stage(f.record.path, f.chunks)
                f.chunks, f.to_embed = [], []
            self.buffered = 0
            done = [f for f in self.pending if f.done]
            if done:
                stale: list[str] = []
                for added, lost in self.manifest.commit_staged([f.record for f in done]):
                    self.report.chunks_added += added
                    self.report.chunks_removed += len(lost)
                    stale.extend(lost)
                self.index.delete(stale)
        self.report.files.extend(f.outcome for f in done)
        self.pending = [f for f in self.pending if not f.done]


def reconcile(index: ChromaIndex, manifest: Manifest) -> tuple[int, int]:
    """Make Chroma hold exactly the chunks the manifest records.

    Chunks in Chroma that the manifest does not know (written by a run killed
    before it recorded their file) are deleted; files whose chunks are missing
    from Chroma are forgotten, so the next run ingests them again. Returns
    (chunks deleted, files forgotten).
    """
    manifest.discard_staged()  # chunks of files that were never committed count for nothing
    in_chroma = index.all_ids()
    in_manifest = manifest.chunk_ids()
    extra = in_chroma - in_manifest
    index.delete(sorted(extra))
    missing = in_manifest - in_chroma
    broken = manifest.paths_of(sorted(missing)) if missing else set()
    if broken:
        doomed = set().union(*(manifest.chunk_ids(p) for p in broken)) & in_chroma
        index.delete(sorted(doomed))
        manifest.forget(sorted(broken))
    if extra or broken:
        log.warning(
            "recovered from an interrupted run: %d stray chunks removed, %d files to ingest again",
            len(extra),
            len(broken),
        )
    return len(extra), len(broken)


def ingest(
    paths: Iterable[Path | str],
    *,
    settings: Settings,
    embedder: Embedder | None = None,
    index: ChromaIndex | None = None,
    rebuild: bool = False,
    prune: bool | None = None,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Index the files under `paths`; return what happened to each."""
    from ingestion.embedding import LazyEmbedder
    from ingestion.index import IndexSpec, drop_index, open_index
    from ingestion.loaders import LOADERS
    from ingestion.manifest import Manifest

    started = time.perf_counter()
    report = IngestReport()
    prune = settings.ingestion.prune if prune is None else prune
    with _Clock(report, "scan"):
        wanted = settings.ingestion.extensions
        suffixes = LOADERS if wanted is None else wanted  # by default, every suffix a loader reads
        files = list(iter_files([Path(p).expanduser() for p in paths], suffixes, report))
    report.files_seen = len(files) + len(report.files)

    if embedder is None:
        embedder = LazyEmbedder(
            settings.embedding.model, settings.embedding.device, settings.embedding.batch_size
        )
    spec = IndexSpec.of(embedder, settings.ingestion)
    if rebuild:
        if index is None:
            drop_index(settings)
        Manifest.drop(settings.manifest_path)
        import shutil

        shutil.rmtree(settings.bm25_dir, ignore_errors=True)
    opened = index is None
    if index is None:
        index = open_index(settings, spec, create=True)
    try:
        return _ingest_into(index, files, settings, spec, embedder, report, prune, progress, started)
    finally:
        if opened:
            index.close()


def _ingest_into(
    index: ChromaIndex,
    files: list[Path],
    settings: Settings,
    spec: Any,
    embedder: Embedder,
    report: IngestReport,
    prune: bool,
    progress: IngestProgress | None,
    started: float,
) -> IngestReport:
    from ingestion.lexical import LexicalIndex
    from ingestion.manifest import Manifest

    manifest = Manifest(settings.manifest_path, spec.as_metadata())
    try:
        lexical = LexicalIndex.open(settings, spec, manifest)
        with _Clock(report, "reconcile"):
            if manifest.dirty or manifest.chunk_count() != index.count():
                removed, _ = reconcile(index, manifest)
                report.recovered = True
                report.chunks_removed += removed
                manifest.set_dirty(False)
        _run_files(files, settings, embedder, index, manifest, report, prune, progress)
        with _Clock(report, "bm25"):
            lexical.sync()
        report.total_chunks = index.count()
    finally:
        manifest.close()
    report.seconds = time.perf_counter() - started
    return report


def _run_files(
    files: list[Path],
    settings: Settings,
    embedder: Embedder,
    index: ChromaIndex,
    manifest: Manifest,
    report: IngestReport,
    prune: bool,
    progress: IngestProgress | None,
) -> None:
    known = manifest.files()
    run = _Run(settings, embedder, index, manifest, report)
    run.progress = progress
    for i, path in enumerate(files):
        run.position = (str(path), i, len(files))
        run.tick()
        run.process(path, known.get(str(path)))
    run.flush()
    run.position = ("", len(files), len(files))
    run.tick()
    gone = sorted(p for p in known if not os.path.lexists(p) or not stat.S_ISREG(_mode(p)))
    report.gone = len(gone)
    if gone and prune:
        with _Clock(report, "write"):
            run.mark_dirty()
            doomed: dict[str, set[str]] = defaultdict(set)
            for p in gone:
                doomed[p] = manifest.chunk_ids(p)
            manifest.forget(gone)
            index.delete(sorted(set().union(*doomed.values())))
        for p in gone:
            report.chunks_removed += len(doomed[p])
            report.files.append(FileOutcome(p, "removed", chunks=len(doomed[p]), reason="the file is gone"))
        report.gone = 0
    if run.dirty:
        manifest.set_dirty(False)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def lexical_index(settings: Settings, embedder: Embedder | None = None) -> LexicalIndex:
    """The BM25 index for these settings (for hybrid retrieval), checked against the embedder."""
    from ingestion.embedding import LazyEmbedder
    from ingestion.index import IndexSpec
    from ingestion.lexical import LexicalIndex

    emb: Any = embedder or LazyEmbedder(settings.embedding.model, settings.embedding.device)
    return LexicalIndex.open(settings, IndexSpec.of(emb, settings.ingestion))
