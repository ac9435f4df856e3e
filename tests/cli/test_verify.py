"""`medchat verify`: any system's answers audited line by line, bad lines named and skipped."""

import json
import subprocess
import sys

from click.testing import CliRunner

from chatbot.cli import main
from chatbot.cli.jsonlines import MAX_LINE_BYTES

SOURCE = "Take it on an empty stomach, 30-60 minutes before breakfast. Do not stop suddenly."


def test_verify_writes_verdicts_per_sentence_and_names_each_bad_line(tmp_path):
    good = {
        "id": "a",
        "answer": "Take it with breakfast. Take it 30-60 minutes before breakfast.",
        "passages": [SOURCE],
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"answer": "x"}),
        json.dumps({"answer": "x", "passages": []}),
        "",
        json.dumps({"id": "b", "answer": "Gout comes from the moon.", "passages": [SOURCE]}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["verify", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]  # the rest of the file went on
    first = rows[0]["sentences"]
    assert [(s["verdict"], s["passage"]) for s in first] == [("contradicted", 1), ("supported", 1)]
    assert first[0]["span"].startswith("Take it on an empty stomach") and first[0]["reason"].startswith(
        "timing"
    )
    assert rows[1]["sentences"][0]["verdict"] == "not_found" and rows[1]["sentences"][0]["passage"] is None
    err = result.stderr
    assert "line 2: skipped: not valid JSON" in err
    assert 'line 3: skipped: "passages" is missing or empty' in err
    assert 'line 4: skipped: "passages" is missing or empty' in err
    assert (
        "verified 2 answer(s): 1 supported, 1 not found, 1 contradicted sentence(s); 3 line(s) skipped" in err
    )


def test_a_ten_megabyte_line_is_skipped_without_reading_it_whole(tmp_path):
    src = tmp_path / "big.jsonl"
    with src.open("w") as f:
        f.write(json.dumps({"answer": "a" * (10 * 1024 * 1024), "passages": ["b"]}) + "\n")
        f.write(json.dumps({"answer": "Do not stop suddenly.", "passages": [SOURCE]}) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "chatbot.cli", "verify", str(src)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"line 1: skipped: longer than {MAX_LINE_BYTES // 1_000_000} MB" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["sentences"][0]["verdict"] == "supported"


def test_a_file_of_only_bad_lines_fails(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text("[1, 2]\n")
    result = CliRunner().invoke(main, ["verify", str(src)])
    assert result.exit_code == 1
    assert "line 1: skipped: each line must be a JSON object" in result.stderr
