"""`--register NAME`: add the trained model to the variants file, so Compare pits it against the others.

The new variant copies the prompt parts, retrieval k and generation settings of another variant
(`--like`, default the first in the file), so that only the model differs in the comparison. The
block is appended as text (the file's comments stay) and the file is re-read to check it; when
the check fails the file is put back as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatbot.errors import ConfigError
from chatbot.training import TrainingError


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
    import yaml

    from chatbot.labelling.variants import load_variants, parse_variants

    path = Path(path).expanduser()
    variants = {v.name: v for v in load_variants(path)}
    if name in variants:
        raise TrainingError(f"a variant named {name!r} is already in {path}: pick another --register name")
    if like is not None and like not in variants:
        raise TrainingError(f"--like {like!r}: no such variant in {path} (it has {', '.join(variants)})")
    template = variants[like] if like else next(iter(variants.values()))
    spec: dict[str, Any] = {"description": description or f"trained model {model_path}"}
    if template.prompt:
        spec["prompt"] = dict(template.prompt)
    if template.k is not None:
        spec["retrieval"] = {"k": template.k}
    if template.generation:
        spec["generation"] = dict(template.generation)
    spec["model"] = {"engine": engine, "path": str(model_path)}
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
