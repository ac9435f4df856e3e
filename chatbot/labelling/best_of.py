"""Best-of-N: a variant that writes N answers and serves the one a reward model scores highest.

Llama 2 sampled several answers and kept the reward model's favourite (rejection sampling) before
it did any PPO; it is the cheaper lever: no policy is trained, only the reward model (`medchat train
reward`) on the same judgments. A variant asks for it in the variants file:

    best_of: {n: 4, reward_model: rm-1, temperature: 0.7}

`BestOfChain` answers such a variant: the question is admitted, retrieved and prompted once; the
engine writes N answers to that one prompt (seeds seed .. seed+N-1, the given temperature); each goes
through the citation and grounding check as any answer does; the reward model scores what each would
show (the text the annotators judged, which is what it learned from), all N in one batch; the best is
the answer. Its `best_of` keeps the candidates, their scores and the index chosen, and its timings
the added latency (`best_of_added_s`: everything beyond one generation and its check). Nothing can
be shown before all N are scored: the stream says so in `status` and then yields the chosen answer.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.chain import AnswerStream, Chain
from chatbot.engines.base import GenerationParams
from chatbot.errors import ConfigError

if TYPE_CHECKING:
    from chatbot.chain import Admitted, Answer, Turn
    from chatbot.retrieval import Filters, RetrievalParams

log = logging.getLogger(__name__)

N_RANGE = (2, 16)
DEFAULT_TEMPERATURE = 0.7
Messages = list[dict[str, str]]
Scorer = Callable[[Messages, Sequence[str]], list[float]]
"""(prompt messages, answer texts) -> one reward score per answer."""


@dataclass(frozen=True)
class BestOf:
    n: int
    reward_model: str
    """A run name under the models folder (`medchat train reward --name NAME`)."""
    temperature: float = DEFAULT_TEMPERATURE

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "reward_model": self.reward_model, "temperature": self.temperature}


def parse_best_of(spec: Any, *, variant: str, where: str) -> BestOf:
    """The `best_of:` mapping of one variant, checked; each error is one line naming the variant."""
    at = f"{where}: variant {variant!r}: best_of"
    if not isinstance(spec, dict):
        raise ConfigError(f"{at} must be a mapping, e.g. {{n: 4, reward_model: rm-1, temperature: 0.7}}")
    extra = sorted(set(spec) - {"n", "reward_model", "temperature"})
    if extra:
        raise ConfigError(f"{at} has unknown keys {extra}: only n, reward_model and temperature")
    n = spec.get("n")
    lo, hi = N_RANGE
    if isinstance(n, bool) or not isinstance(n, int) or not lo <= n <= hi:
        raise ConfigError(f"{at}: n must be an integer from {lo} to {hi} (answers written per question)")
    name = spec.get("reward_model")
    if not isinstance(name, str) or not name or "/" in name or ".." in name:
        raise ConfigError(
            f"{at}: reward_model must name a run in the models folder, e.g. `reward_model: rm-1` "
            "after `medchat train reward --name rm-1`"
        )
    temperature = spec.get("temperature", DEFAULT_TEMPERATURE)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 < temperature <= 2:
        raise ConfigError(
            f"{at}: temperature must be above 0 and at most 2 (0 would write the same answer N times)"
        )
    return BestOf(n, name, float(temperature))


def reward_model_dir(models_dir: Path, best_of: BestOf, variant: str) -> Path:
    """The reward model's folder (`models_dir/NAME/merged`), or a one-line error saying what to run."""
    name = best_of.reward_model
    run = Path(models_dir) / name
    merged = run / "merged"
    config = merged / "config.json"
    first = f"variant {variant!r}: best_of reward model {name!r}"
    if not config.is_file():
        why = "is not finished (no merged model)" if run.is_dir() else f"is not in {models_dir}"
        raise ConfigError(f"{first} {why}: run `medchat train reward --name {name}` first")
    try:
        arch = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError) as e:
        raise ConfigError(f"{first}: {config} cannot be read ({e}): train it again") from e
    if not any(str(a).endswith("ForSequenceClassification") for a in arch):
        raise ConfigError(
            f"{first} is a {', '.join(map(str, arch)) or 'model'} (it writes text, not scores): name a "
            f"run of `medchat train reward`, e.g. `medchat train reward --name {name}-rm`"
        )
    return merged


# -- the reward model ------------------------------------------------------------------------------


class RewardScorer:
    """A reward model loaded once (float32 on the CPU), scoring several answers to one prompt in one
    batch. Prompts are shortened to the length it was trained on the way training shortens them
    (the longest passage first, never the question or the answers)."""

    def __init__(self, merged: Path) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = merged
        self.tokenizer = AutoTokenizer.from_pretrained(str(merged), local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(merged), dtype=torch.float32, local_files_only=True
        )
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.max_length = _trained_length(merged.parent)
        self._lock = threading.Lock()

    def __call__(self, prompt: Messages, answers: Sequence[str]) -> list[float]:
        import torch

        from chatbot.training.data import fit_row
        from chatbot.training.scoring import chat_ids

        if not answers:
            return []
        longest = [{"role": "assistant", "content": max(answers, key=len)}]
        if self.max_length:
            try:
                row, _ = fit_row({"prompt": prompt, "chosen": longest, "rejected": longest}, "reward",
                                 self.tokenizer, self.max_length)  # fmt: skip
                prompt = row["prompt"]
            except ValueError:  # question and answer alone are longer: score them whole
                pass
        ids = [
            chat_ids(self.tokenizer, [*prompt, {"role": "assistant", "content": a}], generation_prompt=False)
            for a in answers
        ]
        width = max(len(x) for x in ids)
        pad = int(self.tokenizer.pad_token_id)
        batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        with self._lock, torch.no_grad():
            logits = self.model(input_ids=batch, attention_mask=mask).logits
        return [float(v) for v in logits[:, 0]]


def _trained_length(run: Path) -> int | None:
    try:
        card = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        return int(card["hyperparameters"]["max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_SCORERS: dict[Path, RewardScorer] = {}
_SCORERS_LOCK = threading.Lock()


def get_scorer(merged: Path) -> RewardScorer:
    """One loaded reward model per folder and process, for every variant and user."""
    key = Path(merged).resolve()
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = RewardScorer(key)
        return _SCORERS[key]


# -- the chain ----------------------------------------------------------------------------------


class BestOfChain(Chain):
    """A chain whose answer is the best of N written to the same prompt (see the module's text)."""

    def __init__(
        self, *args: Any, best_of: BestOf, scorer: Scorer | None = None, name: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.best_of = best_of
        self.name = name or f"best of {best_of.n}"
        """The variant's name, for errors."""
        self._scorer = scorer

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            merged = reward_model_dir(self.settings.models_dir, self.best_of, self.name)
            self._scorer = get_scorer(merged)
        return self._scorer

    def status(self) -> str:
        n = self.best_of.n
        return (
            f"Writing {n} answers and choosing the best (reward model {self.best_of.reward_model}): "
            f"the answer appears once all {n} are written and scored…"
        )

    def stream(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
        params: GenerationParams | None = None,
        retrieval: RetrievalParams | None = None,
        admitted: Admitted | None = None,
    ) -> AnswerStream:
        turn = self._start(admitted or self.admit(question, history=history), retrieval, filters, params)
        self.gate_step(turn)
        if not turn.done:
            _ = self.retriever  # a missing index raises here, before streaming starts
        stream = AnswerStream(lambda holder: self._best(turn, holder))
        stream.emergency = turn.done
        stream.status = "" if turn.done else self.status()
        return stream

    def _best(self, turn: Turn, holder: AnswerStream) -> Iterator[str]:
        self._gather(turn)
        if not turn.done:
            self.prompt_step(turn)
        mode = self.grounding_of(turn)
        if turn.done or mode == "extractive":  # no model answer to choose among: the chain's own
            yield from self._run(turn, holder)
            return
        assert turn.prompt is not None and turn.answer is not None
        base = turn.params or GenerationParams.from_settings(self.settings.generation)
        engine = self.engine
        t0 = time.perf_counter()
        answers: list[Answer] = []
        spent: list[float] = []
        generated: list[float] = []
        for i in range(self.best_of.n):
            t = time.perf_counter()
            params = replace(base, seed=base.seed + i, temperature=self.best_of.temperature)
            pieces = engine.stream(turn.prompt.messages, params)
            try:
                raw = "".join(pieces)
            finally:
                getattr(pieces, "close", lambda: None)()
            generated.append(time.perf_counter() - t)
            written = replace(turn.answer, model=engine.name, quantization=engine.quantization)
            one = replace(turn, answer=written, pieces=[], timings=dict(turn.timings), quoted=[])
            answers.append(self.check(one, raw, grounding=mode))
            spent.append(time.perf_counter() - t)
            yield ""  # nothing to show yet; a caller may stop (close the stream) between answers
        t = time.perf_counter()
        prompt = [{"role": m.role, "content": m.content} for m in turn.prompt.messages]
        scores = [float(s) for s in self.scorer(prompt, [a.text for a in answers])]
        scored = time.perf_counter() - t
        if len(scores) != len(answers):
            raise RuntimeError(f"the reward model gave {len(scores)} scores for {len(answers)} answers")
        chosen = max(range(len(scores)), key=lambda i: scores[i])  # the first of equal best
        answer = answers[chosen]
        answer.best_of = {
            **self.best_of.as_dict(),
            "seeds": [base.seed + i for i in range(self.best_of.n)],
            "scores": [round(s, 6) for s in scores],
            "chosen": chosen,
            "candidates": [a.text for a in answers],
            "raw_candidates": [a.raw_text for a in answers],
            "seconds": [round(s, 4) for s in spent],
        }
        now = time.perf_counter()
        timings = dict(answer.timings)
        timings |= {
            "generate_s": sum(generated),
            "first_token_s": now - t0,  # the first word shown is the chosen answer's
            "best_of_score_s": scored,
            "best_of_one_s": statistics.fmean(spent),
            "best_of_added_s": sum(spent) - statistics.fmean(spent) + scored,
            "total_s": now - turn.started,
        }
        answer.timings = {k: round(v, 4) for k, v in timings.items()}
        holder.answer = answer
        log.info("best of %d: scores %s, chose %d", len(scores), answer.best_of["scores"], chosen)
        yield answer.text
