"""`medchat train dpo|kto|reward`: a model trained on the stored judgments, servable as a variant."""

from __future__ import annotations

import re

import click

from chatbot.cli import _settings, _user_errors, main

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_name(name: str, option: str = "--name") -> None:
    """A run name is one folder under the models folder: never a path out of it (`../../x`, `/etc`)."""
    from chatbot.errors import ConfigError

    if not RUN_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{option} {name[:60]!r} is not a run name: use up to 100 letters, digits, '-', '_' or '.' "
            "(no '/' or '..'), e.g. dpo-ward3; the run is written in $MEDCHAT_HOME/models/NAME"
        )


@main.command(name="train")
@click.argument("kind", type=click.Choice(["dpo", "kto", "reward"]))
@click.option(
    "--base",
    default=None,
    help="Model to train: a GGUF file, a transformers folder or a hub id "
    "(default: the generation model, the bundled SmolLM2).",
)
@click.option(
    "--name",
    default=None,
    help="Run name: output in $MEDCHAT_HOME/models/NAME (default KIND-time).",
)
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option(
    "--max-steps", type=int, default=-1, help="Stop after this many optimizer steps (overrides epochs)."
)
@click.option(
    "--lr",
    "--learning-rate",
    "learning_rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Learning rate (default 5e-5 for dpo/kto, 1e-4 for reward: LoRA adapters).",
)
@click.option(
    "--beta",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="DPO/KTO: how far the model may move from the base.",
)
@click.option("--rank", type=click.IntRange(1, 512), default=16, show_default=True, help="LoRA rank.")
@click.option(
    "--max-length",
    type=click.IntRange(64, 131072),
    default=None,
    help="Tokens of prompt + answer; passages are shortened to fit, never the question or answers "
    "(default 512 on a CPU, 1024 on a GPU).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=None,
    help="Pairs per step (default 1 on a CPU, 2 for KTO; 2 on a GPU).",
)
@click.option(
    "--grad-accum",
    type=click.IntRange(1, 1024),
    default=None,
    help="Steps of gradients summed per update (default: 4 pairs an update on a CPU, 2 on a GPU).",
)
@click.option(
    "--precompute-ref/--no-precompute-ref",
    default=None,
    help="DPO/KTO: compute the reference log-probabilities once before training "
    "(default on a CPU; otherwise the adapter-off model at every step).",
)
@click.option(
    "--eval-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of the questions held out for scoring (split by question).",
)
@click.option(
    "--min-pairs",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Refuse to train on fewer usable training pairs.",
)
@click.option(
    "--aggregate",
    type=click.Choice(["majority", "strength"]),
    default="majority",
    show_default=True,
    help="How several annotators' votes on one pair become one row (as `medchat export`).",
)
@click.option(
    "--same-prompt-only", is_flag=True, help="Only pairs whose two answers came from the same prompt."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue run --name from its last checkpoint (a rerun of a stopped run does this anyway).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--qlora/--no-qlora",
    default=None,
    help="4-bit (nf4) base with LoRA on top; default on with a CUDA GPU. Without one: LoRA on the CPU.",
)
@click.option(
    "--save-steps",
    type=click.IntRange(1),
    default=None,
    help="Checkpoint every N steps (default 10 on a CPU, 50 on a GPU); a rerun continues from the last.",
)
@click.option(
    "--gguf/--no-gguf",
    default=True,
    show_default=True,
    help="Also write the merged model as a GGUF for llama.cpp (when the base is a GGUF).",
)
@click.option(
    "--gguf-type",
    type=click.Choice(["f16", "f32", "q8_0", "q4_1", "q4_0", "q5_1"]),
    default="f16",
    show_default=True,
    help="Type of the trained tensors in the GGUF. A LoRA change is far smaller than 8- or 4-bit "
    "rounding steps: q8_0 kept about 10% of it in a test run, f16 about 90-99%; the card records the share.",
)
@click.option(
    "--register",
    default=None,
    metavar="NAME",
    help="Add the trained model to the variants file (a reward model: with --best-of N).",
)
@click.option(
    "--like",
    default=None,
    metavar="VARIANT",
    help="With --register: copy this variant's prompt, k and generation settings (default: the first).",
)
@click.option(
    "--best-of",
    type=click.IntRange(2, 16),
    default=None,
    metavar="N",
    help="Reward models, with --register: the variant writes N answers (temperature 0.7, seeds seed.."
    "seed+N-1) and serves the one this reward model scores best.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_user_errors
def train(kind: str, **kw: object) -> None:
    """Train on the judgments in the preference store: DPO, KTO or a reward model, with LoRA.

    Judgments are selected as `medchat export` selects them (ties, unsafe-preferred, gold,
    superseded, empty and self-naming answers left out and counted) and split by question into
    training and held-out sets. The adapter, the merged model, a card, metrics.json, report.md
    and loss.png go to $MEDCHAT_HOME/models/NAME/.
    """
    from chatbot.labelling.store.prefs import open_store
    from chatbot.training.run import Options
    from chatbot.training.run import train as run_training

    if kw.get("name") is not None:
        check_run_name(str(kw["name"]))
    progress = not kw.pop("no_progress")
    opts = Options(kind=kind, progress=progress, **kw)  # type: ignore[arg-type]
    settings = _settings()
    result = run_training(open_store(settings), settings, opts, echo=lambda s: click.echo(s, err=True))
    if not result.card:  # a second process of `accelerate launch`: the first reports
        return
    h = result.card["metrics"]["heldout"]
    acc = h.get("accuracy")
    click.echo(
        f"run {result.name}: held-out {h.get('score')} accuracy "
        + (
            f"{100 * acc:.1f}% on {h['pairs']} pairs, mean margin {h['margin_mean']:.4f}"
            if acc is not None
            else "n/a (nothing held out)"
        )
    )
    click.echo(f"adapter, merged model, card and report in {result.run_dir}")
