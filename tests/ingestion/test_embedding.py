"""The real MiniLM embedder: batches of similar token length, the same vectors in the caller's order."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

# Characters per token vary a lot: digits and units cost a token each, common words one per word.
TEXTS = [
    "Hypertension is treated with lifestyle change and, where needed, medication.",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 mg/dL",
    "Asthma.",
    "Warfarin interacts with vitamin K; INR 2.0-3.0 is the usual target range for most patients.",
    "a" * 300,
    "Migraine with aura may raise the risk of stroke in people who smoke.",
    "HbA1c ≥ 6.5% (48 mmol/mol) on two tests confirms type 2 diabetes.",
    "Short.",
    "The patient was given 5 mg, then 2.5 mg, then 1.25 mg over 3 days (q24h).",
    "Metformin is the usual first medicine for type 2 diabetes in adults without contraindications.",
]


def _tokens(embedder, texts: list[str]) -> list[int]:
    ids = embedder._model.tokenizer(texts, truncation=True, max_length=embedder.max_tokens)["input_ids"]
    return [len(i) for i in ids]


def test_vectors_come_back_in_the_callers_order_as_if_embedded_one_by_one(embedder, monkeypatch):
    monkeypatch.setattr(embedder, "batch_size", 3)
    together = embedder.embed_documents(TEXTS)
    assert together.shape == (len(TEXTS), 384) and together.dtype == np.float32
    alone = np.stack([embedder.embed_documents([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_batches_are_grouped_by_token_length_not_characters(embedder, monkeypatch):
    monkeypatch.setattr(embedder, "batch_size", 3)
    batches: list[list[str]] = []
    real = embedder._encode

    def spy(texts: list[str]):
        batches.append(list(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "_encode", spy)
    embedder.embed_documents(TEXTS)
    assert sorted(t for b in batches for t in b) == sorted(TEXTS)
    lengths = [_tokens(embedder, b) for b in batches]
    for longer, shorter in itertools.pairwise(lengths):
        assert min(longer) >= max(shorter), lengths
    # the same texts sorted by characters would pad more: the order really is by tokens
    by_chars = sorted(TEXTS, key=len, reverse=True)
    padded = sum(max(n) * len(n) for n in lengths)
    padded_chars = sum(
        max(n) * len(n) for n in (_tokens(embedder, by_chars[i : i + 3]) for i in range(0, len(TEXTS), 3))
    )
    assert padded < padded_chars


@pytest.mark.parametrize("texts", [[], ["one passage"]])
def test_empty_and_single_inputs(embedder, texts):
    out = embedder.embed_documents(texts)
    assert len(out) == len(texts)


def test_a_model_without_a_usable_tokenizer_is_ordered_by_characters(embedder, monkeypatch):
    monkeypatch.setattr(embedder, "batch_size", 3)

    class NoTokenizer:
        tokenizer = None  # as for a model whose first module is not a Hugging Face transformer

        def __getattr__(self, name):
            return getattr(real_model, name)

    real_model = embedder._model
    expected = embedder.embed_documents(TEXTS)
    monkeypatch.setattr(embedder, "_model", NoTokenizer())
    order = embedder._longest_first(TEXTS)
    assert [len(TEXTS[i]) for i in order] == sorted((len(t) for t in TEXTS), reverse=True)
    np.testing.assert_allclose(embedder.embed_documents(TEXTS), expected, atol=2e-5)
