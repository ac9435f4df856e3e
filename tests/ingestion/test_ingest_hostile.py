"""Hostile input: every bad file gets a clear per-file reason and the run goes on."""

from __future__ import annotations

import os
from pathlib import Path

from ingestion.pipeline import ingest
from tests.ingestion.test_ingest_incremental import HashEmbedder
from tests.pdfgen import make_pdf

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><PubmedArticleSet>&c;</PubmedArticleSet>'
)


def build(tree: Path, outside: Path) -> None:
    tree.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nOUTSIDE-THE-TREE text.\n")
    (tree / "good.md").write_text("# Iron\n\nIron tablets treat iron-deficiency anaemia.\n")
    (tree / "empty.txt").write_bytes(b"")
    (tree / "random.pdf").write_bytes(os.urandom(4096))
    (tree / "truncated.pdf").write_bytes(make_pdf([["Cut short."]])[:180])
    (tree / "nul.txt").write_bytes(b"text\x00with NUL")
    (tree / "single-line.txt").write_bytes(b"x" * (30 * 1024 * 1024))
    (tree / "malformed.xml").write_text("<PubmedArticleSet><PubmedArticle>")
    (tree / "bomb.xml").write_text(BOMB)
    (tree / "xxe.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{outside}/secret.md">]>'
        "<PubmedArticleSet>&x;</PubmedArticleSet>"
    )
    depth = 100_000
    (tree / "deep.html").write_text("<div>" * depth + "Deep but fine." + "</div>" * depth)
    (tree / "link-out.md").symlink_to(outside / "secret.md")
    (tree / "dir-out").symlink_to(outside, target_is_directory=True)
    (tree / "loop-a.md").symlink_to(tree / "loop-b.md")
    (tree / "loop-b.md").symlink_to(tree / "loop-a.md")
    (tree / "dangling.md").symlink_to(tree / "nowhere.md")
    (tree / "sub").mkdir()
    (tree / "sub" / "up").symlink_to(tree, target_is_directory=True)  # a folder loop
    (tree / "link-in.md").symlink_to(tree / "good.md")  # inside the tree: the same file once
    (tree / "odd name -- (1) ünï 💊.md").write_text("# Odd\n\nA note with an odd file name about zinc.\n")
    (tree / "-leading-dash.txt").write_text("Leading dash note about vitamin D.")
    (tree / "new\nline.txt").write_text("A file name with a newline, about folate.")
    (Path(os.fsdecode(bytes(tree) + b"/latin1-\xe9.txt"))).write_bytes(b"Bytes name about copper.")


def test_hostile_folder(tmp_path, settings):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    build(tree, outside)
    report = ingest([tree], settings=settings, embedder=HashEmbedder())
    by_name = {Path(f.path).name: f for f in report.files}

    def status(name: str) -> tuple[str, str]:
        f = by_name[name]
        return f.status, f.reason

    for name in ("good.md", "deep.html", "odd name -- (1) ünï 💊.md", "-leading-dash.txt", "new\nline.txt"):
        assert status(name)[0] == "ingested", (name, status(name))
    expected_failures = {
        "empty.txt": "empty",
        "random.pdf": "not a readable PDF",
        "truncated.pdf": "not a readable PDF",
        "nul.txt": "NUL",
        "single-line.txt": "max_text_chars",
        "malformed.xml": "malformed XML",
        "bomb.xml": "unsafe XML",
        "xxe.xml": "unsafe XML",
    }
    for name, reason in expected_failures.items():
        got = status(name)
        assert got[0] == "failed" and reason in got[1], (name, got)
        assert name in got[1]  # the message names the file
    assert status("link-out.md") == ("skipped", f"a symbolic link out of {tree}; not followed")
    assert status("dir-out")[0] == "skipped"
    for name in ("loop-a.md", "loop-b.md", "dangling.md"):
        assert status(name)[0] == "skipped" and "nowhere or in a loop" in status(name)[1]
    assert status("latin1-\ufffd.txt") == ("skipped", "the file name is not valid UTF-8; rename the file")
    assert "link-in.md" not in by_name  # the same file as good.md, read once
    assert report.count("ingested") == 5
    assert report.total_chunks == 5
    assert not any("OUTSIDE-THE-TREE" in f.reason for f in report.files)
