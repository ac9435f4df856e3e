"""The trained head: a small classifier over the MiniLM sentence vector, stored as one .npz file.

The file holds the layer weights, the three levels in order, the encoder it was trained on (id and
dimension), the thresholds chosen on the dev split, and a sample of labelled training messages
(int8 vectors and texts) so that every decision can name its nearest labelled examples. It is
read with `allow_pickle=False`: nothing in it can run code.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import MedchatError

LEVELS = ("emergency", "urgent", "routine")
HEAD_FILE = Path(__file__).resolve().parent / "head.npz"
FORMAT = 1
RETRAIN = (
    "`python -m chatbot.triage.train --encoder tuned` (tuned.npz, the default: about 40 minutes on 2 CPU "
    "cores) or `python -m chatbot.triage.train` (head.npz, the frozen encoder's head: about a minute)"
)


class TriageModelError(MedchatError):
    """The triage classifier file is missing, unreadable or made for another encoder."""


@dataclass(frozen=True)
class Neighbour:
    text: str
    level: str
    category: str
    similarity: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "level": self.level,
            "category": self.category,
            "similarity": round(self.similarity, 3),
        }


def neighbour_share(similarities: Any, is_emergency: Any, k: int, sharpness: float) -> Any:
    """Per row of `similarities` (messages x labelled examples): the share of emergencies among the
    k most similar examples, each weighted by exp(sharpness x similarity)."""
    import numpy as np

    sims = np.asarray(similarities, dtype=np.float64)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    near = np.take_along_axis(sims, top, axis=1)
    weight = np.exp(sharpness * (near - near[:, :1]))  # shifted by the best: no overflow
    return (weight * np.asarray(is_emergency)[top]).sum(axis=1) / weight.sum(axis=1)


def blend(pe: Any, share: Any, weight: float) -> Any:
    """The emergency score: (1 - weight) x P(emergency) + weight x the neighbours' share."""
    return (1.0 - weight) * pe + weight * share


@dataclass
class Head:
    """Layer weights (numpy arrays), thresholds and labelled examples; inference in numpy only."""

    weights: list[tuple[Any, Any]]
    encoder: str
    dim: int
    thresholds: dict[str, float]
    features: list[str] = field(default_factory=list)
    """Names of the rule features that follow the vector in the input (see `features.py`)."""
    meta: dict[str, Any] = field(default_factory=dict)
    example_vectors: Any = None  # int8, one row per example, scaled by 127
    example_texts: list[str] = field(default_factory=list)
    example_levels: list[str] = field(default_factory=list)
    example_categories: list[str] = field(default_factory=list)
    adapter: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Low-rank factors (A, B) per adapted encoder layer, for a head trained on a fine-tuned encoder
    (`tune.py`); empty for a head on the plain encoder's vectors."""
    _decoded: Any = field(default=None, repr=False, compare=False)
    _levels: Any = field(default=None, repr=False, compare=False)

    # -- inference -------------------------------------------------------------------------

    def probabilities(self, vector: Any, extra: Any = ()) -> dict[str, float]:
        """P(level) for one unit-length sentence vector and its rule features."""
        import numpy as np

        x = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != self.dim:
            raise TriageModelError(
                f"the triage classifier expects {self.dim}-dimensional vectors from {self.encoder}, "
                f"got {x.shape[1]}: use that encoder or retrain with {RETRAIN}"
            )
        x = np.hstack([x, np.asarray(extra, dtype=np.float32).reshape(1, -1)])
        for n, (w, b) in enumerate(self.weights):
            x = np.einsum("ij,jk->ik", x, w) + b  # no BLAS thread pool (see `_similarities`)
            if n < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        z = x[0] - x[0].max()
        p = np.exp(z) / np.exp(z).sum()
        return {level: float(p[i]) for i, level in enumerate(LEVELS)}

    def similarities(self, vectors: Any) -> Any:
        """Cosine similarity of a vector (or each row of a matrix) to every stored example (the
        examples decoded once, then cached). One decision computes it once and hands it to
        `emergency_score`, `nearest` and `nearest_category`."""
        import numpy as np

        if self.example_vectors is None:  # a file without examples: nothing is near
            return np.zeros((*np.shape(vectors)[:-1], 0), dtype=np.float32)
        if self._decoded is None:
            self._decoded = self.example_vectors.astype(np.float32) / 127.0
        # einsum, not `@`: a BLAS call hands this small product to its thread pool, which on a
        # busy CPU costs tens of milliseconds; einsum's plain loop takes about 0.5 ms
        return np.einsum("ij,...j->...i", self._decoded, np.asarray(vectors, dtype=np.float32))

    def levels(self) -> Any:
        """The examples' levels as an array (built once)."""
        import numpy as np

        if self._levels is None:
            self._levels = np.asarray(self.example_levels)
        return self._levels

    def emergency_score(self, sims: Any, pe: float) -> tuple[float, float | None]:
        """The score the emergency thresholds apply to, and the neighbours' share (None without),
        given the message's `similarities`.

        A head whose meta has `neighbours` ({"k", "weight", "sharpness"}) blends P(emergency) with
        the similarity-weighted share of emergencies among the k nearest labelled examples
        (`neighbour_share`); any other head's score is P(emergency) itself."""
        knn = self.meta.get("neighbours")
        if not knn or self.example_vectors is None or not len(self.example_levels):
            return pe, None
        share = float(
            neighbour_share(sims[None, :], self.levels() == "emergency", knn["k"], knn["sharpness"])[0]
        )
        return float(blend(pe, share, knn["weight"])), share

    def nearest(self, sims: Any, k: int = 3) -> list[Neighbour]:
        """The k labelled examples nearest the message, given its `similarities`."""
        import numpy as np

        if self.example_vectors is None or not len(self.example_texts):
            return []
        top = np.argsort(-sims)[:k]
        return [
            Neighbour(
                self.example_texts[i], self.example_levels[i], self.example_categories[i], float(sims[i])
            )
            for i in top
        ]

    def nearest_category(self, sims: Any, level: str, k: int = 5, among: Collection[str] = ()) -> str:
        """The most common category among the k nearest labelled examples of `level` (with `among`,
        only examples whose category is one of those: hand-written examples name their own), given
        the message's `similarities`."""
        import numpy as np

        if self.example_vectors is None:
            return ""
        keep = self.levels() == level
        if among:
            keep &= np.isin(np.asarray(self.example_categories), list(among))
        idx = np.flatnonzero(keep)
        if not len(idx):
            return ""
        top = idx[np.argsort(-sims[idx])[:k]]
        cats = [self.example_categories[i] for i in top]
        return max(cats, key=lambda c: (cats.count(c), -cats.index(c)))

    # -- storage ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        import numpy as np

        arrays: dict[str, Any] = {}
        for n, (w, b) in enumerate(self.weights):
            arrays[f"w{n}"] = np.asarray(w, dtype=np.float32)
            arrays[f"b{n}"] = np.asarray(b, dtype=np.float32)
        header = {
            "format": FORMAT,
            "levels": list(LEVELS),
            "encoder": self.encoder,
            "dim": self.dim,
            "features": self.features,
            "layers": len(self.weights),
            "thresholds": self.thresholds,
            "meta": self.meta,
        }
        for n, (_name, (a, b)) in enumerate(sorted(self.adapter.items())):
            arrays[f"adapter{n}_a"] = np.asarray(a, dtype=np.float16)
            arrays[f"adapter{n}_b"] = np.asarray(b, dtype=np.float16)
        header["adapter_layers"] = sorted(self.adapter)
        arrays["header"] = np.array(json.dumps(header))
        if self.example_vectors is not None:
            arrays["example_vectors"] = np.asarray(self.example_vectors, dtype=np.int8)
            arrays["example_texts"] = np.array(self.example_texts)
            arrays["example_levels"] = np.array(self.example_levels)
            arrays["example_categories"] = np.array(self.example_categories)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path = HEAD_FILE, *, encoder: str | None = None, dim: int | None = None) -> Head:
        """The head in `path`; a missing or foreign file, or one from another encoder, is a
        `TriageModelError` that says what to do (never a silent pass)."""
        import numpy as np

        if not path.is_file():
            raise TriageModelError(
                f"the triage classifier file {path} is missing: reinstall medchat or recreate it "
                f"with {RETRAIN}"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                if header.get("format") != FORMAT or tuple(header.get("levels", ())) != LEVELS:
                    raise ValueError(f"format {header.get('format')}, levels {header.get('levels')}")
                weights = [(data[f"w{n}"], data[f"b{n}"]) for n in range(int(header["layers"]))]
                examples = "example_vectors" in data.files
                head = cls(
                    weights=weights,
                    encoder=str(header["encoder"]),
                    dim=int(header["dim"]),
                    thresholds={k: float(v) for k, v in header["thresholds"].items()},
                    features=[str(f) for f in header.get("features", [])],
                    meta=dict(header.get("meta", {})),
                    example_vectors=data["example_vectors"] if examples else None,
                    example_texts=[str(t) for t in data["example_texts"]] if examples else [],
                    example_levels=[str(t) for t in data["example_levels"]] if examples else [],
                    example_categories=[str(t) for t in data["example_categories"]] if examples else [],
                    adapter={
                        str(name): (data[f"adapter{n}_a"], data[f"adapter{n}_b"])
                        for n, name in enumerate(header.get("adapter_layers", []))
                    },
                )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TriageModelError(
                f"the triage classifier file {path} is not a medchat triage head ({e}): "
                f"recreate it with {RETRAIN}"
            ) from e
        if head.weights[0][0].shape[0] != head.dim + len(head.features) or head.weights[-1][0].shape[
            1
        ] != len(LEVELS):
            raise TriageModelError(
                f"the triage classifier file {path} is damaged (layer shapes do not match): recreate it "
                f"with {RETRAIN}"
            )
        if "emergency" not in head.thresholds or "urgent" not in head.thresholds:
            raise TriageModelError(
                f"the triage classifier file {path} has no thresholds: recreate it with {RETRAIN}"
            )
        from chatbot.triage.features import names

        if head.features != names():
            raise TriageModelError(
                f"the triage classifier {path} was trained on other rule features than the rules in "
                f"chatbot/safety/emergency.py now have: recreate it with {RETRAIN}"
            )
        if encoder is not None and head.encoder != encoder:
            raise TriageModelError(
                f"the triage classifier {path} was trained on vectors from {head.encoder}, but the "
                f"encoder in use is {encoder}: set MEDCHAT_EMBEDDING__MODEL back to that encoder, "
                f"or retrain with {RETRAIN}"
            )
        if dim is not None and head.dim != dim:
            raise TriageModelError(
                f"the triage classifier {path} expects {head.dim}-dimensional vectors, "
                f"the encoder gives {dim}: "
                f"retrain it with {RETRAIN}"
            )
        return head
