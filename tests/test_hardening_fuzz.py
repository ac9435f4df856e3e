"""Issue #30: a fuzzing harness (Hypothesis). Readers, ingestion, CLI options and HTTP routes get
generated input; each must answer with a result or medchat's own one-line error, never a traceback.

The tests run a bounded number of cases (`MEDCHAT_FUZZ_EXAMPLES`, default 25 per target);
`python bench/fuzz.py` runs the same targets with many more and records counts and peak memory.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.errors import MedchatError

EXAMPLES = int(os.environ.get("MEDCHAT_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("MEDCHAT_FUZZ_RANDOM") is None,  # CI: the same cases every run
    suppress_health_check=list(HealthCheck),
    database=None,
)

# text a hostile or careless user might type or save: YAML/JSON syntax, control characters, look-alikes
YAMLISH = string.printable + "&*!|>%@`{}[]-:#\u00a0\u200b\u202e\ufeffé中🚑\x00\x1b"
texts = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=YAMLISH, max_size=300),
    st.sampled_from(
        ["", " ", "-", "--", "..", "../../x", "/", "~", "0", "-1", "1e309", "nan", "null", "{", "["]
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


def _dump(value: Any, style: str) -> str:
    import json

    import yaml

    return json.dumps(value) if style == "json" else yaml.safe_dump(value, allow_unicode=True)


documents = st.one_of(
    texts,
    st.builds(_dump, json_values, st.sampled_from(["json", "yaml"])),
    st.builds(
        lambda q: _dump({"questions": [{"question": q, "gold": {"better": q, "worse": 1}}]}, "yaml"), texts
    ),
)


def expect_own_error(fn, *args: Any, **kwargs: Any) -> Any:
    """`fn` returns, or raises medchat's own error (a sentence for the user); anything else fails."""
    try:
        return fn(*args, **kwargs)
    except MedchatError as e:
        assert str(e).strip() and "\n" not in str(e).strip()[:1], e
        return e


# --- readers -----------------------------------------------------------------------------------


@FUZZ
@given(document=documents, suffix=st.sampled_from([".txt", ".jsonl", ".yaml", ".yml", ".csv"]))
def test_question_files(tmp_path_factory, document, suffix):
    from chatbot.labelling.questions import read_question_file

    path = tmp_path_factory.mktemp("q") / f"questions{suffix}"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    out = expect_own_error(read_question_file, path)
    if isinstance(out, list):
        assert out and all(isinstance(i["question"], str) and i["question"] for i in out)


@FUZZ
@given(document=documents)
def test_variants_files(tmp_path_factory, document):
    from chatbot.labelling.variants import load_variants

    path = tmp_path_factory.mktemp("v") / "variants.yaml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    expect_own_error(load_variants, path)


@FUZZ
@given(document=documents)
def test_users_files(tmp_path_factory, document):
    from chatbot.ui.auth import Users

    path = tmp_path_factory.mktemp("u") / "users.yaml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    users = expect_own_error(Users.load, path)
    if isinstance(users, Users):
        assert users.check("nobody", "nothing") is False


toml_values = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False).map(repr),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=40).map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(["[]", '["127.0.0.1"]', "[1, 2]", "{}", "-1", "1e999", "0"]),
    texts,
)
toml_documents = st.lists(
    st.tuples(
        st.sampled_from(["ui", "limits", "retrieval", "generation", "prefs", "store", "safety", "nope"]),
        st.one_of(
            st.sampled_from(["host", "port", "k", "request_kb", "trusted_proxies", "min_score", "engine"]),
            st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12),
        ),
        toml_values,
    ),
    max_size=4,
).map(lambda rows: "".join(f"[{section}]\n{key} = {value}\n" for section, key, value in rows))


@FUZZ
@given(document=st.one_of(texts, toml_documents))
def test_settings_files(tmp_path_factory, document):
    from chatbot.cli import _settings

    path = tmp_path_factory.mktemp("s") / "medchat.toml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    # undone after each example: a broken file left in MEDCHAT_CONFIG broke later tests' settings
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDCHAT_CONFIG", str(path))
        expect_own_error(_settings)


# --- ingestion ------------------------------------------------------------------------------------


@FUZZ
@given(
    files=st.lists(
        st.tuples(
            st.sampled_from([".md", ".txt", ".html", ".pdf", ".xml", ".csv", ""]), st.binary(max_size=400)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_ingest_generated_files(tmp_path_factory, files):
    from chatbot.settings import Settings
    from ingestion.pipeline import ingest
    from tests.ingestion.test_ingest_incremental import HashEmbedder

    root = tmp_path_factory.mktemp("ingest")
    folder = root / "docs"
    folder.mkdir()
    for n, (suffix, data) in enumerate(files):
        (folder / f"doc{n}{suffix}").write_bytes(data)
    os.environ["MEDCHAT_HOME"] = str(root / "home")
    try:
        report = expect_own_error(ingest, [folder], settings=Settings(), embedder=HashEmbedder())
    finally:
        del os.environ["MEDCHAT_HOME"]
    assert not isinstance(report, MedchatError) or str(report)


# --- every CLI option that takes a value --------------------------------------------------------


def _cli_cases(base: Path) -> list[tuple[list[str], str]]:
    """(arguments that reach the option's use quickly, the option), for every option taking a value."""
    q = str(base / "q.txt")
    jl = str(base / "q.jsonl")
    out = str(base / "out.jsonl")
    return [
        (["ask", "What is asthma?"], "-k"),
        (["ask", "What is asthma?"], "--preset"),
        (["ask", "What is asthma?"], "--filter"),
        (["batch", jl, "-o", out], "--question-field"),
        (["batch", jl, "-o", out], "--id-field"),
        (["batch", jl, "-o", out], "--concurrency"),
        (["batch", jl, "-o", out], "-k"),
        (["batch", jl], "-o"),
        (["export", "--format", "jsonl"], "-o"),
        (["export", "-o", out], "--format"),
        (["export", "--format", "dpo", "-o", out], "--aggregate"),
        (["prefs", "load-questions", q], "--overlap"),
        (["prefs", "load-questions", q], "--batch"),
        (["prefs", "add-user", "bob", "--password", "long-enough-1"], "--role"),
        (["prefs", "add-user", "bob", "--role", "nurse"], "--password"),
        (["prefs", "prepare"], "--limit"),
        (["prefs", "prepare"], "--seed"),
        (["serve"], "--host"),
        (["serve"], "--port"),
        (["serve"], "--users"),
        (["triage", "I have had a headache for two days"], "-o"),
        (["triage"], "--file"),
        (["train", "dpo"], "--name"),
        (["train", "dpo"], "--base"),
        (["train", "dpo"], "--epochs"),
        (["train", "dpo"], "--lr"),
        (["train", "dpo"], "--eval-fraction"),
        (["train", "dpo"], "--min-pairs"),
        (["train", "dpo"], "--register"),
        (["eval", "medquad", str(base / "nowhere")], "--limit"),
        (["eval", "medquad", str(base / "nowhere")], "-k"),
        (["verify", str(base / "nowhere.jsonl")], "-o"),
    ]


def _arguments(base: Path) -> list[tuple[list[str], str]]:
    (base / "q.txt").write_text("What is asthma?\n")
    (base / "q.jsonl").write_text('{"question": "What is asthma?"}\n')
    return _cli_cases(base)


def run_cli(args: list[str]) -> None:
    """One invocation: exit 0, 1 with one `error:` line, or 2 (click's usage error); never a traceback."""
    from click.testing import CliRunner

    from chatbot.cli import main

    result = CliRunner().invoke(main, args, input="")
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exc_info)
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exit_code == 1:
        assert [line for line in result.output.splitlines() if line.startswith("error: ")], (
            args,
            result.output,
        )


@pytest.mark.slow  # loads the triage classifier and the store once per process
@FUZZ
@given(case=st.integers(min_value=0), value=texts)
def test_cli_options_that_take_a_value(tmp_path_factory, case, value):
    base = tmp_path_factory.mktemp("cli")
    os.environ["MEDCHAT_HOME"] = str(base / "home")
    os.environ["MEDCHAT_GENERATION__ENGINE"] = "fake"
    # a generated relative path (`export -o <value>`) lands in this case's folder, not the checkout
    here = os.getcwd()
    os.chdir(base)
    try:
        cases = _arguments(base)
        args, option = cases[case % len(cases)]
        run_cli([*args, option, value] if value != "" or option.startswith("-") else args)
    finally:
        os.chdir(here)
        del os.environ["MEDCHAT_HOME"], os.environ["MEDCHAT_GENERATION__ENGINE"]


# --- every HTTP route, with and without a session ----------------------------------------------


def launch_for_fuzz(tmp: Path) -> tuple[Any, str]:
    from chatbot.chain import Chain
    from chatbot.engines.fake import FakeEngine
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.labelling.variants import Variant
    from chatbot.settings import LimitsSettings, Settings
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import User, Users, hash_password
    from chatbot.ui.serve import MAX_THREADS, guard_middleware, launch_options, trust_forwarded_from

    users = Users({"ann": User("ann", "nurse", hash_password("a-pass", iterations=1000))})
    store = PreferenceStore(f"sqlite:///{tmp / 'prefs.sqlite3'}")
    app = build_app(
        Chain(Settings(), engine=FakeEngine()),
        store=store,
        variants=[Variant("v1", k=2), Variant("v2", k=3)],
        users=users,
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    limits = LimitsSettings(login_failures=1000)
    trust_forwarded_from([])
    app.queue(default_concurrency_limit=4).launch(
        **launch_options(guard_middleware(limits), limits=limits),
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        auth=users.check,
        max_threads=MAX_THREADS,
    )
    return app, f"http://127.0.0.1:{port}"


def http_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP route the running app serves, websockets left out."""
    out = []
    for route in app.server_app.routes:
        methods = sorted(getattr(route, "methods", None) or [])
        for method in methods:
            if method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                out.append((method, route.path))
    return sorted(set(out))


def fill(path: str, values: list[str]) -> str:
    import re
    from urllib.parse import quote

    it = iter(values)
    return re.sub(r"\{[^}]+\}", lambda m: quote(next(it, "x"), safe=""), path)


def request_once(client: Any, method: str, path: str, params: list[str], body: Any, raw: bytes | None) -> int:
    url = fill(path, params)
    if method == "GET":
        response = client.get(url, params={"q": params[0] if params else ""})
    elif raw is not None:
        response = client.request(method, url, content=raw, headers={"content-type": "application/json"})
    else:
        response = client.request(method, url, json=body)
    return response.status_code


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    os.environ["MEDCHAT_HOME"] = str(tmp / "home")
    app, url = launch_for_fuzz(tmp)
    yield app, url
    app.close()
    del os.environ["MEDCHAT_HOME"]


# routes whose answer is a stream that stays open (server-sent events): asked with a short timeout
STREAMING = ("/queue/data", "/heartbeat/", "/dev/reload", "/call/")


@pytest.mark.slow  # a real server
@FUZZ
@given(
    case=st.integers(min_value=0),
    signed_in=st.booleans(),
    params=st.lists(texts, min_size=1, max_size=4),
    body=json_values,
    raw=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_every_http_route_with_and_without_a_session(fuzz_server, case, signed_in, params, body, raw):
    import httpx

    app, url = fuzz_server
    routes = http_routes(app)
    method, path = routes[case % len(routes)]
    with httpx.Client(base_url=url, timeout=5) as client:
        if signed_in:
            assert client.post("/login", data={"username": "ann", "password": "a-pass"}).status_code == 200
        try:
            status = request_once(client, method, path, params, body, raw)
        except httpx.ReadTimeout:
            assert any(s in path for s in STREAMING), (method, path)
            return
        assert status < 500, (method, path, params, body, raw)
        assert client.get("/gradio_api/user").status_code == 200  # still serving
