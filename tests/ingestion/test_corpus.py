"""The bundled sample corpus: enough notes, each with the metadata a citation shows."""

from datetime import date

from ingestion.loaders import load
from tests.conftest import CORPUS

REQUIRED_TOPICS = (
    "hypertension",
    "type 2 diabetes",
    "asthma",
    "copd",
    "heart failure",
    "atrial fibrillation",
    "depression",
    "migraine",
    "urinary tract infection",
    "pneumonia",
    "anaemia",
    "hypothyroidism",
    "osteoarthritis",
    "statin",
    "metformin",
    "warfarin",
    "vaccin",
)


def _notes():
    return sorted(CORPUS.glob("*.md"))


def test_at_least_forty_notes():
    assert len(_notes()) >= 40


def test_every_note_has_title_review_date_and_guideline():
    for path in _notes():
        doc = load(path)[0]
        assert doc.title and doc.title != path.stem, path
        reviewed = date.fromisoformat(str(doc.metadata["last_reviewed"]))
        assert date(2025, 1, 1) <= reviewed <= date(2026, 12, 31), path
        assert len(str(doc.metadata["guideline"])) > 5, path
        assert 120 <= len(doc.text.split()) <= 900, path


def test_required_topics_are_covered():
    titles = " | ".join(load(p)[0].title.lower() for p in _notes())
    missing = [t for t in REQUIRED_TOPICS if t not in titles]
    assert not missing, missing
