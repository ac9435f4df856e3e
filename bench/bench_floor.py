"""Calibrating the relevance floor (`retrieval.min_score`) on real data: coverage versus accuracy.

    python bench/bench_floor.py [--answers 1200] [--questions 300] [-k 4]

A sample of MedQuAD answers (../shared/datasets) is ingested with medchat's own
pipeline. Three kinds of question are then retrieved for:
- answerable: MedQuAD questions whose gold answer is in the sample;
- out of corpus: MedQuAD questions on topics (focus) that are not in the sample;
- off topic: non-medical questions written here.
For each floor, a question is answered when its best dense score reaches the floor.
Coverage is the share of answerable questions answered; accuracy is the share of
answered answerable questions whose gold answer is among the k passages given to
the model (the evidence an answer can be grounded in); abstention is the share of
out-of-corpus and off-topic questions turned away.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad" / "medquad_answered.jsonl"

OFF_TOPIC = [
    "Who won the football world cup in 1966?",
    "What is the capital of Australia?",
    "How do I change a flat tyre on a bicycle?",
    "What is a good recipe for banana bread?",
    "How many moons does Jupiter have?",
    "What year did the Berlin wall fall?",
    "How do I reset my wifi router?",
    "Explain how a stock option works.",
    "What is the best way to learn the guitar?",
    "How long does it take to fly from London to Tokyo?",
    "Who wrote Pride and Prejudice?",
    "How do I make my sourdough starter more active?",
    "What is the difference between a violin and a viola?",
    "How do solar panels produce electricity?",
    "What should I pack for a week of hiking?",
    "How do I write a cover letter for a job?",
    "What is the plot of Hamlet?",
    "How can I improve my chess openings?",
    "What is the tallest mountain in Africa?",
    "How do I repot a cactus?",
    "Which programming language should I learn first?",
    "How is paper recycled?",
    "What time zone is New York in?",
    "How do I train my dog to sit?",
    "What causes the northern lights?",
    "How do I get red wine out of a carpet?",
    "Who painted the Mona Lisa?",
    "How do hybrid cars save fuel?",
    "What is the rule for offside in football?",
    "How do I bake bread without yeast?",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=1200)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not MEDQUAD.is_file():
        sys.exit(f"skipped: {MEDQUAD} is absent")

    rows = [json.loads(line) for line in MEDQUAD.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(args.seed)
    by_focus: dict[str, list[dict]] = {}
    for r in rows:
        by_focus.setdefault(r["focus"], []).append(r)
    foci = sorted(by_focus)
    rng.shuffle(foci)
    inside: set[str] = set()
    sample: list[dict] = []
    for focus in foci:  # whole topics go in, so "out of corpus" questions are truly uncovered
        group = by_focus[focus]
        if len(sample) + len(group) > args.answers:
            continue
        sample.extend(group)
        inside.add(focus)
    answerable = rng.sample(sample, min(args.questions, len(sample)))
    outside = rng.sample([r for r in rows if r["focus"] not in inside], args.questions)

    home = Path(tempfile.mkdtemp(prefix="medchat-bench-floor-"))
    os.environ.update(
        MEDCHAT_HOME=str(home),
        MEDCHAT_INGESTION__JSONL_TEXT_FIELD="answer",
        MEDCHAT_INGESTION__JSONL_ID_FIELD="uid",
        MEDCHAT_INGESTION__JSONL_TITLE_FIELD="focus",
    )
    corpus = home / "medquad-sample.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in sample), encoding="utf-8")

    from chatbot.retrieval import open_retriever
    from chatbot.settings import Settings
    from ingestion.pipeline import ingest

    settings = Settings()
    report = ingest([corpus], settings=settings)
    print(f"ingested {len(sample)} answers on {len(inside)} topics: {report.total_chunks} chunks")
    retriever = open_retriever(settings)

    def best_and_hit(question: str, gold: str | None) -> tuple[float, bool]:
        passages = retriever.retrieve(question, k=args.k)
        best = max((p.score for p in passages if p.dense_scored), default=0.0)
        return best, gold is not None and any(p.metadata.get("doc_id") == gold for p in passages)

    ans = [best_and_hit(r["question"], r["uid"]) for r in answerable]
    out = [best_and_hit(r["question"], None)[0] for r in outside]
    off = [best_and_hit(q, None)[0] for q in OFF_TOPIC]

    print(f"{len(ans)} answerable, {len(out)} out-of-corpus, {len(off)} off-topic questions; k={args.k}")
    print(f"{'floor':>6} {'coverage':>9} {'accuracy':>9} {'abstain(out)':>13} {'abstain(off)':>13}")
    for floor in [x / 100 for x in range(0, 75, 5)]:
        answered = [hit for best, hit in ans if best >= floor]
        coverage = len(answered) / len(ans)
        accuracy = sum(answered) / len(answered) if answered else 0.0
        abstain_out = sum(b < floor for b in out) / len(out)
        abstain_off = sum(b < floor for b in off) / len(off)
        print(f"{floor:>6.2f} {coverage:>9.3f} {accuracy:>9.3f} {abstain_out:>13.3f} {abstain_off:>13.3f}")


if __name__ == "__main__":
    main()
