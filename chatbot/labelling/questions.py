"""Reading a file of questions for the labelling queue (`medchat prefs load-questions`).

Text (one question a line), JSONL or YAML (a list, or `questions:` holding one); an item is a
question or a mapping with `question`, optional `gold: {better, worse}` and `overlap`. Everything is
checked before anything is queued: a bad file queues nothing and gets one sentence naming the file,
the line or item, and the remedy. Text is normalised as typed questions are (`chatbot.textnorm`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import ConfigError, InputTooLargeError
from chatbot.limits import load_yaml
from chatbot.textnorm import normalise

if TYPE_CHECKING:
    from chatbot.settings import LimitsSettings

MAX_OVERLAP = 20
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _decode(path: Path, raw: bytes) -> str:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise ConfigError(f"{path} starts like {encoding} text but is not: save it as UTF-8") from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}; Latin-1 or UTF-16 without "
            "a byte-order mark?): save it as UTF-8 and load it again"
        ) from e


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_question_file(path: Path, limits: LimitsSettings | None = None) -> list[dict[str, Any]]:
    """The checked, normalised items of a question file; raises `ConfigError`/`InputTooLargeError`.

    The one reader of question files: `medchat prefs load-questions` and the store's callers use it
    (an older, laxer copy lived in the store module). `limits` default to the settings' defaults.
    """
    if limits is None:
        from chatbot.settings import LimitsSettings

        limits = LimitsSettings()

    if not path.is_file():
        raise ConfigError(f"no question file at {path}")
    size = path.stat().st_size
    if size > limits.question_file_mb * 1_000_000:
        raise InputTooLargeError(
            f"{path} is {size / 1_000_000:,.1f} MB, over the limit of {limits.question_file_mb:g} MB for a "
            "question file: split it (an admin can raise MEDCHAT_LIMITS__QUESTION_FILE_MB)"
        )
    text = _decode(path, path.read_bytes())
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if "\x00" in line:
            raise ConfigError(
                f"{path}, line {number}: contains a NUL byte, so it is not a text file (or is UTF-16 "
                "without a byte-order mark): save it as UTF-8 text"
            )
        if len(line) > limits.question_file_line_chars:
            raise InputTooLargeError(
                f"{path}, line {number}: {len(line):,} characters, over the limit of "
                f"{limits.question_file_line_chars:,} for a line: shorten it "
                "(an admin can raise MEDCHAT_LIMITS__QUESTION_FILE_LINE_CHARS)"
            )
    items: list[Any]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        items = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as e:
                raise ConfigError(f"{path}, line {number}: not valid JSON ({e}); fix the line") from e
    elif path.suffix.lower() in (".yaml", ".yml"):
        loaded = load_yaml(text, path)  # no aliases: a YAML bomb is refused at once
        listed = loaded.get("questions") if isinstance(loaded, dict) else loaded
        if not isinstance(listed, list | None):
            raise ConfigError(f"{path}: expected a list of questions (or `questions:` holding one)")
        items = listed or []
    else:
        items = [line for line in lines if line.strip()]
    out = [_item(path, n, item, limits) for n, item in enumerate(items, start=1)]
    if not out:
        raise ConfigError(f"{path} holds no questions")
    return out


def _item(path: Path, n: int, item: Any, limits: LimitsSettings) -> dict[str, Any]:
    where = f"{path}, item {n}"
    if isinstance(item, str):
        item = {"question": item}
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a question or a mapping with `question`, got {_short(item)}")
    question = item.get("question")
    if not isinstance(question, str):
        got = "nothing" if question is None else f"{type(question).__name__} {_short(question)}"
        raise ConfigError(f"{where}: `question` must be text, got {got}")
    question = normalise(question).strip()
    if not question:
        raise ConfigError(f"{where} has an empty question")
    if len(question) > limits.question_chars:
        raise InputTooLargeError(
            f"{where}: the question is {len(question):,} characters long, over the limit of "
            f"{limits.question_chars:,}: shorten it (an admin can raise MEDCHAT_LIMITS__QUESTION_CHARS)"
        )
    out: dict[str, Any] = {"question": question}
    gold = item.get("gold")
    if gold is not None:
        texts = [gold.get(k) for k in ("better", "worse")] if isinstance(gold, dict) else []
        better, worse = texts if len(texts) == 2 else [None, None]
        if not (isinstance(better, str) and isinstance(worse, str) and better.strip() and worse.strip()):
            raise ConfigError(
                f"{where}: a gold item needs `gold: {{better: <answer text>, worse: <answer text>}}`, "
                f"got {_short(gold)}"
            )
        out["gold"] = {"better": normalise(better).strip(), "worse": normalise(worse).strip()}
    if "overlap" in item:
        overlap = item["overlap"]
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= MAX_OVERLAP:
            raise ConfigError(
                f"{where}: `overlap` must be a whole number from 1 to {MAX_OVERLAP} (annotators per item), "
                f"got {_short(overlap)}"
            )
        out["overlap"] = overlap
    return out
