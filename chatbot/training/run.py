"""One training run, end to end: select, load, train with TRL + peft, score, save, record, register."""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.training import KINDS, TrainingError

if TYPE_CHECKING:
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.settings import Settings
    from chatbot.training.base import BaseModel, Loaded
    from chatbot.training.data import Selection

log = logging.getLogger(__name__)

# LoRA adapters learn at far higher rates than TRL's full-model defaults (1e-6)
DEFAULT_LR = {"dpo": 5e-5, "kto": 5e-5, "reward": 1e-4}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


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
    max_length: int = 1024
    batch_size: int = 2
    grad_accum: int = 1
    max_steps: int = -1
    eval_fraction: float = 0.2
    min_pairs: int = 8
    aggregate: str = "majority"
    same_prompt_only: bool = False
    seed: int = 0
    resume: bool = False
    device: str = "auto"
    qlora: bool | None = None
    save_steps: int = 50
    gguf: bool = True
    gguf_type: str = "f16"
    register: str | None = None
    like: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise TrainingError(f"unknown training kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind == "kto" and self.batch_size < 2:
            raise TrainingError(
                "KTO needs --batch-size 2 or more (its KL term compares answers within a batch)"
            )
        if self.register and self.kind == "reward":
            raise TrainingError(
                "a reward model scores answers, it does not write them: --register works with dpo and kto"
            )
        if self.resume and not self.name:
            raise TrainingError("--resume needs --name: the run whose checkpoints to continue from")


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
        "gradient_checkpointing": loaded.device == "cuda",
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

        kwargs["args"] = DPOConfig(**common, beta=opts.beta)
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
        kwargs["args"] = KTOConfig(**common, beta=opts.beta, **weights)
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
    name = opts.name or f"{opts.kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    run_dir = settings.models_dir / name
    if run_dir.exists() and not opts.resume and any(run_dir.iterdir()):
        raise TrainingError(
            f"a run named {name!r} exists at {run_dir}: pass --resume to continue it, or another --name"
        )
    checkpoint: str | None = None
    if opts.resume:
        found = sorted(
            (run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])
        )
        if not found:
            raise TrainingError(
                f"no checkpoint under {run_dir / 'checkpoints'} to resume from: start without --resume"
            )
        checkpoint = str(found[-1])

    torch.manual_seed(opts.seed)
    base = base_mod.resolve_base(opts.base, settings)
    sel = data.select(
        store,
        opts.kind,
        max_length=opts.max_length,
        tokenizer=lambda: AutoTokenizer.from_pretrained(
            base_mod.prepare(base, settings).source, local_files_only=base.local
        ),
        eval_fraction=opts.eval_fraction,
        seed=opts.seed,
        min_pairs=opts.min_pairs,
        aggregate=opts.aggregate,
        same_prompt_only=opts.same_prompt_only,
    )
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
        records.finish(store, run_id, status="failed", error=f"{type(e).__name__}: {e}")
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
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - t0
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
    if opts.register:
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


def describe(opts: Options) -> dict[str, Any]:
    return asdict(opts)
