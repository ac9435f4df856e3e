"""Named answer variants for side-by-side comparison, read from a YAML file.

A variant fixes the prompt parts, the retrieval k and the generation settings
(temperature, top_p, max_new_tokens, seed); the engine and model come from the
settings, so with only the bundled model variants differ in prompts, k and
temperature. `VariantRunner` turns a variant into a `Chain` that shares the
base chain's settings, retriever, triage and engine (one model in memory for all variants);
its k and generation settings travel with each request (`RetrievalParams`,
`GenerationParams`), so no settings are copied. A question is admitted (and triaged) once
by the base chain, and that admission is what every variant answers. A variant with
`best_of: {n, reward_model, temperature}` answers through `best_of.BestOfChain`: N answers to
one prompt, the reward model's favourite served (its reward model is checked when the runner
is built, so a missing one stops the app or `prefs prepare` with the command that makes it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.engines.base import GenerationParams
from chatbot.errors import ConfigError

if TYPE_CHECKING:
    from chatbot.chain import Admitted, Answer, AnswerStream, Chain
    from chatbot.labelling.best_of import BestOf
    from chatbot.retrieval import RetrievalParams

log = logging.getLogger(__name__)

_GENERATION_KEYS = {"temperature", "top_p", "top_k", "max_new_tokens", "repeat_penalty", "seed", "grounding"}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str = ""
    prompt: dict[str, str] = field(default_factory=dict)
    """Prompt part -> file stem; parts left out come from the settings."""
    k: int | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    """Optional own model: `engine` (llamacpp or transformers) and `path` (e.g. a `medchat train` result)."""
    best_of: BestOf | None = None
    """Optional: write N answers and serve the one this reward model scores highest."""

    def params(self, base: GenerationParams) -> GenerationParams:
        params = replace(base, **self.generation)
        if self.best_of:  # what the N answers are sampled with (seeds seed .. seed+N-1)
            params = replace(params, temperature=self.best_of.temperature)
        return params

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "prompt": dict(self.prompt),
            "k": self.k,
            "generation": dict(self.generation),
            **({"model": dict(self.model)} if self.model else {}),
            **({"best_of": self.best_of.as_dict()} if self.best_of else {}),
        }


def parse_variants(data: Any, *, where: str = "variants file") -> list[Variant]:
    from chatbot.labelling.best_of import parse_best_of
    from prompts import PARTS

    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict) or not data["variants"]:
        raise ConfigError(f"{where}: expected a mapping `variants:` with at least one named variant")
    out = []
    for name, spec in data["variants"].items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: variant {name!r} must be a mapping")
        unknown = set(spec) - {"description", "prompt", "retrieval", "generation", "model", "best_of"}
        if unknown:
            raise ConfigError(f"{where}: variant {name!r} has unknown keys {sorted(unknown)}")
        prompt = dict(spec.get("prompt") or {})
        bad_parts = set(prompt) - set(PARTS)
        if bad_parts:
            raise ConfigError(f"{where}: variant {name!r} names unknown prompt parts {sorted(bad_parts)}")
        retrieval = dict(spec.get("retrieval") or {})
        if set(retrieval) - {"k"}:
            raise ConfigError(f"{where}: variant {name!r}: only `k` may be set under retrieval")
        k = retrieval.get("k")
        if k is not None and not (isinstance(k, int) and 1 <= k <= 64):
            raise ConfigError(f"{where}: variant {name!r}: retrieval k must be an integer from 1 to 64")
        generation = dict(spec.get("generation") or {})
        extra = sorted(set(generation) - _GENERATION_KEYS)
        if extra:
            raise ConfigError(f"{where}: variant {name!r}: unknown generation keys {extra}")
        model = dict(spec.get("model") or {})
        if model and (
            set(model) - {"engine", "path"}
            or model.get("engine") not in ("llamacpp", "transformers")
            or not model.get("path")
        ):
            raise ConfigError(
                f"{where}: variant {name!r}: `model` needs `engine` (llamacpp or transformers) and `path`"
            )
        own = {key: str(value) for key, value in model.items()}
        best_of = None
        if spec.get("best_of") is not None:
            best_of = parse_best_of(spec["best_of"], variant=str(name), where=where)
            if generation.get("grounding") == "extractive":
                raise ConfigError(
                    f"{where}: variant {name!r}: best_of needs a model's answers, and grounding extractive "
                    "writes none: set generation grounding to free or checked"
                )
        description = str(spec.get("description", ""))
        out.append(Variant(str(name), description, prompt, k, generation, own, best_of))
    return out


def load_variants(path: Path) -> list[Variant]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"no variants file at {path}: set MEDCHAT_PREFS__VARIANTS_FILE to a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    return parse_variants(data, where=str(path))


@dataclass
class VariantRun:
    variant: Variant
    params: GenerationParams
    retrieval: RetrievalParams
    stream: AnswerStream


class VariantRunner:
    """Chains for variants that share the base chain's retriever and engine."""

    def __init__(self, chain: Chain, variants: Sequence[Variant]) -> None:
        if len(variants) < 2:
            raise ConfigError("comparing needs at least two variants in the variants file")
        self.chain = chain
        self.variants = {v.name: v for v in variants}
        self._chains: dict[str, Chain] = {}
        for v in variants:
            if v.best_of:  # said now, not at the first question an annotator is served
                from chatbot.labelling.best_of import reward_model_dir

                reward_model_dir(chain.settings.models_dir, v.best_of, v.name)

    def chain_for(self, name: str) -> Chain:
        from chatbot.chain import Chain

        if name not in self._chains:
            v = self.variants[name]
            base = self.chain
            settings = base.settings
            engine = base.engine
            if v.model:  # a variant with its own model (e.g. trained by `medchat train --register`)
                from chatbot.engines import get_engine

                gen = settings.generation.model_copy(
                    update={"engine": v.model["engine"], "model_path": Path(v.model["path"]).expanduser()}
                )
                engine = get_engine(gen, models_dir=settings.models_dir)
            shared: dict[str, Any] = {
                "retriever": base.retriever,
                "engine": engine,
                "variant": replace(base.variant, **v.prompt),
                "triage": base.triage,
            }
            if v.best_of:
                from chatbot.labelling.best_of import BestOfChain

                self._chains[name] = BestOfChain(settings, best_of=v.best_of, name=name, **shared)
            else:
                self._chains[name] = Chain(settings, **shared)
        return self._chains[name]

    def params_for(self, name: str) -> GenerationParams:
        base = GenerationParams.from_settings(self.chain.settings.generation)
        return self.variants[name].params(base)

    def retrieval_for(self, name: str) -> RetrievalParams:
        """The shared retriever, asked for this variant's number of passages (the chain's default,
        the settings' k, if the variant sets none)."""
        from chatbot.retrieval import RetrievalParams

        return RetrievalParams(self.variants[name].k)

    def admit(self, question: str) -> Admitted:
        """The question let in (limits, normalisation, triage) once, for every variant that answers it."""
        return self.chain.admit(question)

    def dress(self, question: str, text: str, *, admitted: Admitted | None = None) -> Answer:
        """A written answer (a gold item's) given sources the way a generated one gets them: the
        passages retrieved for the question, and citations where a sentence is supported by one.
        Before the vote, a gold pair must not stand out by showing no sources at all."""
        turn = self.chain.evidence(admitted or self.admit(question))
        if turn.done:  # no evidence (or an emergency): the written text, without sources
            answer = turn.answer
            assert answer is not None
            answer.abstained = answer.emergency = False
            answer.passages, answer.text = [], text
            return turn.finish()
        # checked and marked as a model's free answer is: nothing sets it apart
        answer = self.chain.check(turn, text, grounding="free")
        answer.model, answer.quantization = "gold", ""
        return answer

    def run(self, name: str, question: str, *, admitted: Admitted | None = None) -> VariantRun:
        """Variant `name`'s answer to `question`, streamed; pass `admitted` (from `admit`) when several
        variants answer one question, so it is triaged once."""
        params, retrieval = self.params_for(name), self.retrieval_for(name)
        stream = self.chain_for(name).stream(
            question, params=params, retrieval=retrieval, admitted=admitted or self.admit(question)
        )
        return VariantRun(self.variants[name], params, retrieval, stream)
