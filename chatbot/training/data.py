"""The training rows: judgments selected as `medchat export` selects them, fitted and split by question.

`selected_rows` is the one place that asks the export code for rows; everything after it
(fitting the prompt into `max_length` by shortening passages, the held-out split by
question, the counts of what was left out) is the trainer's own.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatbot.training import TooFewPairsError, TrainingError

if TYPE_CHECKING:
    from chatbot.labelling.store.prefs import PreferenceStore

log = logging.getLogger(__name__)

_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
_ID = re.compile(r"\b[0-9a-f]{32}\b")
ELLIPSIS = "…"


@dataclass
class Selection:
    """Rows in TRL's columns, split by question, with everything the card and the errors need."""

    kind: str
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    excluded: Counter[str] = field(default_factory=Counter)
    """Reason -> judgments (or rows, for length) left out."""
    judgments_seen: int = 0
    train_questions: int = 0
    eval_questions: int = 0
    truncated: int = 0
    """Rows whose passages were shortened to fit `max_length`."""
    guideline_versions: list[str] = field(default_factory=list)

    @staticmethod
    def judgment_ids(rows: list[dict[str, Any]]) -> list[str]:
        seen: dict[str, None] = {}
        for r in rows:
            for j in _judgment_ids(r):
                seen[j] = None
        return list(seen)

    def summary(self) -> str:
        unit = "rows" if self.kind == "kto" else "pairs"
        out = (
            f"{len(self.train)} training {unit} from {self.train_questions} questions, "
            f"{len(self.eval)} held-out {unit} from {self.eval_questions} other questions"
        )
        if self.truncated:
            out += f"; passages shortened in {self.truncated} prompts to fit"
        return out


def _judgment_ids(row: dict[str, Any]) -> list[str]:
    ids = row.get("judgment_ids")
    if isinstance(ids, list) and ids:
        return [str(i) for i in ids]
    return [str(row["judgment_id"])] if row.get("judgment_id") else []


def selected_rows(
    store: PreferenceStore, kind: str, *, aggregate: str = "majority", same_prompt_only: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, str]], int]:
    """The rows `medchat export --format KIND` would write, what it left out, and how many judgments it read.

    The only call into the export code: when the export's selection changes, training follows.
    """
    from chatbot.labelling.export import SelectOptions, export

    result = export(store, kind, SelectOptions(aggregate=aggregate, same_prompt_only=same_prompt_only))
    judgments = len(result.excluded) + len({j for r in result.rows for j in _judgment_ids(r)})
    return result.rows, result.excluded, judgments


def question_of(row: dict[str, Any], questions: dict[str, str]) -> str:
    """The question a row answers, normalised: the split key (never one question on both sides)."""
    q = questions.get(str(row.get("comparison_id", "")))
    if q is None:
        q = row.get("question")
    if q is None:
        users = [m["content"] for m in row["prompt"] if m.get("role") == "user"]
        q = users[-1] if users else ""
    return " ".join(str(q).casefold().split())


def split_by_question(
    rows: list[dict[str, Any]], questions: dict[str, str], eval_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    keys = sorted({question_of(r, questions) for r in rows})
    random.Random(seed).shuffle(keys)
    n_eval = 0
    if eval_fraction > 0 and len(keys) >= 2:
        n_eval = min(len(keys) - 1, max(1, round(len(keys) * eval_fraction)))
    held = set(keys[:n_eval])
    train = [r for r in rows if question_of(r, questions) not in held]
    evald = [r for r in rows if question_of(r, questions) in held]
    return train, evald, len(keys) - n_eval, n_eval


def _reason_key(reason: str) -> str:
    return _ID.sub("…", reason)


# -- fitting prompts into max_length -----------------------------------------------------------


def count_tokens(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> int:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation_prompt)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    if out and isinstance(out[0], list):
        out = out[0]
    return len(out)


def _answer_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    text = "".join(m["content"] for m in messages)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 2  # the end-of-turn tokens


def _shorten_longest_passage(prompt: list[dict[str, str]], excess: int) -> list[dict[str, str]] | None:
    """A copy of the prompt with the longest passage of the last user message cut by about `excess` tokens."""
    idx = max((i for i, m in enumerate(prompt) if m.get("role") == "user"), default=None)
    if idx is None:
        return None
    content = prompt[idx]["content"]
    best: re.Match[str] | None = None
    for m in _PASSAGE.finditer(content):
        words = [w for w in m.group(2).split() if w != ELLIPSIS]
        if words and (best is None or len(words) > len([w for w in best.group(2).split() if w != ELLIPSIS])):
            best = m
    if best is None:
        return None
    words = [w for w in best.group(2).split() if w != ELLIPSIS]
    cut = min(len(words), max(4, math.ceil(excess / 1.2)))  # about 1.3 tokens a word in English
    kept = " ".join(words[: len(words) - cut])
    line = f"[{best.group(1)}] {kept} {ELLIPSIS}".replace("  ", " ")
    new = content[: best.start()] + line + content[best.end() :]
    return [*prompt[:idx], {**prompt[idx], "content": new}, *prompt[idx + 1 :]]


def fit_row(row: dict[str, Any], kind: str, tokenizer: Any, max_length: int) -> tuple[dict[str, Any], bool]:
    """Shorten passages (never the question or the answers) until prompt + answer fit `max_length` tokens.

    Returns the row and whether it was shortened; raises ValueError when even without passage
    text the question and answer take more than `max_length`.
    """
    answers = [row["completion"]] if kind == "kto" else [row["chosen"], row["rejected"]]
    longest = max(_answer_tokens(tokenizer, a) for a in answers)
    prompt = row["prompt"]
    shortened = False
    for _ in range(200):
        total = count_tokens(tokenizer, prompt, generation_prompt=True) + longest
        if total <= max_length:
            return ({**row, "prompt": prompt} if shortened else row), shortened
        smaller = _shorten_longest_passage(prompt, total - max_length)
        if smaller is None:
            raise ValueError(f"the question and answer alone do not fit --max-length {max_length}")
        prompt, shortened = smaller, True
    raise ValueError(f"the prompt could not be shortened to --max-length {max_length}")


def select(
    store: PreferenceStore,
    kind: str,
    *,
    tokenizer: Callable[[], Any] | Any,
    max_length: int,
    eval_fraction: float = 0.2,
    seed: int = 0,
    min_pairs: int = 8,
    aggregate: str = "majority",
    same_prompt_only: bool = False,
) -> Selection:
    """Rows to train and score on; raises TooFewPairsError with the counts when there are too few.

    `tokenizer` may be a function that loads it: too few judgments are then reported before any
    model file is touched.
    """
    if not 0 <= eval_fraction < 1:
        raise TrainingError(f"--eval-fraction must be at least 0 and below 1 (got {eval_fraction})")
    rows, excluded, seen = selected_rows(store, kind, aggregate=aggregate, same_prompt_only=same_prompt_only)
    reasons: Counter[str] = Counter(e.get("kind") or _reason_key(e["reason"]) for e in excluded)
    questions = {c.id: c.question for c in store.all_comparisons().values()}
    train, held, n_train_q, n_eval_q = split_by_question(rows, questions, eval_fraction, seed)
    versions = {j.id: j.guideline_version for j in store.judgments(status=None)}
    used = {versions[j] for r in rows for j in _judgment_ids(r) if j in versions}
    sel = Selection(kind, train, held, reasons, seen, n_train_q, n_eval_q, 0, sorted(used))
    _check_enough(sel, min_pairs, eval_fraction)  # before loading anything
    tok = tokenizer() if callable(tokenizer) and not hasattr(tokenizer, "apply_chat_template") else tokenizer
    for part in (sel.train, sel.eval):
        kept = []
        for row in part:
            try:
                row, cut = fit_row(row, kind, tok, max_length)
            except ValueError as e:
                reasons[str(e)] += 1
                continue
            sel.truncated += cut
            kept.append(row)
        part[:] = kept
    _check_enough(sel, min_pairs, eval_fraction)
    log.info("training selection: %s", sel.summary())
    return sel


def _check_enough(sel: Selection, min_pairs: int, eval_fraction: float) -> None:
    unit = "rows" if sel.kind == "kto" else "pairs"
    problem = ""
    if len(sel.train) < min_pairs:
        problem = f"only {len(sel.train)} usable training {unit} for {sel.kind} (need at least {min_pairs})"
    elif eval_fraction > 0 and not sel.eval:
        problem = (
            "all usable judgments are about one question, so none can be held out "
            "(the split is by question): judge more questions, or pass --eval-fraction 0"
        )
    elif sel.kind == "kto" and len({bool(r["label"]) for r in sel.train}) < 2:
        problem = "KTO needs both desirable and undesirable answers among the training rows"
    if not problem:
        return
    detail = ""
    if sel.excluded:
        parts = "; ".join(f"{n} {reason}" for reason, n in sel.excluded.most_common())
        detail = f"; {sum(sel.excluded.values())} left out of {sel.judgments_seen} judgments: {parts}"
    held = f" ({len(sel.eval)} more held out for scoring)" if sel.eval else ""
    raise TooFewPairsError(
        f"{problem}{held}{detail}. Collect more judgments in the Compare tab (A or B preferred, "
        f"not ties), or lower --min-pairs"
    )
