"""Load the hand-labelled grounding set (bench/grounding/labelled.jsonl, issue #26).

Each line is one model answer with its passages and a label per sentence (see
bench/grounding/GUIDE.md). Notes passages are stored as text. MedQuAD passages are
stored only as references, {"medquad_uid", "start", "end"} into that record's
`answer` in shared/datasets/medquad/medquad_answered.jsonl, and so are the spans
of their labels (MedQuAD text is not committed here); `load_labelled` resolves
both to text, and skips MedQuAD answers, saying why, when the shared datasets
are not there.

    from bench.grounding_data import load_labelled
    answers = load_labelled()  # list of dicts, every passage a str
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO / "bench" / "grounding" / "labelled.jsonl"
MEDQUAD_FILE = Path("datasets") / "medquad" / "medquad_answered.jsonl"


def _default_shared() -> Path:
    """`shared/` in the checkout if there is one, else the `shared/` beside it."""
    for candidate in (REPO / "shared", REPO.parent / "shared"):
        if (candidate / "datasets").is_dir():
            return candidate
    return REPO.parent / "shared"


def _medquad_answers(file: Path, uids: set[str]) -> dict[str, str]:
    """The `answer` field of each wanted MedQuAD record, by uid."""
    found: dict[str, str] = {}
    with file.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("uid") in uids:
                found[record["uid"]] = record["answer"]
    return found


def _resolve(texts: dict[str, str], ref: dict[str, Any], row_id: str, file: Path) -> str:
    """The text a {"medquad_uid", "start", "end"} reference points at."""
    answer = texts.get(ref["medquad_uid"])
    if answer is None:
        raise ValueError(f"{row_id}: MedQuAD record {ref['medquad_uid']} not in {file}")
    return answer[ref["start"] : ref["end"]]


def load_labelled(path: Path | str | None = None, shared: Path | str | None = None) -> list[dict[str, Any]]:
    """Every labelled answer, its `passages` and spans as text (`passage` in a label is 1-based).

    MedQuAD answers are skipped, with a printed reason, when the MedQuAD file is not
    under `shared` (default: `shared/` in the checkout or beside it).
    """
    lines = Path(path or DEFAULT_PATH).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    medquad = [r for r in rows if r["corpus"] == "medquad"]
    file = Path(shared or _default_shared()) / MEDQUAD_FILE
    texts: dict[str, str] = {}
    if medquad and file.is_file():
        uids = {p["medquad_uid"] for r in medquad for p in r["passages"]}  # spans point into these too
        texts = _medquad_answers(file, uids)
    elif medquad:
        print(f"grounding set: {len(medquad)} MedQuAD answers skipped: {file} not found")
    out: list[dict[str, Any]] = []
    for row in rows:
        if row["corpus"] != "medquad":
            out.append(row)
            continue
        if not texts:
            continue
        passages = [_resolve(texts, ref, row["id"], file) for ref in row["passages"]]
        sentences = [
            {**s, "span": _resolve(texts, s["span"], row["id"], file) if s["span"] else None}
            for s in row["sentences"]
        ]
        out.append({**row, "passages": passages, "sentences": sentences, "passage_refs": row["passages"]})
    return out


FREE_PATH = REPO / "bench" / "grounding" / "labelled_free.jsonl"
FREE_INPUT = REPO / "bench" / "grounding" / "to_label_free.jsonl"


def load_free(path: Path | str | None = None) -> list[dict[str, Any]]:
    """The second labelled set (split "free"): every sentence of the 40 raw `free` answers of
    bench/grounding/answers.jsonl, labelled later and blind to the checker (LABELLING_FREE.md), with
    the passages of to_label_free.jsonl as text. Empty when the labels are not there yet."""
    file = Path(path or FREE_PATH)
    if not file.is_file():
        return []
    inputs = {}
    for line in FREE_INPUT.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            inputs[row["id"]] = row
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        source = inputs[row["id"]]
        passages = [p["text"] for p in sorted(source["passages"], key=lambda p: p["n"])]
        out.append({**row, "split": "free", "corpus": "notes", "passages": passages})
    return out


if __name__ == "__main__":
    from collections import Counter

    answers = load_labelled()
    labels = Counter(s["label"] for a in answers for s in a["sentences"])
    print(f"{len(answers)} answers, {sum(labels.values())} sentences: {dict(labels)}")
