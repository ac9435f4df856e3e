"""One training run, end to end: select, load, train with TRL + peft, score, save, record, register."""

from __future__ import annotations

import logging
import math
import os
import random
import re
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.training import KINDS, TrainingError, TrainingInterrupted

if TYPE_CHECKING:
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.settings import Settings
    from chatbot.training.base import BaseModel, Loaded
    from chatbot.training.data import Selection

log = logging.getLogger(__name__)

# LoRA adapters learn at far higher rates than TRL's full-model defaults (1e-6)
DEFAULT_LR = {"dpo": 5e-5, "kto": 5e-5, "reward": 1e-4}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Profile:
    """The settings that depend on the device. The CPU one was chosen by measurement on 2 cores
    (`bench/bench_train_profile.py`, docs/benchmarks.md): TRL's GPU-minded defaults (gradient
    checkpointing, bf16, 1,024 tokens) cost most there."""

    max_length: int
    batch_size: int
    grad_accum: int
    gradient_checkpointing: bool
    precompute_ref: bool
    """DPO/KTO: the reference log-probabilities computed once before training, not at every step."""
    save_steps: int


PROFILES = {
    "cpu": Profile(
        max_length=512,
        batch_size=1,
        grad_accum=4,
        gradient_checkpointing=False,
        precompute_ref=True,
        save_steps=10,
    ),
    "cuda": Profile(
        max_length=1024,
        batch_size=2,
        grad_accum=1,
        gradient_checkpointing=True,
        precompute_ref=False,
        save_steps=50,
    ),
}
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_run_name(name: str) -> str:
    """A run name is one folder under the models folder: letters, digits, `.`, `_`, `-`; no `/` or `..`."""
    if not _RUN_NAME.match(name) or ".." in name:
        raise TrainingError(
            f"run name {name!r} cannot be used: it becomes a folder under the models folder, so use letters, "
            "digits, '.', '_' and '-' only (no '/', no '..', at most 100 characters), e.g. --name dpo-1"
        )
    return name


@dataclass
class Options:
    kind: str
    base: str | None = None
    name: str | None = None
    epochs: float = 1.0
    learning_rate: float | None = None
    beta: float = 0.1
    rank: int = 16
    alpha: int | None = None
    dropout: float = 0.05
    max_length: int | None = None
    """None: the device profile's (512 on a CPU, 1,024 on a GPU)."""
    batch_size: int | None = None
    grad_accum: int | None = None
    precompute_ref: bool | None = None
    max_steps: int = -1
    eval_fraction: float = 0.2
    min_pairs: int = 8
    aggregate: str = "majority"
    same_prompt_only: bool = False
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    qlora: bool | None = None
    save_steps: int | None = None
    gguf: bool = True
    gguf_type: str = "f16"
    register: str | None = None
    like: str | None = None
    best_of: int | None = None
    """With `reward` and --register: the variant serves the best of this many answers."""
    progress: bool = True

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise TrainingError(f"unknown training kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.name is not None:
            check_run_name(self.name)
        if self.kind == "kto" and self.batch_size is not None and self.batch_size < 2:
            raise TrainingError(
                "KTO needs --batch-size 2 or more (its KL term compares answers within a batch)"
            )
        if self.register and self.kind == "reward" and not self.best_of:
            raise TrainingError(
                "a reward model scores answers, it does not write them: register it as a best-of variant "
                "with --best-of N (e.g. --register base+bo4 --best-of 4), or --register a dpo or kto run"
            )
        if self.best_of is not None:
            from chatbot.labelling.best_of import N_RANGE

            if self.kind != "reward":
                raise TrainingError(
                    "--best-of picks answers with a reward model: use it with `medchat train reward`, "
                    f"not {self.kind}"
                )
            if not self.register:
                raise TrainingError("--best-of N needs --register NAME: the variant serving the best of N")
            lo, hi = N_RANGE
            if not lo <= self.best_of <= hi:
                raise TrainingError(f"--best-of must be from {lo} to {hi}, not {self.best_of}")
        if self.resume and not self.name:
            raise TrainingError("--resume needs --name: the run whose checkpoints to continue from")

    def apply_profile(self, device: str) -> Profile:
        """Fill the settings left unset from the device's profile; returns the profile."""
        prof = PROFILES["cuda" if device == "cuda" else "cpu"]
        effective = prof.batch_size * prof.grad_accum
        if self.max_length is None:
            self.max_length = prof.max_length
        if self.batch_size is None:
            self.batch_size = max(prof.batch_size, 2 if self.kind == "kto" else 1)
        if self.grad_accum is None:
            self.grad_accum = max(1, effective // self.batch_size)
        if self.precompute_ref is None:
            self.precompute_ref = prof.precompute_ref
        if self.kind == "reward":
            self.precompute_ref = False  # a reward model has no reference
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # under `accelerate launch` each process caches its reference log-probs in its own
            # temporary folder and TRL then opens rank 0's file in every process (rank 1 died with
            # FileNotFoundError): the reference model scores each batch as it comes instead
            self.precompute_ref = False
        if self.save_steps is None:
            self.save_steps = prof.save_steps
        return prof


@dataclass
class Result:
    name: str
    run_dir: Path
    card: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _progress_callback(enabled: bool) -> Any:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class StepBar(TrainerCallback):
        """One bar for the optimizer steps, with the latest loss; tqdm shows the ETA."""

        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc="training",
                unit="step",
                disable=not enabled,
            )

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is not None and logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.close()

    return StepBar()


class _StopOnSignal:
    """Ctrl-C or SIGTERM while training: the first finishes the current optimizer step, saves a
    checkpoint and stops; a second stops at once (the last periodic checkpoint is kept). Either way a
    rerun of the same command continues from the last checkpoint."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.requested = False
        self._old: dict[int, Any] = {}

    def callback(self) -> Any:
        from transformers import TrainerCallback

        outer = self

        class Stop(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if outer.requested:
                    control.should_save = True
                    control.should_training_stop = True

        return Stop()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise TrainingInterrupted(
                "stopped at once: a rerun of the same command continues from the last saved checkpoint"
            )
        self.requested = True
        self.echo(
            "stopping after this training step to save a checkpoint (press Ctrl-C again to stop at once)"
        )

    def __enter__(self) -> _StopOnSignal:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


def _columns(kind: str) -> tuple[str, ...]:
    return {
        "dpo": ("prompt", "chosen", "rejected"),
        "kto": ("prompt", "completion", "label"),
        "reward": ("prompt", "chosen", "rejected", "margin"),
    }[kind]


def _dataset(rows: list[dict[str, Any]], kind: str, seed: int) -> Any:
    from datasets import Dataset

    rows = list(rows)
    random.Random(seed).shuffle(rows)  # KTO samples in order: mix prompts and labels within each batch
    return Dataset.from_list([{c: r[c] for c in _columns(kind) if c in r} for r in rows])


def _trainer(opts: Options, loaded: Loaded, sel: Selection, run_dir: Path, callbacks: list[Any]) -> Any:
    from peft import LoraConfig

    common: dict[str, Any] = {
        "output_dir": str(run_dir / "checkpoints"),
        "num_train_epochs": opts.epochs,
        "max_steps": opts.max_steps,
        "learning_rate": opts.learning_rate or DEFAULT_LR[opts.kind],
        "per_device_train_batch_size": opts.batch_size,
        "gradient_accumulation_steps": opts.grad_accum,
        "max_length": opts.max_length,
        "seed": opts.seed,
        "data_seed": opts.seed,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": opts.save_steps,
        "save_total_limit": 2,
        "eval_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": loaded.device == "cpu",
        "bf16": loaded.dtype == "bfloat16",
        "fp16": loaded.dtype == "float16",
        "gradient_checkpointing": PROFILES[
            "cuda" if loaded.device == "cuda" else "cpu"
        ].gradient_checkpointing,
        "warmup_steps": 0,
        "lr_scheduler_type": "linear",
        "dataloader_num_workers": 0,
    }
    lora = LoraConfig(
        r=opts.rank,
        lora_alpha=opts.alpha or 2 * opts.rank,
        lora_dropout=opts.dropout,
        target_modules=LORA_TARGETS,
        task_type="SEQ_CLS" if opts.kind == "reward" else "CAUSAL_LM",
        modules_to_save=["score"] if opts.kind == "reward" else None,
    )
    train = _dataset(sel.train, opts.kind, opts.seed)
    kwargs = {
        "model": loaded.model,
        "args": None,
        "train_dataset": train,
        "processing_class": loaded.tokenizer,
        "peft_config": lora,
        "callbacks": callbacks,
    }
    if opts.kind == "dpo":
        from trl import DPOConfig, DPOTrainer

        kwargs["args"] = DPOConfig(
            **common, beta=opts.beta, precompute_ref_log_probs=bool(opts.precompute_ref)
        )
        return DPOTrainer(**kwargs)
    if opts.kind == "kto":
        from trl import KTOConfig, KTOTrainer

        good = sum(bool(r["label"]) for r in sel.train)
        bad = len(sel.train) - good
        # KTO's recommendation: weight the rarer kind up so desirable_weight * good ~ undesirable_weight * bad
        weights: dict[str, Any] = {
            "desirable_weight": max(1.0, bad / good),
            "undesirable_weight": max(1.0, good / bad),
        }
        kwargs["args"] = KTOConfig(
            **common, beta=opts.beta, precompute_ref_log_probs=bool(opts.precompute_ref), **weights
        )
        return KTOTrainer(**kwargs)
    from trl import RewardConfig, RewardTrainer

    kwargs["args"] = RewardConfig(**common)
    return RewardTrainer(**kwargs)


def _merge(base: BaseModel, kind: str, adapter_dir: Path, merged_dir: Path, tokenizer: Any) -> None:
    """Base (full precision) + adapter, merged into plain weights that any engine can load."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
    extra = {"num_labels": 1} if kind == "reward" else {}
    fresh = cls.from_pretrained(base.source, dtype=torch.float32, local_files_only=base.local, **extra)
    fresh.config.pad_token_id = tokenizer.pad_token_id
    merged = PeftModel.from_pretrained(fresh, str(adapter_dir)).merge_and_unload()
    tmp = merged_dir.with_name(merged_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(merged_dir, ignore_errors=True)
    tmp.replace(merged_dir)


def _loss_summary(points: list[tuple[int, float]]) -> dict[str, Any]:
    if not points:
        return {}
    losses = [p[1] for p in points]
    quarter = losses[-max(1, len(losses) // 4) :]
    return {
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "loss_last_quarter_mean": statistics.fmean(quarter),
        "loss_finite": all(math.isfinite(x) for x in losses),
    }


def _complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints that were written to the end (a kill while saving leaves one without a readable
    trainer_state.json, which is written last), oldest first."""
    import json

    found = []
    for p in (run_dir / "checkpoints").glob("checkpoint-*"):
        try:
            step = int(p.name.rsplit("-", 1)[-1])
            json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        found.append((step, p))
    return [p for _, p in sorted(found)]


def _checkpoint_to_resume(run_dir: Path, name: str, resume: bool, echo: Callable[[str], None]) -> str | None:
    """The checkpoint a rerun continues from. A run that stopped (Ctrl-C, kill, a crash) resumes from its
    last complete checkpoint without being asked; a finished run is never overwritten."""
    if (run_dir / "metrics.json").is_file():
        raise TrainingError(f"a finished run named {name!r} is at {run_dir}: pick another --name")
    found = _complete_checkpoints(run_dir) if run_dir.is_dir() else []
    if found:
        echo(f"resuming run {name!r} from {found[-1].name} (a rerun continues where it stopped)")
        return str(found[-1])
    if resume:
        raise TrainingError(
            f"no complete checkpoint under {run_dir / 'checkpoints'} to resume from: start without --resume"
        )
    if run_dir.is_dir() and any(run_dir.iterdir()):
        echo(f"run {name!r} stopped before its first checkpoint: starting it again from step 0")
        shutil.rmtree(run_dir)
    return None


def _keep_selection(sel: Selection, run_dir: Path, resuming: bool, echo: Callable[[str], None]) -> None:
    """A resumed run trains on the judgments it started with (newer ones wait for the next run), so
    the steps already taken and the ones left are over the same rows."""
    import json

    path = run_dir / "selection.json"
    if not resuming or not path.is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        ids = {"train": sel.judgment_ids(sel.train), "eval": sel.judgment_ids(sel.eval)}
        path.write_text(json.dumps(ids) + "\n", encoding="utf-8")
        return
    from chatbot.training.data import _judgment_ids

    before = json.loads(path.read_text(encoding="utf-8"))
    for part, rows in (("train", sel.train), ("eval", sel.eval)):
        keep = set(before[part])
        kept = [r for r in rows if set(_judgment_ids(r)) <= keep]
        if len(kept) < len(rows):
            late = len(rows) - len(kept)
            echo(f"note: {late} {part} rows judged since the run started wait for the next run")
        rows[:] = kept
    missing = len(before["train"]) - len(sel.judgment_ids(sel.train))
    if missing > 0:
        echo(f"note: {missing} judgments this run started with are no longer selected (changed or withdrawn)")


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(base: BaseModel, opts: Options, models_dir: Path, has_checkpoint: bool) -> dict[str, int]:
    """Refuse to start when the models folder's disk cannot hold what the run writes: the dequantized
    base (once), the merged model, the GGUF and the checkpoints. Returns the estimate in bytes."""
    from chatbot.training.gguf import estimate_sizes

    sizes = estimate_sizes(base, opts.gguf_type, opts.rank, LORA_TARGETS)
    converted = base.source or (
        base.gguf is not None
        and any((f / "config.json").is_file() for f in models_dir.glob(f"{base.gguf.stem}-*"))
    )
    need = {
        "base folder": 0 if converted else sizes["fp32"],
        "merged model": sizes["fp32"],
        "GGUF": sizes["gguf"] if opts.gguf and opts.kind != "reward" else 0,
        "checkpoints": 0 if has_checkpoint else 2 * sizes["checkpoint"],
    }
    free = _free_bytes(models_dir)
    total = sum(need.values())
    if total > free:
        mb = 1 << 20
        parts = ", ".join(f"{k} {v // mb} MB" for k, v in need.items() if v)
        hint = " or pass --no-gguf" if need["GGUF"] else ""
        raise TrainingError(
            f"not enough disk space for this run in {models_dir}: it writes about {total // mb} MB ({parts}) "
            f"and {free // mb} MB are free: free some space, point MEDCHAT_HOME at a larger disk{hint}"
        )
    return need


def train(
    store: PreferenceStore,
    settings: Settings,
    opts: Options,
    *,
    echo: Callable[[str], None] = print,
) -> Result:
    """Train, score, save and record one run; returns where everything went."""
    import torch
    from transformers import AutoTokenizer

    from chatbot.training import base as base_mod
    from chatbot.training import data, records, report

    opts.validate()
    name = check_run_name(opts.name or f"{opts.kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}")
    models = settings.models_dir.resolve()
    run_dir = models / name
    if run_dir.resolve().parent != models:  # a symlinked run folder pointing elsewhere
        raise TrainingError(f"{run_dir} does not lie in the models folder {models}: pick another --name")
    checkpoint = _checkpoint_to_resume(run_dir, name, opts.resume, echo)
    device, _, _ = base_mod.choose_device(opts.device, opts.qlora)
    profile = opts.apply_profile(device)
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )

    torch.manual_seed(opts.seed)
    base = base_mod.resolve_base(opts.base, settings)
    check_disk(base, opts, settings.models_dir, checkpoint is not None)
    sel = data.select(
        store,
        opts.kind,
        max_length=opts.max_length or profile.max_length,
        tokenizer=lambda: AutoTokenizer.from_pretrained(
            base_mod.prepare(base, settings).source, local_files_only=base.local
        ),
        eval_fraction=opts.eval_fraction,
        seed=opts.seed,
        min_pairs=opts.min_pairs,
        aggregate=opts.aggregate,
        same_prompt_only=opts.same_prompt_only,
    )
    _keep_selection(sel, run_dir, checkpoint is not None, echo)
    echo(sel.summary())
    base_mod.prepare(base, settings)
    loaded = base_mod.load(base, opts.kind, device=opts.device, qlora=opts.qlora)
    for note in loaded.notes:
        echo(f"warning: {note}")
    run_dir.mkdir(parents=True, exist_ok=True)
    hyper = {
        "epochs": opts.epochs,
        "max_steps": opts.max_steps,
        "learning_rate": opts.learning_rate or DEFAULT_LR[opts.kind],
        "beta": opts.beta if opts.kind != "reward" else None,
        "lora_rank": opts.rank,
        "lora_alpha": opts.alpha or 2 * opts.rank,
        "lora_dropout": opts.dropout,
        "lora_targets": LORA_TARGETS,
        "max_length": opts.max_length,
        "batch_size": opts.batch_size,
        "grad_accum": opts.grad_accum,
        "precompute_ref": opts.precompute_ref,
        "gradient_checkpointing": PROFILES[
            "cuda" if loaded.device == "cuda" else "cpu"
        ].gradient_checkpointing,
        "threads": torch.get_num_threads() if loaded.device == "cpu" else None,
        "seed": opts.seed,
        "eval_fraction": opts.eval_fraction,
        "aggregate": opts.aggregate,
        "same_prompt_only": opts.same_prompt_only,
    }
    train_ids, eval_ids = sel.judgment_ids(sel.train), sel.judgment_ids(sel.eval)
    if not _main_process():  # under `accelerate launch`: the others train, the first saves and records
        _train_and_save(opts, base, loaded, sel, run_dir, checkpoint, hyper, name, settings, echo)
        return Result(name, run_dir, {}, loaded.notes)
    run_id = records.start(
        store,
        name=name,
        kind=opts.kind,
        base_model=base.label,
        base_hash=base.sha256,
        output_dir=str(run_dir),
        train_judgment_ids=train_ids,
        eval_judgment_ids=eval_ids,
        guideline_versions=sel.guideline_versions,
        excluded=dict(sel.excluded),
        hyperparameters=hyper,
    )
    try:
        card = _train_and_save(opts, base, loaded, sel, run_dir, checkpoint, hyper, name, settings, echo)
    except BaseException as e:
        stopped = isinstance(e, TrainingInterrupted | KeyboardInterrupt)
        status = "interrupted" if stopped else "failed"
        records.finish(store, run_id, status=status, error=f"{type(e).__name__}: {e}")
        raise
    records.finish(store, run_id, status="finished", metrics=card["metrics"], variant=card.get("variant"))
    report.write(card, run_dir)
    return Result(name, run_dir, card, loaded.notes)


def _main_process() -> bool:
    """False in the second and later processes of a distributed run (`accelerate launch`)."""
    return int(os.environ.get("RANK", "0")) == 0


def _train_and_save(
    opts: Options,
    base: BaseModel,
    loaded: Loaded,
    sel: Selection,
    run_dir: Path,
    checkpoint: str | None,
    hyper: dict[str, Any],
    name: str,
    settings: Settings,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl
    from transformers import PrinterCallback

    from chatbot import __version__
    from chatbot.training import report
    from chatbot.training.scoring import score_heldout

    trainer = _trainer(opts, loaded, sel, run_dir, [_progress_callback(opts.progress)])
    trainer.remove_callback(PrinterCallback)  # the bar shows the loss; no dict printed per step
    t0 = time.perf_counter()
    with _StopOnSignal(echo) as stop:
        trainer.add_callback(stop.callback())
        trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - t0
    if stop.requested:
        raise TrainingInterrupted(
            f"stopped at step {trainer.state.global_step} of {trainer.state.max_steps} and saved a "
            f"checkpoint in {run_dir / 'checkpoints'}: run the same command again to continue from it"
        )
    if not trainer.is_world_process_zero():
        return {}  # one process writes the adapter, the merged model, the GGUF, the card, the variant
    points = report.loss_points(trainer.state.log_history)
    losses = _loss_summary(points)
    if losses and not losses["loss_finite"]:
        raise TrainingError(
            "the training loss became infinite or NaN: lower --lr (or raise --beta) and start again"
        )
    echo(
        f"trained {trainer.state.global_step} steps in {seconds:.0f} s; scoring {len(sel.eval)} held-out rows"
    )
    heldout = score_heldout(trainer.model, loaded.tokenizer, opts.kind, sel.eval, opts.beta)
    adapter_dir, merged_dir = run_dir / "adapter", run_dir / "merged"
    trainer.model.save_pretrained(str(adapter_dir))
    loaded.tokenizer.save_pretrained(str(adapter_dir))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # finished: the adapter is what counts
    del trainer
    _merge(base, opts.kind, adapter_dir, merged_dir, loaded.tokenizer)
    files: dict[str, Any] = {"adapter": str(adapter_dir), "merged": str(merged_dir)}
    gguf_note = None
    if opts.kind != "reward" and opts.gguf:
        from chatbot.training.gguf import GGUFUnavailable, write_gguf

        try:
            path, kept = write_gguf(merged_dir, base, run_dir / f"{name}.gguf", qtype=opts.gguf_type)
            files["gguf"], files["gguf_type"], files["gguf_change_kept"] = str(path), opts.gguf_type, kept
            echo(
                f"GGUF for llama.cpp: {path} ({opts.gguf_type}; {100 * kept:.1f}% of the trained change kept)"
            )
        except GGUFUnavailable as e:
            gguf_note = str(e)
            echo(f"note: no GGUF written: {e}")
    plot = report.plot_loss(points, run_dir / "loss.png", f"{opts.kind.upper()} {name}: training loss")
    files["loss_plot"] = str(plot) if plot else None
    card: dict[str, Any] = {
        "name": name,
        "kind": opts.kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": {
            "label": base.label,
            "source": base.source,
            "sha256": base.sha256,
            "gguf": str(base.gguf) if base.gguf else None,
        },
        "device": loaded.device,
        "qlora": loaded.qlora,
        "dtype": loaded.dtype,
        "hyperparameters": hyper,
        "data": {
            "unit": "rows" if opts.kind == "kto" else "pairs",
            "train_rows": len(sel.train),
            "eval_rows": len(sel.eval),
            "train_questions": sel.train_questions,
            "eval_questions": sel.eval_questions,
            "truncated_prompts": sel.truncated,
            "judgments_seen": sel.judgments_seen,
            "excluded": dict(sel.excluded.most_common()),
            "guideline_versions": sel.guideline_versions,
            "train_judgment_ids": sel.judgment_ids(sel.train),
            "eval_judgment_ids": sel.judgment_ids(sel.eval),
        },
        "metrics": {
            "train_seconds": round(seconds, 1),
            "resumed_from_step": int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else 0,
            "steps": int(points[-1][0]) if points else 0,
            "loss_curve": points,
            **losses,
            "heldout": heldout,
        },
        "files": files,
        "gguf_note": gguf_note,
        "versions": {
            "medchat": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
        },
    }
    if opts.register and opts.kind == "reward":
        from chatbot.labelling.best_of import DEFAULT_TEMPERATURE
        from chatbot.training.register import register_best_of

        best_of = {"n": opts.best_of, "reward_model": name, "temperature": DEFAULT_TEMPERATURE}
        where = register_best_of(
            settings.prefs.variants_file,
            opts.register,
            best_of=best_of,
            models_dir=settings.models_dir,
            like=opts.like,
            description=f"best of {opts.best_of} answers, chosen by reward model {name} "
            f"(trained on {len(card['data']['train_judgment_ids'])} judgments)",
        )
        card["variant"], card["variants_file"] = opts.register, str(where)
        echo(f"registered variant {opts.register!r} (best of {opts.best_of}, reward model {name}) in {where}")
    elif opts.register:
        from chatbot.training.register import register_variant

        engine, path = ("llamacpp", files["gguf"]) if files.get("gguf") else ("transformers", files["merged"])
        where = register_variant(
            settings.prefs.variants_file,
            opts.register,
            engine=engine,
            model_path=path,
            like=opts.like,
            description=f"{opts.kind.upper()}-trained on {len(card['data']['train_judgment_ids'])} judgments "
            f"(run {name}, base {Path(base.label).name})",
        )
        card["variant"], card["variants_file"] = opts.register, str(where)
        echo(f"registered variant {opts.register!r} ({engine}) in {where}")
    return card
