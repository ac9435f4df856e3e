"""XML vocabularies: PubMed/MEDLINE (as NCBI efetch returns it) and MedQuAD.

Parsed with defusedxml: entity declarations are refused and nothing external
is ever fetched. The vocabulary is recognised from the root element.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chatbot.errors import IngestError
from ingestion.documents import Document
from ingestion.loaders.base import LoadOptions, assemble, clean_block, parse_xml, text_of

_YEAR = re.compile(r"(19|20)\d\d")


def load_xml(path: Path, opts: LoadOptions | None = None) -> list[Document]:
    root = parse_xml(path)
    tag = root.tag
    if tag in ("PubmedArticleSet", "PubmedArticle", "MedlineCitationSet", "MedlineCitation"):
        return pubmed_documents(root, path)
    if tag == "Document" and root.find("QAPairs") is not None:
        return medquad_documents(root, path)
    raise IngestError(
        f"{path}: XML with root <{tag}> is not a known vocabulary "
        "(PubMed/MEDLINE efetch XML or MedQuAD XML are read)"
    )


def _year(article: Any) -> int | None:
    for where in (
        ".//Article/Journal/JournalIssue/PubDate/Year",
        ".//Article/ArticleDate/Year",
        ".//Article/Journal/JournalIssue/PubDate/MedlineDate",
        ".//DateCompleted/Year",
    ):
        match = _YEAR.search(text_of(article.find(where)))
        if match:
            return int(match.group(0))
    return None


def pubmed_documents(root: Any, path: Path) -> list[Document]:
    """One document per article: title, labelled abstract sections, journal, year, MeSH terms."""
    citations = [root] if root.tag == "MedlineCitation" else list(root.iter("MedlineCitation"))
    docs = []
    for cit in citations:
        pmid = text_of(cit.find("PMID"))
        article = cit.find("Article")
        if article is None:
            continue
        title = text_of(article.find("ArticleTitle")) or text_of(article.find("VernacularTitle"))
        parts: list[tuple[str, str]] = []
        for node in article.findall("Abstract/AbstractText"):
            label = node.get("Label") or ""
            parts.append((label.title() if label.isupper() else label, text_of(node)))
        if not parts:
            parts = [("Abstract", text_of(node)) for node in cit.findall("OtherAbstract/AbstractText")]
        mesh = [text_of(d) for d in cit.findall("MeshHeadingList/MeshHeading/DescriptorName")]
        keywords = [text_of(k) for k in cit.findall("KeywordList/Keyword")]
        doc = assemble(
            parts or [("", title)],
            source=str(path),
            title=title or f"PubMed {pmid}",
            metadata={
                "doc_id": pmid,
                "pmid": pmid,
                "url": f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else "",
                "journal": text_of(article.find("Journal/Title")),
                "year": _year(cit),
                "mesh": "; ".join(m for m in mesh if m),
                "keywords": "; ".join(k for k in keywords if k),
            },
        )
        if doc.text.strip():
            docs.append(doc)
    if not docs:
        raise IngestError(f"{path}: the PubMed XML holds no article with a title or abstract")
    return docs


def medquad_documents(root: Any, path: Path) -> list[Document]:
    """One document per question/answer pair; the answer is the text, the rest metadata."""
    focus = text_of(root.find("Focus"))
    site = root.get("source", "")
    url = root.get("url", "")
    folder = path.parent.name
    cuis = [text_of(c) for c in root.iter("CUI")]
    docs = []
    for pair in root.iter("QAPair"):
        question = pair.find("Question")
        answer = pair.find("Answer")
        text = clean_block("".join(answer.itertext())) if answer is not None else ""
        if not text:
            continue
        qid = question.get("qid", "") if question is not None else ""
        qtype = question.get("qtype", "") if question is not None else ""
        docs.append(
            assemble(
                [(qtype, text)],
                source=str(path),
                title=focus or text_of(question),
                metadata={
                    "doc_id": qid or pair.get("pid", ""),
                    "uid": f"{folder}:{qid}" if qid else "",
                    "question": text_of(question),
                    "qtype": qtype,
                    "focus": focus,
                    "site": site,
                    "url": url,
                    "cuis": "; ".join(cuis),
                },
            )
        )
    if not docs:
        raise IngestError(f"{path}: the MedQuAD file has no answered question")
    return docs
