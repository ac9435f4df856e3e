"""`medchat train`: the whole loop small on the CPU, and its clear refusals.

The store is filled through the Compare service (the app's own API: two variants answer, a scripted
annotator votes), then DPO trains LoRA on the bundled SmolLM2 for a few steps; the trained model is
registered as a variant and answers through an engine.
"""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
from click.testing import CliRunner

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.labelling.service import CompareService
from chatbot.labelling.store.prefs import JudgmentIn, PreferenceStore
from chatbot.labelling.variants import Variant, VariantRunner, load_variants
from chatbot.retrieval import open_retriever

pytest.importorskip("trl")
pytest.importorskip("peft")

QUESTIONS = [
    "What blood pressure counts as high?",
    "How is high blood pressure treated?",
    "What is type 2 diabetes?",
    "How is type 2 diabetes treated?",
    "What HbA1c target is usual in type 2 diabetes?",
    "What are the symptoms of asthma?",
    "How is an asthma attack treated?",
    "What INR is the target on warfarin?",
    "Which foods interact with warfarin?",
    "What are the symptoms of a migraine?",
    "Which medicines treat a migraine attack?",
    "How can migraines be prevented?",
]
HEDGE = "I am not sure about that, sorry."


class CitedOrHedging(FakeEngine):
    """Variant `cited` (temperature 0) quotes its first passage with a citation; `hedge` says nothing."""

    def stream(self, messages, params):
        self.calls.append(list(messages))
        reply = self._default(messages) if params.temperature == 0 else HEDGE
        yield from reply.split(" ")[:1]
        for word in reply.split(" ")[1:]:
            yield " " + word


VARIANTS = [
    Variant("cited", prompt={"exemplar": "none"}, k=2, generation={"temperature": 0.0, "max_new_tokens": 48}),
    Variant("hedge", prompt={"exemplar": "none"}, k=2, generation={"temperature": 0.5, "max_new_tokens": 48}),
]


def _judge(r) -> str:
    """The scripted annotator: prefers the answer that cites a passage."""
    return "A" if "[1]" in r.left.text else "B"


@pytest.fixture
def filled(settings, few_index, embedder):
    """A preference store filled through the Compare service: one vote per question, one of them a tie."""
    store = PreferenceStore(settings.prefs_db_url)
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=CitedOrHedging())
    service = CompareService(store, VariantRunner(chain, VARIANTS), settings)
    rng = random.Random(0)
    for n, q in enumerate(QUESTIONS):
        r = list(service.ask("dr_a", q, rng=rng))[-1].round
        choice = "tie" if n == 3 else _judge(r)
        strength = "" if choice == "tie" else "better"
        service.submit(JudgmentIn(r.comparison_id, "dr_a", choice, strength, "both_safe"))
    yield store
    store.close()


def _variants_file(tmp_path, settings):
    path = tmp_path / "variants.yaml"
    shutil.copy(settings.prefs.variants_file, path)
    return path


@pytest.mark.slow
@pytest.mark.e2e
def test_dpo_loop_on_cpu_trains_saves_registers_and_the_variant_answers(
    filled, settings, tmp_path, monkeypatch, few_index, embedder
):
    from chatbot.cli import main

    variants = _variants_file(tmp_path, settings)
    monkeypatch.setenv("MEDCHAT_PREFS__VARIANTS_FILE", str(variants))
    args = (
        "train dpo --name tiny --max-steps 2 --lr 1e-3 --rank 2 --batch-size 1 --max-length 256 "
        "--min-pairs 4 --eval-fraction 0.2 --save-steps 1 --register tiny-dpo --like patient-default "
        "--no-progress"
    )
    result = CliRunner().invoke(main, args.split())
    assert result.exit_code == 0, result.output
    from chatbot.settings import get_settings

    # where the command wrote ($MEDCHAT_HOME/models unless MEDCHAT_GENERATION__MODELS_DIR is set), as it says
    run = get_settings().models_dir / "tiny"
    assert f"card and report in {run}" in result.output
    card = json.loads((run / "metrics.json").read_text())
    # the selection: the tie is left out and counted; held-out questions never appear in training
    assert card["data"]["excluded"] == {"tie": 1}
    assert card["data"]["train_rows"] + card["data"]["eval_rows"] == len(QUESTIONS) - 1
    assert card["data"]["eval_questions"] >= 1 and card["data"]["train_questions"] >= 4
    assert not set(card["data"]["train_judgment_ids"]) & set(card["data"]["eval_judgment_ids"])
    assert card["data"]["truncated_prompts"] > 0  # 256 tokens: passages were shortened to fit
    # the loss is finite and moves
    losses = [loss for _, loss in card["metrics"]["loss_curve"]]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert abs(losses[0] - math.log(2)) < 0.02  # DPO starts at log 2: the adapter starts as a no-op
    assert abs(losses[1] - losses[0]) > 1e-4  # one update later it has moved
    heldout = card["metrics"]["heldout"]
    assert heldout["pairs"] == card["data"]["eval_rows"] and 0 <= heldout["accuracy"] <= 1
    # adapter, merged model, card, report, plot
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "merged" / "config.json").is_file()
    assert (run / "README.md").read_text().startswith("---\nbase_model:")
    assert "Held-out scores" in (run / "report.md").read_text() and (run / "loss.png").stat().st_size > 1000
    assert card["base_model"]["sha256"] and card["hyperparameters"]["lora_rank"] == 2
    # the training_runs record links the run to its judgments
    from chatbot.training.records import runs

    (rec,) = runs(filled)
    assert rec.status == "finished" and rec.name == "tiny" and rec.variant == "tiny-dpo"
    assert sorted(rec.train_judgment_ids) == sorted(card["data"]["train_judgment_ids"])
    # registered: the variant serves the trained model through the engine and answers
    (v,) = [v for v in load_variants(variants) if v.name == "tiny-dpo"]
    assert (
        v.model["engine"] == "llamacpp" and v.model["path"] == card["files"]["gguf"]
    )  # the GGUF was written
    assert card["files"]["gguf_change_kept"] > 0.8  # f16 keeps most of the (tiny) trained change
    assert v.prompt and v.k == 4  # copied from patient-default: only the model differs
    from chatbot.settings import Settings

    served = Settings()
    chain = Chain(served, retriever=open_retriever(served, embedder), engine=FakeEngine())
    runner = VariantRunner(chain, load_variants(variants))
    run_ = runner.run("tiny-dpo", "What blood pressure counts as high?")
    text = "".join(run_.stream)
    answer = run_.stream.answer
    assert text.strip() and answer is not None and answer.model != "fake"
    assert runner.chain_for("tiny-dpo").engine is not chain.engine
    # the leaderboard ranks it: two rounds of the trained variant against the one it was copied from,
    # judged by the scripted annotator through the Compare service
    from chatbot.labelling.leaderboard import results

    pitted = [v for v in load_variants(variants) if v.name in ("patient-default", "tiny-dpo")]
    service = CompareService(filled, VariantRunner(chain, pitted), served)
    rng = random.Random(5)
    for q in QUESTIONS[:2]:
        r = list(service.ask("dr_c", q, rng=rng))[-1].round
        assert {r.left.variant, r.right.variant} == {"patient-default", "tiny-dpo"}
        service.submit(JudgmentIn(r.comparison_id, "dr_c", _judge(r), "better", "both_safe"))
    ratings = {x.variant: x for x in results(filled, rounds=20).ratings}
    assert ratings["tiny-dpo"].battles == 2 and math.isfinite(ratings["tiny-dpo"].rating)
    assert ratings["tiny-dpo"].lower <= ratings["tiny-dpo"].rating <= ratings["tiny-dpo"].upper


def test_too_few_pairs_says_how_many_and_why(settings, few_index, embedder):
    store = PreferenceStore(settings.prefs_db_url)
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=CitedOrHedging())
    service = CompareService(store, VariantRunner(chain, VARIANTS), settings)
    rng = random.Random(1)
    for n, q in enumerate(QUESTIONS[:4]):
        r = list(service.ask("dr_b", q, rng=rng))[-1].round
        choice = "tie" if n < 2 else _judge(r)
        service.submit(
            JudgmentIn(r.comparison_id, "dr_b", choice, "" if choice == "tie" else "better", "both_safe")
        )
    from chatbot.cli import main

    result = CliRunner().invoke(main, ["train", "dpo", "--no-progress"])
    assert result.exit_code == 1
    msg = result.output
    assert "error: only 1 usable training pairs for dpo (need at least 8)" in msg
    assert "(1 more held out for scoring)" in msg and "2 left out of 4 judgments: 2 tie" in msg
    assert "Traceback" not in msg


def test_a_gguf_that_cannot_be_trained_names_what_to_point_at(settings, tmp_path):
    from chatbot.cli import main

    fake = tmp_path / "llama-3-8b.Q4_K_M.gguf"
    fake.write_bytes(b"GGUF" + bytes(64))
    result = CliRunner().invoke(main, ["train", "dpo", "--base", str(fake), "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot train on" in result.output and "original transformers folder" in result.output


def test_qlora_without_a_gpu_falls_back_with_a_warning_and_cuda_is_refused():
    import torch

    from chatbot.training import TrainingError
    from chatbot.training.base import choose_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: nothing to fall back from")
    device, qlora, notes = choose_device("auto", True)
    assert device == "cpu" and qlora is False and "training LoRA in float32 on the CPU" in notes[0]
    assert choose_device("auto", None) == ("cpu", False, [])
    with pytest.raises(TrainingError, match="--device cpu"):
        choose_device("cuda", None)


def test_passages_are_shortened_never_the_question_or_answers():
    from chatbot.training.data import count_tokens, fit_row

    class Words:
        """A word-level stand-in tokenizer: one token per word (keeps this test free of model files)."""

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return [0] * sum(len(m["content"].split()) + 2 for m in messages)

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0] * len(text.split())}

    passages = "\n".join(f"[{n}] " + " ".join(f"w{n}x{i}" for i in range(100)) for n in (1, 2, 3))
    question = "What INR is the target on warfarin?"
    row = {
        "prompt": [
            {"role": "system", "content": "Answer from the passages."},
            {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {question}"},
        ],
        "chosen": [{"role": "assistant", "content": "Usually 2 to 3 [1]."}],
        "rejected": [{"role": "assistant", "content": "Not sure."}],
    }
    fitted, cut = fit_row(row, "dpo", Words(), 150)
    assert cut and fitted["chosen"] == row["chosen"] and fitted["rejected"] == row["rejected"]
    user = fitted["prompt"][-1]["content"]
    assert user.endswith(f"Question: {question}") and "[1] " in user and "[3] " in user
    assert count_tokens(Words(), fitted["prompt"], generation_prompt=True) + 6 + 2 <= 150
    with pytest.raises(ValueError, match="question and answer alone do not fit"):
        fit_row(row, "dpo", Words(), 20)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["kto", "reward"])
def test_kto_and_reward_loops_train_and_score_held_out_questions(kind, filled, settings, few_index, embedder):
    from chatbot.cli import main

    args = (
        f"train {kind} --name tiny-{kind} --max-steps 2 --lr 1e-3 --rank 2 --batch-size 2 --max-length 256 "
        "--min-pairs 4 --eval-fraction 0.2 --no-progress"
    )
    result = CliRunner().invoke(main, args.split())
    assert result.exit_code == 0, result.output
    from chatbot.settings import get_settings

    run = get_settings().models_dir / f"tiny-{kind}"
    card = json.loads((run / "metrics.json").read_text())
    assert card["kind"] == kind and card["data"]["excluded"] == {"tie": 1}
    # KTO: both answers of each pair become rows (one desirable, one not); reward: one row a pair
    per_vote = 2 if kind == "kto" else 1
    assert card["data"]["train_rows"] + card["data"]["eval_rows"] == per_vote * (len(QUESTIONS) - 1)
    assert not set(card["data"]["train_judgment_ids"]) & set(card["data"]["eval_judgment_ids"])
    losses = [loss for _, loss in card["metrics"]["loss_curve"]]
    assert losses and all(math.isfinite(x) for x in losses)
    heldout = card["metrics"]["heldout"]
    assert heldout["pairs"] >= 1 and 0 <= heldout["accuracy"] <= 1
    assert (run / "adapter" / "adapter_config.json").is_file() and (run / "merged" / "config.json").is_file()
    if kind == "reward":
        assert "gguf" not in card["files"]  # a reward model scores; it is not served as a chat model
    (rec,) = [r for r in __import__("chatbot.training.records", fromlist=["runs"]).runs(filled)]
    assert rec.status == "finished" and rec.kind == kind


@pytest.mark.slow
@pytest.mark.e2e
def test_two_processes_under_accelerate_launch_train_one_run(filled, settings, few_index, tmp_path):
    """Several GPUs go through `accelerate launch --multi_gpu` (torchrun, data parallel); checked here
    with two processes on the CPU (gloo): both train, and one saves, records and reports, so there is
    one run, not two. This caught two processes racing to convert the GGUF base, too."""
    import os
    import subprocess
    import sys

    pytest.importorskip("accelerate")
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "chatbot.cli", "train", "dpo", "--name", "tiny-ddp", "--max-steps", "1", "--lr", "1e-3",
        "--rank", "2", "--batch-size", "1", "--max-length", "256", "--min-pairs", "4",
        "--eval-fraction", "0.2", "--no-progress", "--no-gguf",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_CONFIG_FILE=str(tmp_path / "none.yaml"))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    # the first failing process's own lines come first: the launcher's tail only says that it failed
    failed = [line for line in out.stderr.splitlines() if line.startswith("[rank1]")][-40:]
    assert out.returncode == 0, "\n".join(failed) + out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stdout.count("run tiny-ddp: held-out") == 1, out.stdout
    from chatbot.settings import get_settings
    from chatbot.training.records import runs

    card = json.loads((get_settings().models_dir / "tiny-ddp" / "metrics.json").read_text())
    assert card["metrics"]["steps"] == 1
    (rec,) = runs(filled)
    assert rec.status == "finished" and rec.name == "tiny-ddp"


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "/etc", "x..y", ".hidden", "a b"])
def test_a_run_name_that_is_not_one_folder_is_refused_where_the_path_is_built(name, settings):
    from chatbot.training import TrainingError
    from chatbot.training.run import Options, train

    store = PreferenceStore(settings.prefs_db_url)
    models = settings.models_dir
    before = sorted(models.rglob("*")) if models.exists() else []
    with pytest.raises(TrainingError, match=r"no '/', no '\.\.'"):
        train(store, settings, Options(kind="dpo", name=name, progress=False), echo=lambda s: None)
    store.close()
    assert (sorted(models.rglob("*")) if models.exists() else []) == before  # nothing written in it
    assert not (models.parent / "x").exists() and not (models.parent.parent / "x").exists()  # nor outside


def test_cpu_profile_fills_what_the_user_left_unset():
    from chatbot.training.run import PROFILES, Options

    opts = Options(kind="dpo")
    opts.apply_profile("cpu")
    cpu = PROFILES["cpu"]
    assert (opts.max_length, opts.batch_size, opts.grad_accum) == (512, 1, 4)
    assert opts.precompute_ref is True and opts.save_steps == 10
    assert cpu.gradient_checkpointing is False  # bf16 follows the float32 dtype: off on a CPU
    kto = Options(kind="kto", batch_size=None, max_length=300)
    kto.apply_profile("cpu")
    assert (kto.max_length, kto.batch_size, kto.grad_accum) == (300, 2, 2)  # KTO needs pairs in a batch
    reward = Options(kind="reward")
    reward.apply_profile("cpu")
    assert reward.precompute_ref is False  # a reward model has no reference
    gpu = Options(kind="dpo", grad_accum=3)
    gpu.apply_profile("cuda")
    assert (gpu.max_length, gpu.batch_size, gpu.grad_accum, gpu.precompute_ref) == (1024, 2, 3, False)


def test_a_disk_too_small_for_the_gguf_is_said_before_anything_is_loaded(settings, monkeypatch):
    from chatbot.cli import main
    from chatbot.training import run

    monkeypatch.setattr(run, "_free_bytes", lambda path: 300 << 20)  # 300 MB free
    result = CliRunner().invoke(main, ["train", "dpo", "--name", "no-room", "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    msg = result.output
    assert "not enough disk space for this run" in msg and "300 MB are free" in msg
    assert "GGUF 2" in msg and "or pass --no-gguf" in msg  # the f16 GGUF of the 135M model: ~2xx MB
    assert not (settings.models_dir / "no-room").exists()
    # without the GGUF it would fit in more room; with enough room the check passes and selection speaks
    monkeypatch.setattr(run, "_free_bytes", lambda path: 50 << 30)
    result = CliRunner().invoke(main, ["train", "dpo", "--name", "no-room", "--no-progress"])
    assert "not enough disk space" not in result.output and "usable training pairs" in result.output


def test_a_checkpoint_cut_short_by_a_kill_is_not_resumed_from(tmp_path):
    from chatbot.training.run import _checkpoint_to_resume

    run = tmp_path / "r"
    for step, state in ((10, '{"global_step": 10}'), (20, '{"global_st')):  # 20: killed while saving
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    said = []
    assert _checkpoint_to_resume(run, "r", False, said.append).endswith("checkpoint-10")
    assert "resuming run 'r' from checkpoint-10" in said[0]
    (run / "metrics.json").write_text("{}")
    from chatbot.training import TrainingError

    with pytest.raises(TrainingError, match="finished run"):
        _checkpoint_to_resume(run, "r", False, said.append)


@pytest.mark.slow
@pytest.mark.e2e
def test_ctrl_c_then_kill_mid_training_and_each_rerun_continues_from_the_last_checkpoint(filled, settings):
    import os
    import signal
    import subprocess
    import sys
    import time

    from chatbot.settings import get_settings
    from chatbot.training.records import runs

    cmd = [
        sys.executable, "-m", "chatbot.cli", "train", "dpo", "--name", "stop-resume", "--max-steps", "10",
        "--lr", "1e-3", "--rank", "2", "--batch-size", "1", "--grad-accum", "1", "--max-length", "256",
        "--min-pairs", "4", "--save-steps", "1", "--no-gguf", "--no-progress",
    ]  # fmt: skip
    ckpts = get_settings().models_dir / "stop-resume" / "checkpoints"

    def start_and_stop_after(step: int, sig: int) -> subprocess.CompletedProcess:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 600
        while not (ckpts / f"checkpoint-{step}" / "trainer_state.json").is_file():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.time() < deadline
            time.sleep(0.2)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(cmd, proc.returncode, out)

    # Ctrl-C: the step under way finishes, a checkpoint is saved, one line says how to go on
    first = start_and_stop_after(1, signal.SIGINT)
    assert first.returncode == 1 and "Traceback" not in first.stdout, first.stdout
    assert "stopped at step" in first.stdout and "run the same command again" in first.stdout
    stopped_at = int(first.stdout.split("stopped at step ")[1].split()[0])
    assert 1 <= stopped_at < 10 and (ckpts / f"checkpoint-{stopped_at}").is_dir()
    (rec,) = runs(filled)
    assert rec.status == "interrupted"
    # kill -9 (no chance to save): the rerun resumes from the last periodic checkpoint
    second = start_and_stop_after(stopped_at + 1, signal.SIGKILL)
    assert f"resuming run 'stop-resume' from checkpoint-{stopped_at}" in second.stdout
    from chatbot.training.run import _complete_checkpoints

    last = int(_complete_checkpoints(ckpts.parent)[-1].name.split("-")[1])
    assert last > stopped_at
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=os.environ)
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-2000:]
    assert "resuming run 'stop-resume' from checkpoint-" in third.stderr
    card = json.loads((get_settings().models_dir / "stop-resume" / "metrics.json").read_text())
    assert card["metrics"]["resumed_from_step"] == last  # not from zero
    assert card["metrics"]["steps"] == 10
    (rec,) = runs(filled)
    assert rec.status == "finished"


WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven")


class SeededCiting(FakeEngine):
    """One reply per seed, as sampling gives: even seeds quote the first passage with its citation,
    odd ones hedge; each names its seed in words (a figure no passage has would be flagged)."""

    def stream(self, messages, params):
        self.calls.append((list(messages), params))
        said = self._default(messages) if params.seed % 2 == 0 else HEDGE
        yield f"Answer {WORDS[params.seed]}. {said}"


@pytest.mark.slow
@pytest.mark.e2e
def test_best_of_variant_from_a_trained_reward_model(filled, settings, tmp_path, monkeypatch, embedder):
    """`train reward --register base+bo4 --best-of 4`: a tiny reward model on the judgments, registered
    as a best-of variant that answers through the engine; the answer is the best-scored candidate."""
    from chatbot.cli import main

    variants = _variants_file(tmp_path, settings)
    monkeypatch.setenv("MEDCHAT_PREFS__VARIANTS_FILE", str(variants))
    args = (
        "train reward --name tiny-rm --max-steps 2 --lr 1e-3 --rank 2 --batch-size 2 --max-length 256 "
        "--min-pairs 4 --eval-fraction 0.2 --register base+bo4 --best-of 4 --like patient-default "
        "--no-progress"
    )
    result = CliRunner().invoke(main, args.split())
    assert result.exit_code == 0, result.output
    assert "registered variant 'base+bo4' (best of 4, reward model tiny-rm)" in result.output
    (v,) = [v for v in load_variants(variants) if v.name == "base+bo4"]
    assert v.best_of is not None and v.best_of.as_dict() == {
        "n": 4,
        "reward_model": "tiny-rm",
        "temperature": 0.7,
    }
    assert not v.model and v.k == 4 and v.prompt  # patient-default's settings, the base model
    from chatbot.settings import Settings

    served = Settings()
    engine = SeededCiting()
    chain = Chain(served, retriever=open_retriever(served, embedder), engine=engine)
    runner = VariantRunner(chain, load_variants(variants))
    run = runner.run("base+bo4", "What INR is the target on warfarin?")
    assert "Writing 4 answers" in run.stream.status
    pieces = [p for p in run.stream if p]
    answer = run.stream.answer
    assert answer is not None and pieces == [answer.text]
    best = answer.best_of
    assert best["seeds"] == [0, 1, 2, 3] and [p.seed for _, p in engine.calls] == [0, 1, 2, 3]
    assert {p.temperature for _, p in engine.calls} == {0.7}
    assert len(set(best["candidates"])) == 4 and answer.text in best["candidates"]
    scores = best["scores"]
    assert len(scores) == 4 and all(math.isfinite(s) for s in scores) and len(set(scores)) > 1
    assert best["chosen"] == scores.index(max(scores)) and answer.text == best["candidates"][best["chosen"]]
    assert answer.timings["best_of_added_s"] > 0 and answer.timings["best_of_score_s"] > 0
    assert run.params.temperature == 0.7  # what the store records as the variant's generation
    # the batch (padded) scores each answer as the held-out scoring does, one at a time
    from chatbot.labelling.best_of import get_scorer
    from chatbot.training.scoring import reward_score

    scorer = get_scorer(served.models_dir / "tiny-rm" / "merged")
    assert scorer is get_scorer(served.models_dir / "tiny-rm" / "merged") and scorer.max_length == 256
    prompt = [{"role": m.role, "content": m.content} for m in engine.calls[0][0]]
    scorer.max_length = None  # whole prompts, as reward_score takes them
    try:
        batched = scorer(prompt, best["candidates"])
    finally:
        scorer.max_length = 256
    one_by_one = [
        reward_score(scorer.model, scorer.tokenizer, prompt, [{"role": "assistant", "content": c}])
        for c in best["candidates"]
    ]
    assert batched == pytest.approx(one_by_one, abs=1e-4)


def test_best_of_needs_a_reward_model_and_register_says_so(settings):
    from chatbot.cli import main

    for args, said in (
        ("train reward --register x", "register it as a best-of variant with --best-of N"),
        ("train dpo --register x --best-of 4", "use it with `medchat train reward`, not dpo"),
        ("train reward --best-of 4", "--best-of N needs --register NAME"),
    ):
        result = CliRunner().invoke(main, [*args.split(), "--no-progress"])
        assert result.exit_code == 1 and said in result.output and "Traceback" not in result.output, args
    result = CliRunner().invoke(main, "train reward --register x --best-of 1 --no-progress".split())
    assert result.exit_code == 2 and "2<=x<=16" in result.output
