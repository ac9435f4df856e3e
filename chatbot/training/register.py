"""`--register NAME`: add the trained model to the variants file, so Compare pits it against the others.

The new variant copies the prompt parts, retrieval k and generation settings of another variant
(`--like`, default the first in the file), so that only the model differs in the comparison. A
reward model is registered as a best-of variant instead (`--best-of N`): `--like`'s settings (and
model, if it has one) with `best_of: {n, reward_model, temperature}`, so that only the choice among
N answers differs. The block is appended as text (the file's comments stay) and the file is re-read
to check it; when the check fails the file is put back as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import ConfigError
from chatbot.training import TrainingError

if TYPE_CHECKING:
    from chatbot.labelling.variants import Variant


def _block(name: str, spec: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump({name: spec}, sort_keys=False, allow_unicode=True, width=200)


def register_variant(
    path: Path,
    name: str,
    *,
    engine: str,
    model_path: str,
    like: str | None = None,
    description: str = "",
) -> Path:
    """A variant serving the trained model, with `like`'s prompt, k and generation settings."""
    return _append(
        path,
        name,
        like,
        lambda template: (
            _copied(template, description or f"trained model {model_path}")
            | {"model": {"engine": engine, "path": str(model_path)}}
        ),
    )


def register_best_of(
    path: Path,
    name: str,
    *,
    best_of: dict[str, Any],
    models_dir: Path,
    like: str | None = None,
    description: str = "",
) -> Path:
    """A variant that answers as `like` does (its model too, if it has one) and serves the best of
    `best_of["n"]` answers by the reward model `best_of["reward_model"]` (checked to be one)."""
    from chatbot.labelling.best_of import parse_best_of, reward_model_dir

    try:
        reward_model_dir(models_dir, parse_best_of(best_of, variant=name, where=str(path)), name)
    except ConfigError as e:
        raise TrainingError(str(e)) from e

    def spec(template: Variant) -> dict[str, Any]:
        out = _copied(template, description or f"best of {best_of['n']} by {best_of['reward_model']}")
        if (out.get("generation") or {}).get("grounding") == "extractive":
            raise TrainingError(
                f"--like {template.name!r} quotes passages (grounding extractive), so there are no answers "
                "to choose among: pick a variant whose grounding is free or checked"
            )
        if template.model:
            out["model"] = dict(template.model)
        return out | {"best_of": dict(best_of)}

    return _append(path, name, like, spec)


def _copied(template: Variant, description: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": description}
    if template.prompt:
        spec["prompt"] = dict(template.prompt)
    if template.k is not None:
        spec["retrieval"] = {"k": template.k}
    if template.generation:
        spec["generation"] = dict(template.generation)
    return spec


def _append(path: Path, name: str, like: str | None, make: Callable[[Variant], dict[str, Any]]) -> Path:
    import yaml

    from chatbot.labelling.variants import load_variants, parse_variants

    path = Path(path).expanduser()
    variants = {v.name: v for v in load_variants(path)}
    if name in variants:
        raise TrainingError(f"a variant named {name!r} is already in {path}: pick another --register name")
    if like is not None and like not in variants:
        raise TrainingError(f"--like {like!r}: no such variant in {path} (it has {', '.join(variants)})")
    spec = make(variants[like] if like else next(iter(variants.values())))
    original = path.read_text(encoding="utf-8")
    data = yaml.safe_load(original)
    if list(data)[-1] != "variants":
        raise TrainingError(f"{path}: `variants:` must be the last section of the file to append to it")
    indented = "".join(f"  {line}\n" for line in _block(name, spec).splitlines())
    updated = original.rstrip("\n") + f"\n  # added by `medchat train --register {name}`\n" + indented
    path.write_text(updated, encoding="utf-8")
    try:
        parse_variants(yaml.safe_load(updated), where=str(path))
    except (ConfigError, yaml.YAMLError) as e:
        path.write_text(original, encoding="utf-8")
        raise TrainingError(f"could not add variant {name!r} to {path}: {e}") from e
    return path
