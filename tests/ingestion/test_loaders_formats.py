"""Each loader on files generated here (and a few real files from the shared data sets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.errors import IngestError
from ingestion.loaders import LoadOptions, load
from tests.conftest import SHARED_DATASETS
from tests.pdfgen import make_pdf


def _texts(doc) -> dict[str, str]:
    return {s.title: doc.text[s.start : s.end] for s in doc.sections}


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_pages_become_sections_with_title(tmp_path):
    p = tmp_path / "care.pdf"
    p.write_bytes(
        make_pdf([["Metformin is first-line.", "It lowers glucose."], ["Insulin (basal)."]], "Care")
    )
    [doc] = load(p)
    assert doc.title == "Care"
    assert [s.title for s in doc.sections] == ["Page 1", "Page 2"]
    assert "Metformin is first-line." in _texts(doc)["Page 1"]
    assert "Insulin (basal)." in _texts(doc)["Page 2"]
    assert doc.metadata["pages"] == 2


def test_a_bad_pdf_page_does_not_lose_the_document(tmp_path, monkeypatch):
    from pypdf import PageObject

    p = tmp_path / "three.pdf"
    p.write_bytes(make_pdf([["Page one on asthma."], ["BROKEN"], ["Page three on inhalers."]]))
    real = PageObject.extract_text

    def flaky(self, *args, **kwargs):
        text = real(self, *args, **kwargs)
        if "BROKEN" in text:
            raise ValueError("corrupt content stream")
        return text

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    opts = LoadOptions()
    [doc] = load(p, opts)
    assert "asthma" in doc.text and "inhalers" in doc.text and "BROKEN" not in doc.text
    assert opts.warnings and "page(s) 2 of 3" in opts.warnings[0]


def test_a_damaged_page_stream_is_reported_and_skipped(tmp_path):
    data = make_pdf([["Good page about gout."], ["SECOND"], ["Third page about urate."]])
    damaged = data.replace(b"<< /Length 46 >>", b"<< /Length 46 /Filter /FlateDecode >>", 1)
    assert damaged != data
    p = tmp_path / "damaged.pdf"
    p.write_bytes(damaged)
    opts = LoadOptions()
    [doc] = load(p, opts)
    assert "gout" in doc.text and "urate" in doc.text
    assert any("page(s) 2" in w for w in opts.warnings)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "PDF"),
        (b"\x8f\x12random bytes\x00\xff" * 50, "not a readable PDF"),
        (make_pdf([["Truncated text here."]])[:200], "not a readable PDF"),
        (make_pdf([[]]), "no text layer"),
    ],
    ids=["empty", "random", "truncated", "no-text"],
)
def test_hostile_pdfs_fail_with_a_reason(tmp_path, data, reason):
    p = tmp_path / "bad.pdf"
    p.write_bytes(data)
    with pytest.raises(IngestError, match=reason) as info:
        load(p)
    assert str(p) in str(info.value)


# --- HTML --------------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Gout | Clinic</title>
<meta name="citation_pmid" content="123456"><meta name="citation_date" content="2021/03/04">
<style>body { color: red }</style><script>var secret = "SCRIPTTEXT";</script></head>
<body><nav aria-hidden="true">ARIAHIDDEN menu</nav>
<div hidden>HIDDENATTR</div><p style="color:blue; display: none">DISPLAYNONE</p>
<span style="visibility:hidden">INVISIBLE</span>
<h1>Gout</h1><p>Gout is an inflammatory arthritis.<br>It is caused by urate crystals.</p>
<h2>Treatment</h2><ul><li>Colchicine &amp; NSAIDs</li><li>Allopurinol</li></ul>
<noscript>NOSCRIPT</noscript><template>TEMPLATE</template><p>Unclosed <b>bold
</body></html>"""


def test_html_keeps_visible_text_in_heading_sections(tmp_path):
    p = tmp_path / "gout.html"
    p.write_text(PAGE)
    [doc] = load(p)
    for hidden in (
        "SCRIPTTEXT",
        "ARIAHIDDEN",
        "HIDDENATTR",
        "DISPLAYNONE",
        "INVISIBLE",
        "NOSCRIPT",
        "TEMPLATE",
    ):
        assert hidden not in doc.text
    assert doc.title == "Gout | Clinic"
    sections = _texts(doc)
    assert "urate crystals" in sections["Gout"]
    assert "It is caused" in sections["Gout"].split("\n")[-1]  # <br> broke the line
    assert "Colchicine & NSAIDs" in sections["Treatment"]
    assert "Unclosed bold" in sections["Treatment"]
    assert doc.metadata == {"pmid": "123456", "year": 2021}


def test_deeply_nested_html_is_read_without_recursion(tmp_path):
    p = tmp_path / "deep.html"
    depth = 200_000
    p.write_text("<html><body>" + "<div>" * depth + "deep text" + "</div>" * depth + "</body></html>")
    [doc] = load(p)
    assert doc.text.strip() == "deep text"


# --- JSONL and JSON ----------------------------------------------------------------------------


def test_jsonl_fields_are_configurable_and_bad_lines_reported(tmp_path):
    p = tmp_path / "notes.jsonl"
    lines = [
        json.dumps({"uid": "a1", "body": "Aspirin thins the blood.", "title": "Aspirin", "year": 2020}),
        "{not json",
        json.dumps({"uid": "a2", "other": "no body"}),
        json.dumps(["a list"]),
        json.dumps({"uid": "a3", "body": "Statins lower LDL."}),
        json.dumps({"uid": "a1", "body": "A repeated id."}),
    ]
    p.write_text("\n".join(lines) + "\n")
    opts = LoadOptions(jsonl_text_field="body", jsonl_id_field="uid")
    docs = load(p, opts)
    assert [d.metadata["doc_id"] for d in docs] == ["a1", "a3"]
    assert docs[0].title == "Aspirin" and docs[0].metadata["year"] == 2020
    assert docs[0].key == f"{p}#a1"
    reasons = "\n".join(opts.warnings)
    for line in (2, 3, 4, 6):
        assert f"{p}:{line}:" in reasons
    assert "bad JSON" in reasons and "no text in field 'body'" in reasons and "repeats id" in reasons


def test_jsonl_with_no_usable_line_fails(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text("{oops\n[1, 2]\n")
    with pytest.raises(IngestError, match="no usable line"):
        load(p)


def test_jsonl_is_read_a_record_at_a_time_in_any_encoding(tmp_path):
    from ingestion.loaders import iter_load

    p = tmp_path / "big.jsonl"
    p.write_text("".join(json.dumps({"id": f"r{i}", "text": f"Record {i}."}) + "\n" for i in range(5)))
    docs = iter_load(p)
    assert next(docs).metadata["doc_id"] == "r0"  # a generator: nothing past the first record read yet
    assert [d.metadata["doc_id"] for d in docs] == ["r1", "r2", "r3", "r4"]

    lines = [json.dumps({"id": "u", "text": "Caf\u00e9 au lait spots."}, ensure_ascii=False)]
    (tmp_path / "u16.jsonl").write_bytes("\n".join(lines).encode("utf-16"))  # with its BOM
    (tmp_path / "latin.jsonl").write_bytes("\n".join(lines).encode("latin-1"))
    (tmp_path / "sig.jsonl").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    for name in ("u16", "latin", "sig"):
        [doc] = load(tmp_path / f"{name}.jsonl")
        assert "Café au lait" in doc.text, name


def test_jsonl_limits_each_record_not_the_file_and_caps_its_warnings(tmp_path):
    from ingestion.loaders.base import MAX_WARNINGS

    p = tmp_path / "many.jsonl"
    good = [json.dumps({"id": f"g{i}", "text": "x" * 900}) for i in range(30)]  # 27,000 chars in all
    p.write_text("\n".join(good + [json.dumps({"id": "huge", "text": "y" * 5000})] + ["{bad"] * 200))
    opts = LoadOptions(max_text_chars=1000)
    docs = load(p, opts)
    assert len(docs) == 30  # the file holds far more than max_text_chars; each record does not
    assert "31: 5,0" in opts.warnings[0] and "max_text_chars" in opts.warnings[0]
    assert len(opts.warnings) == MAX_WARNINGS + 1
    assert opts.warnings[-1] == f"... and {201 - MAX_WARNINGS} more warnings for this file"


def test_jsonl_line_with_nul_bytes_is_skipped(tmp_path):
    p = tmp_path / "nul.jsonl"
    p.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "te\x00xt": "x"}\n')
    opts = LoadOptions()
    assert [d.metadata["doc_id"] for d in load(p, opts)] == ["a"]
    assert "2: contains NUL bytes" in opts.warnings[0]


def test_pubmedqa_json(tmp_path):
    p = tmp_path / "pqa.json"
    item = {
        "QUESTION": "Does X help?",
        "CONTEXTS": ["Background text.", "Results text."],
        "LABELS": ["BACKGROUND", "RESULTS"],
        "MESHES": ["Humans", "Asthma"],
        "YEAR": "2004",
        "LONG_ANSWER": "CONCLUSIONTEXT",
    }
    p.write_text(json.dumps({"111": item}))
    [doc] = load(p)
    assert doc.metadata["pmid"] == "111" and doc.metadata["year"] == 2004
    assert doc.metadata["mesh"] == "Humans; Asthma"
    assert [s.title for s in doc.sections] == ["Background", "Results"]
    assert "CONCLUSIONTEXT" not in doc.text


def test_squad_json(tmp_path):
    p = tmp_path / "squad.json"
    data = {"data": [{"paragraphs": [{"document_id": 7, "context": "A long article.", "qas": []}]}]}
    p.write_text(json.dumps(data))
    [doc] = load(p)
    assert doc.metadata["doc_id"] == "7" and doc.text == "A long article."


def test_json_of_unknown_shape_and_malformed_json(tmp_path):
    (tmp_path / "odd.json").write_text('{"a": 1}')
    with pytest.raises(IngestError, match="unknown shape"):
        load(tmp_path / "odd.json")
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(IngestError, match="malformed JSON"):
        load(tmp_path / "broken.json")


# --- XML ---------------------------------------------------------------------------------------

PUBMED = """<?xml version="1.0" ?>
<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN"
 "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">
<PubmedArticleSet><PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">
<PMID Version="1">31234567</PMID>
<Article PubModel="Print"><Journal><Title>The Lancet</Title>
<JournalIssue><PubDate><Year>2019</Year><Month>Jun</Month></PubDate></JournalIssue></Journal>
<ArticleTitle>Colchicine after myocardial infarction.</ArticleTitle>
<Abstract><AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Inflammation matters.</AbstractText>
<AbstractText Label="METHODS">We randomised <i>4745</i> patients.</AbstractText>
<AbstractText Label="RESULTS">Fewer events.</AbstractText></Abstract></Article>
<MeshHeadingList><MeshHeading><DescriptorName UI="D003078">Colchicine</DescriptorName></MeshHeading>
<MeshHeading><DescriptorName UI="D009203">Myocardial Infarction</DescriptorName></MeshHeading>
</MeshHeadingList></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID>2</PMID><Article><Journal><Title>J</Title>
<JournalIssue><PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate></JournalIssue></Journal>
<ArticleTitle>Second.</ArticleTitle><Abstract><AbstractText>Plain abstract.</AbstractText></Abstract>
</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"""


def test_pubmed_efetch_xml(tmp_path):
    p = tmp_path / "efetch.xml"
    p.write_text(PUBMED)
    first, second = load(p)
    assert first.title == "Colchicine after myocardial infarction."
    assert first.metadata["pmid"] == "31234567" and first.metadata["year"] == 2019
    assert first.metadata["journal"] == "The Lancet"
    assert first.metadata["mesh"] == "Colchicine; Myocardial Infarction"
    assert first.metadata["url"] == "https://pubmed.ncbi.nlm.nih.gov/31234567/"
    sections = _texts(first)
    assert list(sections) == ["Background", "Methods", "Results"]
    assert "We randomised 4745 patients." in sections["Methods"]
    assert second.metadata["year"] == 1998 and second.text == "Plain abstract."


MEDQUAD = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="0000009" source="GHR" url="https://example.org/condition/x">
<Focus>Example syndrome</Focus>
<QAPairs><QAPair pid="1"><Question qid="0000009-1" qtype="information">What is X ?</Question>
<Answer>X is a rare condition.
    - It affects joints.</Answer></QAPair>
<QAPair pid="2"><Question qid="0000009-2" qtype="treatment">How to treat X ?</Question><Answer></Answer>
</QAPair><QAPair pid="3"><Question qid="0000009-3" qtype="symptoms">What are the symptoms of X ?</Question>
<Answer>Pain.</Answer></QAPair></QAPairs></Document>"""


def test_medquad_xml_one_document_per_answered_pair(tmp_path):
    folder = tmp_path / "3_GHR_QA"
    folder.mkdir()
    p = folder / "0000009.xml"
    p.write_text(MEDQUAD)
    docs = load(p)
    assert [d.metadata["doc_id"] for d in docs] == ["0000009-1", "0000009-3"]
    first = docs[0]
    assert first.title == "Example syndrome"
    assert first.metadata["uid"] == "3_GHR_QA:0000009-1"
    assert (
        first.metadata["qtype"] == "information"
        and first.metadata["url"] == "https://example.org/condition/x"
    )
    assert first.metadata["question"] == "What is X ?" and first.metadata["site"] == "GHR"
    assert first.sections[0].title == "information"
    assert "X is a rare condition.\n- It affects joints." in first.text


def test_entity_bombs_and_external_entities_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
        "<ArticleTitle>&lol3;</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
    )
    external = (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        "<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
        "<ArticleTitle>&xxe;</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
    )
    remote_dtd = '<?xml version="1.0"?><!DOCTYPE d SYSTEM "http://127.0.0.1:9/evil.dtd"><d>&ext;</d>'
    for name, text in (("bomb.xml", bomb), ("xxe.xml", external), ("dtd.xml", remote_dtd)):
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(IngestError) as info:
            load(p)
        message = str(info.value)
        assert str(p) in message and "TOPSECRET" not in message
        assert "unsafe XML" in message or "malformed XML" in message


def test_malformed_and_unknown_xml(tmp_path):
    (tmp_path / "broken.xml").write_text("<PubmedArticleSet><PubmedArticle>")
    with pytest.raises(IngestError, match="malformed XML"):
        load(tmp_path / "broken.xml")
    (tmp_path / "other.xml").write_text("<catalog><item/></catalog>")
    with pytest.raises(IngestError, match="not a known vocabulary"):
        load(tmp_path / "other.xml")


def test_oversized_text_is_refused(tmp_path):
    p = tmp_path / "huge.txt"
    p.write_text("word " * 3000)
    with pytest.raises(IngestError, match="max_text_chars"):
        load(p, LoadOptions(max_text_chars=10_000))


# --- real files from the shared data sets --------------------------------------------------------


def _shared(relative: str) -> Path:
    path = SHARED_DATASETS / relative
    if not path.exists():
        pytest.skip(f"shared data set not found at {path}")
    return path


def test_real_medquad_file():
    folder = _shared("medquad/1_CancerGov_QA")
    docs = load(sorted(folder.glob("*.xml"))[0])
    assert len(docs) > 1
    assert all(d.metadata["uid"].startswith("1_CancerGov_QA:") for d in docs)
    assert all(d.metadata["url"].startswith("https://") and d.title for d in docs)


def test_real_pubmedqa_and_covidqa():
    pqa = load(_shared("pubmedqa/pqal_dev.json"))
    assert len(pqa) == 500 and all(d.metadata["pmid"] for d in pqa)
    assert sum("year" in d.metadata for d in pqa) > 400  # some entries have no YEAR
    covid = load(_shared("covidqa/covidqa.json"))
    assert len(covid) >= 90 and all(len(d.text) > 1000 for d in covid)
