import pytest

from chatbot.errors import IngestError
from ingestion.loaders import load, markdown_sections


def test_markdown_front_matter_becomes_metadata(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("---\ntitle: Gout\nlast_reviewed: 2026-01-02\nguideline: ACR 2020\n---\n# Gout\n\nText.\n")
    doc = load(p)[0]
    assert doc.title == "Gout"
    assert doc.metadata == {"last_reviewed": "2026-01-02", "guideline": "ACR 2020"}
    assert [s.title for s in doc.sections] == ["Gout"]


def test_title_falls_back_to_heading_then_file_name(tmp_path):
    (tmp_path / "x.md").write_text("intro\n# Heading one\nbody\n## Sub\nmore\n")
    doc = load(tmp_path / "x.md")[0]
    assert doc.title == "Heading one"
    assert [s.title for s in doc.sections] == ["", "Heading one", "Sub"]
    (tmp_path / "plain-note.txt").write_text("just text")
    assert load(tmp_path / "plain-note.txt")[0].title == "plain note"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Fièvre élevée".encode(), "Fièvre élevée"),
        ("Fièvre élevée".encode("utf-16"), "Fièvre élevée"),
        ("Fièvre élevée".encode("latin-1"), "Fièvre élevée"),
        (b"\xef\xbb\xbfBOM text", "BOM text"),
    ],
)
def test_text_encodings(tmp_path, data, expected):
    p = tmp_path / "t.txt"
    p.write_bytes(data)
    assert load(p)[0].text == expected


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.txt", b"  \n\n ", "empty"),
        ("nul.txt", b"abc\x00def", "NUL"),
        ("bad.md", b"---\ntitle: [unclosed\n---\nbody", "front matter"),
        ("x.pdf", b"%PDF-1.4", "PDF"),
        ("x.xyz", b"data", "no loader"),
    ],
)
def test_bad_files_name_the_file_and_the_reason(tmp_path, name, data, reason):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(IngestError, match=reason) as info:
        load(p)
    assert str(p) in str(info.value)


def test_sections_cover_the_body():
    text = "# T\nA\n## B\nC\n"
    secs = markdown_sections(text)
    assert secs[0].start == 0 and secs[-1].end == len(text)
