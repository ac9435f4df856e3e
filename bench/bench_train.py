"""Close the loop through the app, stage by stage: judgments in, a trained model out, compared blind.

The annotator is SIMULATED (a script, not a clinician). Its preference is measurable and is not the
model's own output: between two answers it prefers, in this order,
1. the one without a sentence that a passage contradicts (when the other has one),
2. the one with more sentences that medchat's grounding check (`chatbot.grounding.check_answer`)
   finds supported by the passages shown,
3. the one that cites the passage holding the MedQuAD reference answer of the question,
and calls a tie otherwise.

Stages (each writes its result into OUT/state.json as it finishes; rerunning the same command skips
what is done and continues the stage under way: the queue, `prefs prepare` and `train` all resume):

  setup       MedQuAD answers on whole topics ingested into OUT/home; questions split, by question,
              into a collection set and a held-out set never seen in training
  queue       `medchat prefs load-questions` (the collection questions)
  pairs       `medchat prefs prepare`: the worker writes both answers of each pair (two sampling
              variants of the base model, seeds 1 and 2)
  votes       `medchat serve --no-login`; the annotator takes each pair with /compare_next and votes
              with /vote (the running app's API, as tests/system/test_concurrency.py does)
  export      `medchat export --format dpo` (what training will read, and what was left out)
  train       `medchat train dpo --register trained --like sample-a` (the CPU profile; GGUF; register)
  held-*      the held-out questions queued, prepared and judged the same way in a second store whose
              variants are only base (`sample-a`) and `trained`, sides drawn at random by the app
  report      Bradley-Terry ratings from the app's leaderboard (`chatbot.labelling.leaderboard.results`)
              -> the trained model's win rate over base with its 95% interval; per variant: answer
              length, abstention rate, share of sentences supported, gold-passage citation, TTFT

With --best-of N (off by default: without it the stages and results are the ones above), after `train`:

  reward      `medchat train reward` on the same judgments (the selection `export` wrote), registered as
              `base+boN` (`--best-of N --like sample-a`): N answers of the base model, the reward
              model's favourite served
  bo-*        after `report`: the held-out questions queued, prepared and judged in a third store whose
              variants are only base (`sample-a`) and `base+boN`; `bo-report` gives its win rate over
              base the same way, and the added latency (total seconds per answer against base's, and
              the `best_of_added_s` each best-of answer records)

    nice -n 15 .venv/bin/python bench/bench_train.py --out bench-train-run           # 200 pairs, 60 held out
    nice -n 15 .venv/bin/python bench/bench_train.py --out bench-train-run           # rerun: continues
    nice -n 15 .venv/bin/python bench/bench_train.py --out bench-bo-run --best-of 4  # with best of 4
    .venv/bin/python bench/bench_train.py --out bench-train-run --redo report        # one stage again

Writes OUT/summary.json, OUT/summary.md and OUT/winrate.png (and winrate-bo.png with --best-of).
Needs ../shared/datasets/medquad.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MEDQUAD = REPO.parent / "shared" / "datasets" / "medquad" / "medquad_answered.jsonl"
STAGES = (
    "setup", "queue", "pairs", "votes", "export", "train", "held-queue", "held-pairs", "held-votes", "report",
)  # fmt: skip
BEST_OF_STAGES = ("reward", "bo-queue", "bo-pairs", "bo-votes", "bo-report")
"""Only with --best-of N: `reward` right after `train`, the others after `report`."""


def stages(best_of: int | None) -> tuple[str, ...]:
    if not best_of:
        return STAGES
    at = STAGES.index("train") + 1
    return (*STAGES[:at], "reward", *STAGES[at:], *BEST_OF_STAGES[1:])


VARIANT = """\
  {name}:
    description: base model, temperature 0.8, seed {seed}
    prompt: {{persona: clinician_to_patient, format: short_then_details, exemplar: cited_answer}}
    retrieval: {{k: 3}}
    generation: {{temperature: 0.8, seed: {seed}, max_new_tokens: {maxtok}}}
"""
HEADER = "# bench_train: two samples of the same prompt and model; the annotator's preference between them\n"


# -- the scripted annotator --------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def assess(answer: dict[str, Any], gold: str) -> dict[str, Any]:
    """What the annotator looks at in one answer; `gold` is the MedQuAD reference answer's text."""
    from chatbot.grounding import CONTRADICTED, SUPPORTED, check_answer

    text = (answer.get("raw_answer") or answer.get("answer") or "").strip()
    abstained = bool(answer.get("abstained") or answer.get("emergency"))
    sources = sorted(answer.get("sources") or [], key=lambda s: s.get("n", 0))
    out: dict[str, Any] = {"words": len(re.findall(r"\w+", text)), "abstained": abstained}
    out |= {"sentences": 0, "supported": 0}
    out |= {
        "contradicted": 0,
        "gold_cited": False,
        "ttft_s": (answer.get("timings") or {}).get("first_token_s"),
    }
    if abstained or not text:
        return out
    checks = check_answer(text, [s.get("text", "") for s in sources])
    out["sentences"] = len(checks)
    out["supported"] = sum(c.verdict == SUPPORTED for c in checks)
    out["contradicted"] = sum(c.verdict == CONTRADICTED for c in checks)
    g = _norm(gold)
    for n in answer.get("cited") or []:
        if 1 <= n <= len(sources) and _norm(sources[n - 1].get("text", ""))[:300] in g:
            out["gold_cited"] = True
    return out


def verdict(left: dict[str, Any], right: dict[str, Any]) -> str:
    """'A' (left), 'B' (right) or 'tie', from two `assess` results."""
    for key, better in (("contradicted", min), ("supported", max), ("gold_cited", max)):
        a, b = left[key], right[key]
        if key == "contradicted" and min(a, b) > 0:
            continue  # both contradict: no preference on this ground
        if a != b:
            return "A" if better(a, b) == a else "B"
    return "tie"


# -- plumbing ----------------------------------------------------------------------------------


class State:
    def __init__(self, out: Path) -> None:
        self.path = out / "state.json"
        self.data: dict[str, Any] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {"done": {}}
        )

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    def done(self, stage: str) -> bool:
        return stage in self.data["done"]

    def finish(self, stage: str, seconds: float, **result: Any) -> None:
        self.data["done"][stage] = {"seconds": round(seconds, 1), **result}
        self.save()
        print(f"[{stage}] done in {seconds:.0f} s {json.dumps(result)[:300]}", flush=True)


def medchat(env: dict[str, str], *args: str, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "chatbot.cli", *args]
    print("$ medchat " + " ".join(args), flush=True)
    if capture:
        return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    subprocess.run(cmd, env=env, check=True)
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def corpus_and_questions(args: argparse.Namespace, home: Path) -> tuple[Path, dict[str, Any]]:
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
    gold: dict[str, str] = {}
    for r in sample:
        gold.setdefault(r["question"].strip(), r["answer"])
    questions = sorted(gold)
    rng.shuffle(questions)
    need = args.pairs + args.heldout
    if len(questions) < need:
        raise SystemExit(f"only {len(questions)} questions in the sample: raise --answers")
    corpus = home / "medquad-sample.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in sample), encoding="utf-8")
    collect, held = questions[: args.pairs], questions[args.pairs : need]
    return corpus, {"collect": collect, "heldout": held, "gold": {q: gold[q] for q in collect + held}}


def judge_through_app(env: dict[str, str], gold: dict[str, str], log: Path, want: int) -> dict[str, Any]:
    """Start `medchat serve --no-login`; take each queued pair with /compare_next and vote with /vote
    until the queue is empty. Resumes: judged pairs are not served again."""
    import urllib.request

    from gradio_client import Client

    from chatbot.labelling.store.prefs import PreferenceStore

    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatbot.cli", "serve", "--no-login", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    store = PreferenceStore(env["MEDCHAT_PREFS__DB_URL"])
    counts: dict[str, int] = defaultdict(int)
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
        labels = {"A": "A is better", "B": "B is better", "tie": "Tie"}
        for n in range(want + 5):
            client.predict(api_name="/compare_next")
            r = store.pending_round("local")
            if r is None:
                break
            g = gold.get(r.question.strip(), "")
            choice = verdict(assess(r.left.answer or {}, g), assess(r.right.answer or {}, g))
            vote: tuple[Any, ...] = (labels[choice], "Better" if choice != "tie" else None, "Both safe")
            # no annotation flags, no rationale
            vote += (None, False, "", "none", "", [], "", "none", "", [], "")
            client.predict(*vote, api_name="/vote")
            counts[choice] += 1
            if (n + 1) % 10 == 0:
                print(f"  {n + 1} judged {dict(counts)}", flush=True)
    finally:
        store.close()
        proc.terminate()
        proc.wait(timeout=60)
    return dict(counts)


def stored_votes(env: dict[str, str]) -> dict[str, int]:
    """The votes in the store, by choice (as shown: A left, B right): over every run of the stage."""
    from chatbot.labelling.store.prefs import PreferenceStore

    store = PreferenceStore(env["MEDCHAT_PREFS__DB_URL"])
    counts: dict[str, int] = defaultdict(int)
    for j in store.judgments(status="submitted"):
        counts[j.choice] += 1
    store.close()
    return dict(counts)


def report(
    env: dict[str, str],
    gold: dict[str, str],
    out: Path,
    rounds: int,
    challenger: str = "trained",
    label: str = "trained",
    png: str = "winrate.png",
) -> dict[str, Any]:
    """The app's leaderboard over the held-out store, and per-variant measures of the answers:
    `challenger` (reported as `label`) against base (`sample-a`)."""
    from chatbot.labelling.export import records
    from chatbot.labelling.leaderboard import SCALE, results
    from chatbot.labelling.store.prefs import PreferenceStore

    store = PreferenceStore(env["MEDCHAT_PREFS__DB_URL"])
    res = results(store, rounds=rounds)
    recs = [r for r in records(store, status="submitted") if not r.comparison.is_gold]
    store.close()
    ratings = {r.variant: r for r in res.ratings}
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    outcome: dict[str, int] = defaultdict(int)
    for rec in recs:
        for resp in (rec.left, rec.right):
            per[resp.variant].append(assess(resp.answer or {}, gold.get(rec.comparison.question.strip(), "")))
        w = rec.winner
        outcome["tie" if w is None else (label if w.variant == challenger else "base")] += 1

    def p(rating: float) -> float:  # two variants: ratings are symmetric around 1000
        return 1 / (1 + math.exp(-2 * (rating - 1000) / SCALE))

    t = ratings.get(challenger)
    win = {"rate": p(t.rating), "ci95": [p(t.lower), p(t.upper)]} if t else {}

    def measures(xs: list[dict[str, Any]]) -> dict[str, Any]:
        answered = [x for x in xs if not x["abstained"]]
        ttft = [x["ttft_s"] for x in xs if x["ttft_s"] is not None]
        sentences = sum(x["sentences"] for x in xs)
        return {
            "n": len(xs),
            "mean_words": round(statistics.fmean(x["words"] for x in xs), 1) if xs else None,
            "abstention_rate": round(1 - len(answered) / len(xs), 3) if xs else None,
            "supported_share": round(sum(x["supported"] for x in xs) / sentences, 3) if sentences else None,
            "with_contradiction_rate": round(sum(x["contradicted"] > 0 for x in xs) / len(xs), 3)
            if xs
            else None,
            "gold_cited_rate": round(sum(x["gold_cited"] for x in xs) / len(xs), 3) if xs else None,
            "ttft_median_s": round(statistics.median(ttft), 2) if ttft else None,
        }

    result = {
        "judgments": len(recs),
        "outcomes": dict(outcome),
        "leaderboard": [
            {
                "variant": r.variant,
                "rating": round(r.rating, 1),
                "ci95": [round(r.lower, 1), round(r.upper, 1)],
            }
            | {"battles": r.battles, "wins": r.wins}
            for r in res.ratings
        ],
        f"{label}_win_rate": win,
        "base": measures(per.get("sample-a", [])),
        label: measures(per.get(challenger, [])),
    }
    if win:
        plot(win, len(recs), out / png, f"{challenger} vs base")
    return result


def best_of_latency(env: dict[str, str], challenger: str) -> dict[str, Any]:
    """Seconds per stored answer, base against best of N (one after the other on one model, as
    `prefs prepare` writes them), and what the best-of answers recorded about their choice."""
    from chatbot.labelling.export import records
    from chatbot.labelling.store.prefs import PreferenceStore

    store = PreferenceStore(env["MEDCHAT_PREFS__DB_URL"])
    seconds: dict[str, list[float]] = defaultdict(list)
    added, one, scored, chosen, spread = [], [], [], [], []
    seen = set()
    for rec in records(store, status="submitted"):
        for resp in (rec.left, rec.right):
            if resp.id in seen:
                continue
            seen.add(resp.id)
            if resp.seconds is not None:
                seconds[resp.variant].append(resp.seconds)
            answer = resp.answer or {}
            best, t = answer.get("best_of") or {}, answer.get("timings") or {}
            if resp.variant == challenger and best:
                added.append(t.get("best_of_added_s", 0.0))
                one.append(t.get("best_of_one_s", 0.0))
                scored.append(t.get("best_of_score_s", 0.0))
                chosen.append(best["chosen"])
                spread.append(max(best["scores"]) - min(best["scores"]))
    store.close()

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 2) if xs else None

    base, bo = med(seconds.get("sample-a", [])), med(seconds.get(challenger, []))
    return {
        "answers": {k: len(v) for k, v in seconds.items()},
        "base_median_s": base,
        "best_of_median_s": bo,
        "ratio": round(bo / base, 2) if base and bo else None,
        "best_of_added_median_s": med(added),
        "best_of_one_answer_median_s": med(one),
        "best_of_scoring_median_s": med(scored),
        "chosen_index_counts": {str(i): chosen.count(i) for i in sorted(set(chosen))},
        "score_spread_median": round(statistics.median(spread), 4) if spread else None,
    }


def plot(win: dict[str, Any], n: int, path: Path, what: str = "trained vs base") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3))
    lo, hi = win["ci95"]
    ax.errorbar([0], [win["rate"]], yerr=[[win["rate"] - lo], [hi - win["rate"]]], fmt="o", capsize=8)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(-1, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([0], [what])
    ax.set_ylabel("Bradley-Terry win rate")
    ax.set_title(f"held-out questions, n = {n} (95% bootstrap interval)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(summary: dict[str, Any]) -> str:
    r = summary.get("report") or {}
    win = r.get("trained_win_rate") or {}
    lines = [
        "# bench_train: the loop on this machine",
        "",
        f"Command: `{summary['command']}`; machine: {summary['machine']}. The annotator is simulated.",
        "",
        "| stage | seconds | result |",
        "|---|---|---|",
    ]
    for stage in stages(summary.get("best_of")):
        d = summary["stages"].get(stage)
        if d:
            rest = {k: v for k, v in d.items() if k != "seconds"}
            lines.append(f"| {stage} | {d['seconds']} | {json.dumps(rest)[:160]} |")
        else:
            lines.append(f"| {stage} | not run yet | |")
    if win:
        lo, hi = win["ci95"]
        lines += ["", f"Trained over base: win rate {win['rate']:.3f}, 95% interval {lo:.3f}-{hi:.3f}, "
                  f"{r['judgments']} held-out judgments ({r['outcomes']})."]  # fmt: skip
        lines += ["", "| measure | base | trained |", "|---|---|---|"]
        for key in r["base"]:
            lines.append(f"| {key} | {r['base'][key]} | {r['trained'][key]} |")
    bo = summary.get("best_of_report") or {}
    bo_win = bo.get("best_of_win_rate") or {}
    if bo_win:
        lo, hi = bo_win["ci95"]
        lines += ["", f"Best of {summary['best_of']} over base: win rate {bo_win['rate']:.3f}, 95% interval "
                  f"{lo:.3f}-{hi:.3f}, {bo['judgments']} held-out judgments ({bo['outcomes']})."]  # fmt: skip
        lines += ["", f"Latency: {json.dumps(bo.get('latency'))}"]
        lines += ["", "| measure | base | best of N |", "|---|---|---|"]
        for key in bo["base"]:
            lines.append(f"| {key} | {bo['base'][key]} | {bo['best_of'][key]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the home, the state and the report")
    ap.add_argument("--pairs", type=int, default=200, help="collection questions (one vote each)")
    ap.add_argument("--heldout", type=int, default=60, help="held-out questions for the blind comparison")
    ap.add_argument("--answers", type=int, default=1500, help="MedQuAD answers ingested (whole topics)")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=-1, help="cap the optimizer steps (a small run)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--best-of",
        type=int,
        default=None,
        metavar="N",
        help="also train a reward model after `train` and compare base+boN with base on the held-out "
        "questions (stages reward, bo-queue, bo-pairs, bo-votes, bo-report); off by default",
    )
    every = STAGES + BEST_OF_STAGES
    ap.add_argument("--redo", choices=every, default=None, help="forget this stage and the ones after it")
    ap.add_argument("--stop-after", choices=every, default=None)
    args = ap.parse_args()
    if args.best_of is not None and not 2 <= args.best_of <= 16:
        raise SystemExit("--best-of must be from 2 to 16")
    if not MEDQUAD.is_file():
        raise SystemExit(f"{MEDQUAD} is missing: this benchmark reads the shared MedQuAD file")
    out = args.out.resolve()
    home = out / "home"
    home.mkdir(parents=True, exist_ok=True)
    state = State(out)
    keep = {k: v for k, v in vars(args).items() if k not in ("out", "redo", "stop_after")}
    if args.best_of is None:  # a run without the flag keeps the settings it has always recorded
        del keep["best_of"]
    if state.data.get("args") and state.data["args"] != keep:
        print(f"note: continuing {out} with the settings it started with: {state.data['args']}", flush=True)
        for k, v in state.data["args"].items():
            setattr(args, k, v)
    state.data["args"] = {k: getattr(args, k) for k in keep}
    order = stages(args.best_of)
    for flag in ("redo", "stop_after"):
        if getattr(args, flag) and getattr(args, flag) not in order:
            raise SystemExit(f"stage {getattr(args, flag)} runs only with --best-of N")
    if args.redo:
        for stage in order[order.index(args.redo) :]:
            state.data["done"].pop(stage, None)
    state.save()
    variants, held_variants = home / "variants.yaml", home / "heldout-variants.yaml"
    env = {
        **os.environ,
        "MEDCHAT_HOME": str(home),
        "MEDCHAT_PREFS__VARIANTS_FILE": str(variants),
        "MEDCHAT_PREFS__DB_URL": f"sqlite:///{home / 'prefs.sqlite3'}",
        "MEDCHAT_PREFS__GOLD_RATIO": "0",
        "MEDCHAT_PREFS__PREPARE_AHEAD": "0",
        # the model's own words are compared (free), not the extractive text the app shows by default
        "MEDCHAT_GENERATION__GROUNDING": "free",
        # the base as shipped (Q4_1): the automatic Q4_0 copy would add rounding the trained GGUF lacks
        "MEDCHAT_GENERATION__REQUANTIZE": "none",
        "MEDCHAT_INGESTION__JSONL_TEXT_FIELD": "answer",
        "MEDCHAT_INGESTION__JSONL_ID_FIELD": "uid",
        "MEDCHAT_INGESTION__JSONL_TITLE_FIELD": "focus",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    held_env = {
        **env,
        "MEDCHAT_PREFS__VARIANTS_FILE": str(held_variants),
        "MEDCHAT_PREFS__DB_URL": f"sqlite:///{home / 'heldout.sqlite3'}",
    }
    bo_variants, bo_name = home / "bestof-variants.yaml", f"base+bo{args.best_of}"
    bo_env = {
        **env,
        "MEDCHAT_PREFS__VARIANTS_FILE": str(bo_variants),
        "MEDCHAT_PREFS__DB_URL": f"sqlite:///{home / 'bestof.sqlite3'}",
    }
    qfile = out / "questions.json"
    for stage in order:
        if state.done(stage):
            continue
        t = time.perf_counter()
        print(f"[{stage}] starting", flush=True)
        if stage == "setup":
            corpus, qs = corpus_and_questions(args, home)
            qfile.write_text(json.dumps(qs) + "\n", encoding="utf-8")
            (out / "collect.txt").write_text("\n".join(qs["collect"]) + "\n", encoding="utf-8")
            (out / "heldout.txt").write_text("\n".join(qs["heldout"]) + "\n", encoding="utf-8")
            blocks = [
                VARIANT.format(name=n, seed=k, maxtok=args.max_new_tokens)
                for n, k in (("sample-a", 1), ("sample-b", 2))
            ]
            variants.write_text(HEADER + "variants:\n" + "".join(blocks), encoding="utf-8")
            medchat(env, "ingest", str(corpus))
            state.finish(
                stage, time.perf_counter() - t, collect=len(qs["collect"]), heldout=len(qs["heldout"])
            )
        elif stage in ("queue", "held-queue", "bo-queue"):
            e, f = (env, out / "collect.txt") if stage == "queue" else (held_env, out / "heldout.txt")
            e = bo_env if stage == "bo-queue" else e
            said = medchat(e, "prefs", "load-questions", str(f), "--overlap", "1", capture=True)
            state.finish(stage, time.perf_counter() - t, said=said.strip())
        elif stage in ("pairs", "held-pairs", "bo-pairs"):
            e = {"pairs": env, "held-pairs": held_env, "bo-pairs": bo_env}[stage]
            medchat(e, "prefs", "prepare", "--seed", str(args.seed))
            state.finish(stage, time.perf_counter() - t)
        elif stage in ("votes", "held-votes", "bo-votes"):
            gold = json.loads(qfile.read_text(encoding="utf-8"))["gold"]
            e, n = (env, args.pairs) if stage == "votes" else (held_env, args.heldout)
            e = bo_env if stage == "bo-votes" else e
            judge_through_app(e, gold, out / f"serve-{stage}.log", n)
            state.finish(stage, time.perf_counter() - t, votes=stored_votes(e))
        elif stage == "export":
            said = medchat(
                env, "export", "--format", "dpo", "--output", str(out / "export.jsonl"), capture=True
            )
            state.finish(stage, time.perf_counter() - t, said=said.strip()[-600:])
        elif stage == "train":
            cmd = ["train", "dpo", "--name", "bench", "--epochs", str(args.epochs), "--lr", str(args.lr)]
            cmd += ["--beta", str(args.beta), "--seed", str(args.seed), "--min-pairs", "4", "--no-progress"]
            cmd += ["--max-steps", str(args.max_steps), "--register", "trained", "--like", "sample-a"]
            card_path = home / "models" / "bench" / "metrics.json"
            if not card_path.is_file():  # a finished run is not trained again; a stopped one resumes
                medchat(env, *cmd)
            card = json.loads(card_path.read_text(encoding="utf-8"))
            import yaml

            spec = yaml.safe_load(variants.read_text(encoding="utf-8"))["variants"]
            held_variants.write_text(
                yaml.safe_dump({"variants": {k: spec[k] for k in ("sample-a", "trained")}}, sort_keys=False),
                encoding="utf-8",
            )
            m = card["metrics"]
            state.finish(
                stage,
                time.perf_counter() - t,
                train_s=m["train_seconds"],
                steps=m["steps"],
                resumed_from_step=m.get("resumed_from_step", 0),
                data={k: v for k, v in card["data"].items() if not k.endswith("judgment_ids")},
                heldout_reward=m["heldout"],
                loss_first=m.get("loss_first"),
                loss_last=m.get("loss_last"),
                hyperparameters=card["hyperparameters"],
                gguf=card["files"].get("gguf"),
                gguf_change_kept=card["files"].get("gguf_change_kept"),
                variant=card.get("variant"),
            )
        elif stage == "reward":
            # the same judgments the DPO run read (the selection `export` wrote), as a reward model,
            # registered as base+boN: sample-a's settings, N answers, the reward model's favourite
            cmd = ["train", "reward", "--name", "bench-rm", "--epochs", str(args.epochs)]
            cmd += [
                "--seed",
                str(args.seed),
                "--min-pairs",
                "4",
                "--no-progress",
                "--max-steps",
                str(args.max_steps),
            ]
            cmd += ["--register", bo_name, "--best-of", str(args.best_of), "--like", "sample-a"]
            card_path = home / "models" / "bench-rm" / "metrics.json"
            if not card_path.is_file():
                medchat(env, *cmd)
            card = json.loads(card_path.read_text(encoding="utf-8"))
            import yaml

            spec = yaml.safe_load(variants.read_text(encoding="utf-8"))["variants"]
            if bo_name not in spec:
                raise SystemExit(f"{bo_name} is not in {variants}: the reward run did not register it")
            bo_variants.write_text(
                yaml.safe_dump({"variants": {k: spec[k] for k in ("sample-a", bo_name)}}, sort_keys=False),
                encoding="utf-8",
            )
            m = card["metrics"]
            state.finish(
                stage,
                time.perf_counter() - t,
                train_s=m["train_seconds"],
                steps=m["steps"],
                heldout_reward=m["heldout"],
                loss_first=m.get("loss_first"),
                loss_last=m.get("loss_last"),
                variant=card.get("variant"),
            )
        elif stage == "report":
            gold = json.loads(qfile.read_text(encoding="utf-8"))["gold"]
            state.finish(stage, time.perf_counter() - t, **report(held_env, gold, out, args.bootstrap))
        elif stage == "bo-report":
            gold = json.loads(qfile.read_text(encoding="utf-8"))["gold"]
            found = report(bo_env, gold, out, args.bootstrap, bo_name, "best_of", "winrate-bo.png")
            state.finish(stage, time.perf_counter() - t, **found, latency=best_of_latency(bo_env, bo_name))
        if args.stop_after == stage:
            break
    summary = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end",
        "annotator": "simulated: no contradicted sentence, then more supported sentences, then the gold "
        "passage cited; tie otherwise",
        "stages": state.data["done"],
        "report": state.data["done"].get("report", {}),
    }
    if args.best_of:
        summary |= {"best_of": args.best_of, "best_of_report": state.data["done"].get("bo-report", {})}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(markdown(summary), encoding="utf-8")
    print(markdown(summary))


if __name__ == "__main__":
    main()
