"""Close the loop with a scripted annotator: collect judgments, train DPO, compare base and trained blind.

The annotator is SIMULATED: it prefers the answer whose sentences are all supported by the passages
it cites (medchat's own check step: no unsupported sentence, no invalid citation, at least one
citation, not an abstention), and calls a tie otherwise. Its preference is measurable, so whether
training learned it can be measured on questions it never saw.

1. MedQuAD answers on a set of topics are ingested into a fresh MEDCHAT_HOME; their questions are
   split by question into a collection set and a held-out set.
2. Collection: the two sampling variants below answer each collection question (the bundled SmolLM2
   through llama.cpp) and the judge votes. `--via http` starts `medchat serve --no-login` and does both
   through the running app's API (gradio_client: /compare_next, /vote), as tests/system/test_concurrency.py
   does; `--via service` calls the same Compare service in-process (no web server).
3. `medchat train dpo ... --register trained --like sample-a` trains LoRA on the CPU from the store.
4. Held-out questions: base (`sample-a`) and `trained` answer each one; the same judge compares each
   pair blind (random sides); the Bradley-Terry win rate of trained over base with a 95% bootstrap
   interval, the judge's criterion rate, answer length and abstention rate for each.

    nice -n 19 .venv/bin/python bench/bench_train.py --pairs 300 --heldout 100   # the issue's size
    nice -n 19 .venv/bin/python bench/bench_train.py --pairs 40 --heldout 30     # what fits an hour here

Writes bench-train-<time>/summary.json and prints the summary. Needs ../shared/datasets/medquad.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad" / "medquad_answered.jsonl"

VARIANTS_YAML = """\
# bench_train: two samples of the same prompt and model, so a pair differs only by chance;
# the judge's preference between them is what DPO is asked to learn
variants:
  sample-a:
    description: base model, temperature 0.8, seed 1
    prompt: {persona: clinician_to_patient, format: short_then_details, exemplar: cited_answer}
    retrieval: {k: 3}
    generation: {temperature: 0.8, seed: 1, max_new_tokens: MAXTOK}
  sample-b:
    description: base model, temperature 0.8, seed 2
    prompt: {persona: clinician_to_patient, format: short_then_details, exemplar: cited_answer}
    retrieval: {k: 3}
    generation: {temperature: 0.8, seed: 2, max_new_tokens: MAXTOK}
"""


def supported(answer: dict[str, Any]) -> bool:
    """The judge's criterion, from the check step's own record of the answer."""
    return bool(
        answer
        and not answer.get("abstained")
        and not answer.get("emergency")
        and answer.get("cited")
        and not answer.get("invalid_citations")
        and not answer.get("unsupported")
    )


def verdict(left: dict[str, Any], right: dict[str, Any]) -> str:
    a, b = supported(left), supported(right)
    return "A" if a and not b else "B" if b and not a else "tie"


def words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def corpus_and_questions(args: argparse.Namespace, home: Path) -> tuple[Path, list[str], list[str]]:
    rows = [json.loads(line) for line in MEDQUAD.open(encoding="utf-8")]
    rng = random.Random(args.seed)
    by_focus: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("answer") and len(r["answer"]) < 4000:
            by_focus[r["focus"]].append(r)
    foci = sorted(by_focus)
    rng.shuffle(foci)
    sample: list[dict[str, Any]] = []
    for focus in foci:
        if len(sample) >= args.answers:
            break
        sample.extend(by_focus[focus])
    questions = sorted({r["question"].strip() for r in sample})
    rng.shuffle(questions)
    need = args.pairs + args.heldout
    if len(questions) < need:
        raise SystemExit(f"only {len(questions)} questions in the sample: raise --answers")
    corpus = home / "medquad-sample.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in sample), encoding="utf-8")
    return corpus, questions[: args.pairs], questions[args.pairs : need]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collect_http(questions: list[str], env: dict[str, str], log: Path) -> dict[str, int]:
    """Queue the questions, start the app, take each pair with /compare_next and vote with /vote."""
    import urllib.request

    from gradio_client import Client

    qfile = log.with_name("questions.txt")
    qfile.write_text("\n".join(questions) + "\n", encoding="utf-8")
    medchat = [sys.executable, "-m", "chatbot.cli"]
    subprocess.run([*medchat, "prefs", "load-questions", str(qfile)], env=env, check=True)
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*medchat, "serve", "--no-login", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(600):
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"the app exited; see {log}") from None
                time.sleep(1)
        client = Client(url, verbose=False)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/vote"][
            "parameters"
        ]
        from chatbot.labelling.store.prefs import PreferenceStore
        from chatbot.settings import Settings

        store = PreferenceStore(Settings().prefs_db_url)
        counts: dict[str, int] = defaultdict(int)
        for n in range(len(questions)):
            client.predict(api_name="/compare_next")
            r = store.pending_round("local")
            if r is None:
                break
            choice = verdict(r.left.answer, r.right.answer)
            values: list[Any] = []
            for p in params:
                name = p.get("parameter_name") or p.get("label", "")
                if name == "choice":
                    values.append({"A": "A is better", "B": "B is better", "tie": "Tie"}[choice])
                elif name == "strength":
                    values.append("Better" if choice != "tie" else None)
                elif name == "safety":
                    values.append("Both safe")
                elif name in ("harm", "editing"):
                    values.append(False)
                elif name.endswith("flags"):
                    values.append([])
                elif name.endswith("extent"):
                    values.append("none")
                else:
                    values.append(p.get("parameter_default", "") if p.get("parameter_has_default") else "")
            client.predict(*values, api_name="/vote")
            counts[choice] += 1
            if (n + 1) % 10 == 0:
                print(f"  {n + 1}/{len(questions)} judged {dict(counts)}", flush=True)
        store.close()
        return dict(counts)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def collect_service(questions: list[str]) -> dict[str, int]:
    from chatbot.chain import Chain
    from chatbot.labelling.service import CompareService
    from chatbot.labelling.store.prefs import JudgmentIn, PreferenceStore
    from chatbot.labelling.variants import VariantRunner, load_variants
    from chatbot.settings import Settings

    settings = Settings()
    store = PreferenceStore(settings.prefs_db_url)
    service = CompareService(
        store, VariantRunner(Chain(settings), load_variants(settings.prefs.variants_file)), settings
    )
    rng = random.Random(0)
    counts: dict[str, int] = defaultdict(int)
    for n, q in enumerate(questions):
        r = list(service.ask("judge", q, rng=rng))[-1].round
        assert r is not None  # the last step of `ask` carries the stored round
        choice = verdict(r.left.answer, r.right.answer)
        service.submit(
            JudgmentIn(r.comparison_id, "judge", choice, "" if choice == "tie" else "better", "both_safe")
        )
        counts[choice] += 1
        if (n + 1) % 10 == 0:
            print(f"  {n + 1}/{len(questions)} judged {dict(counts)}", flush=True)
    store.close()
    return dict(counts)


def compare(heldout: list[str], rounds: int, seed: int) -> dict[str, Any]:
    """Base vs trained on held-out questions, judged blind; BT win rate with a bootstrap interval."""
    from chatbot.chain import Chain
    from chatbot.labelling.variants import VariantRunner, load_variants
    from chatbot.settings import Settings

    settings = Settings()
    runner = VariantRunner(Chain(settings), load_variants(settings.prefs.variants_file))
    rng = random.Random(seed)
    per: dict[str, list[dict[str, Any]]] = {"sample-a": [], "trained": []}
    outcomes = []  # score of trained: 1 win, 0.5 tie, 0 loss
    for q in heldout:
        got = {}
        for name in per:
            run = runner.run(name, q)
            for _ in run.stream:
                pass
            assert run.stream.answer is not None
            got[name] = run.stream.answer.as_dict()
            per[name].append(got[name])
        trained_left = rng.random() < 0.5
        left, right = (got["trained"], got["sample-a"]) if trained_left else (got["sample-a"], got["trained"])
        v = verdict(left, right)
        outcomes.append(0.5 if v == "tie" else float((v == "A") == trained_left))
    n = len(outcomes)
    win = sum(outcomes) / n
    boots = sorted(sum(outcomes[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    lo, hi = boots[int(0.025 * rounds)], boots[int(0.975 * rounds) - 1]

    def rates(answers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "criterion_rate": sum(supported(a) for a in answers) / len(answers),
            "cited_rate": sum(bool(a.get("cited")) for a in answers) / len(answers),
            "abstention_rate": sum(bool(a.get("abstained")) for a in answers) / len(answers),
            "mean_words": statistics.fmean(words(a.get("answer", "")) for a in answers),
        }

    return {
        "questions": n,
        "trained_wins": outcomes.count(1.0),
        "ties": outcomes.count(0.5),
        "base_wins": outcomes.count(0.0),
        # with two models the Bradley-Terry win probability is the tie-halved win share
        "trained_win_rate": win,
        "ci95": [lo, hi],
        "base": rates(per["sample-a"]),
        "trained": rates(per["trained"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=300, help="collection questions (one vote each)")
    ap.add_argument("--heldout", type=int, default=100, help="held-out questions for the blind comparison")
    ap.add_argument("--answers", type=int, default=1500, help="MedQuAD answers ingested (whole topics)")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--via", choices=["http", "service"], default="http")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--home", type=Path, default=None, help="MEDCHAT_HOME to use (default: a new temp folder)"
    )
    args = ap.parse_args()
    if not MEDQUAD.is_file():
        raise SystemExit(f"{MEDQUAD} is missing: this benchmark reads the shared MedQuAD file")
    home = args.home or Path(tempfile.mkdtemp(prefix="medchat-bench-train-"))
    out = REPO / f"bench-train-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir()
    variants = home / "variants.yaml"
    home.mkdir(parents=True, exist_ok=True)
    variants.write_text(VARIANTS_YAML.replace("MAXTOK", str(args.max_new_tokens)), encoding="utf-8")
    env = {
        **os.environ,
        "MEDCHAT_HOME": str(home),
        "MEDCHAT_PREFS__VARIANTS_FILE": str(variants),
        "MEDCHAT_PREFS__GOLD_RATIO": "0",
        # the base as shipped (Q4_1): the automatic Q4_0 copy would add rounding the trained GGUF lacks
        "MEDCHAT_GENERATION__REQUANTIZE": "none",
        "MEDCHAT_INGESTION__JSONL_TEXT_FIELD": "answer",
        "MEDCHAT_INGESTION__JSONL_ID_FIELD": "uid",
        "MEDCHAT_INGESTION__JSONL_TITLE_FIELD": "focus",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    os.environ.update(env)
    t0 = time.perf_counter()
    corpus, collect_qs, heldout_qs = corpus_and_questions(args, home)
    subprocess.run([sys.executable, "-m", "chatbot.cli", "ingest", str(corpus)], env=env, check=True)
    timings = {"ingest_s": time.perf_counter() - t0}
    print(f"collecting {len(collect_qs)} judgments via {args.via}", flush=True)
    t = time.perf_counter()
    votes = (
        collect_http(collect_qs, env, out / "serve.log")
        if args.via == "http"
        else collect_service(collect_qs)
    )
    timings["collect_s"] = time.perf_counter() - t
    print(f"votes: {votes}", flush=True)
    t = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "chatbot.cli",
        "train",
        "dpo",
        "--name",
        "bench",
        "--epochs",
        str(args.epochs),
        "--lr",
        str(args.lr),
        "--beta",
        str(args.beta),
        "--max-length",
        str(args.max_length),
        "--register",
        "trained",
        "--like",
        "sample-a",
        "--seed",
        str(args.seed),
        "--min-pairs",
        "4",
    ]
    print(" ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, env=env, check=True)
    timings["train_s"] = time.perf_counter() - t
    card = json.loads((home / "models" / "bench" / "metrics.json").read_text(encoding="utf-8"))
    t = time.perf_counter()
    result = compare(heldout_qs, args.bootstrap, args.seed)
    timings["compare_s"] = time.perf_counter() - t
    summary = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "judge": "simulated: prefers the answer whose sentences are all supported by its cited passages",
        "votes": votes,
        "training": {
            "data": {k: v for k, v in card["data"].items() if not k.endswith("judgment_ids")},
            "heldout_reward": card["metrics"]["heldout"],
            "loss_first": card["metrics"].get("loss_first"),
            "loss_last": card["metrics"].get("loss_last"),
            "seconds": card["metrics"]["train_seconds"],
            "gguf": card["files"].get("gguf"),
            "gguf_change_kept": card["files"].get("gguf_change_kept"),
        },
        "blind_comparison": result,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
