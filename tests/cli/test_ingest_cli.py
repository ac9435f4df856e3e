"""`medchat ingest` through click's runner: summary, reasons, --json, --prune."""

from __future__ import annotations

import json

from click.testing import CliRunner

from chatbot.cli import main


def test_ingest_summary_json_and_prune(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# Zinc\n\nZinc lozenges shorten colds a little.\n")
    (folder / "b.html").write_text("<h1>Folate</h1><p>Folate before conception prevents spina bifida.</p>")
    (folder / "bad.xml").write_text("<unclosed>")
    runner = CliRunner()

    result = runner.invoke(main, ["ingest", str(folder)])
    assert result.exit_code == 0, result.output
    assert "3 files seen: 2 ingested, 0 unchanged, 0 skipped, 1 failed" in result.stdout
    assert "time per stage:" in result.stdout and "embed" in result.stdout
    assert "failed:" in result.stderr and "bad.xml" in result.stderr and "malformed XML" in result.stderr

    (folder / "a.md").unlink()
    result = runner.invoke(main, ["ingest", "--json", str(folder)])
    summary = json.loads(result.stdout)
    assert summary["files_unchanged"] == 1 and summary["gone"] == 1
    assert summary["chunks_added"] == summary["chunks_removed"] == 0 and summary["total_chunks"] == 2
    assert {f["status"] for f in summary["files"]} == {"unchanged", "failed"}
    assert set(summary["stages"]) >= {"load", "chunk", "embed", "write", "bm25"}

    result = runner.invoke(main, ["ingest", "--prune", "--json", str(folder)])
    summary = json.loads(result.stdout)
    removed = [f for f in summary["files"] if f["status"] == "removed"]
    assert len(removed) == 1 and removed[0]["path"].endswith("a.md")
    assert summary["chunks_removed"] == 1 and summary["total_chunks"] == 1

    result = runner.invoke(main, ["ingest"])
    assert result.exit_code != 0 and "give at least one file" in result.output
