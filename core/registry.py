"""Turn names, dicts and objects into instances: the one lookup every module uses."""
import inspect

from .exceptions import ConfigError


def snake_case(name):
    out = []
    for i, ch in enumerate(name):
        prev = name[i - 1] if i else ""
        if ch.isupper() and (prev.islower() or (prev.isupper() and i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def resolve(identifier, registry, kind, aliases=None):
    """Return an instance for ``identifier``.

    ``identifier`` may be an instance (returned as is), a class name or its
    snake_case form (``"GlorotUniform"`` / ``"glorot_uniform"``), or a dict
    ``{"class_name": ..., "config": {...}}`` as written by ``serialize``.
    ``registry`` maps class names to classes.
    """
    aliases = aliases or {}
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = registry.get(name)
        if cls is None:
            raise ConfigError(f"unknown {kind} {name!r}; valid names: {sorted(registry)}")
        return cls(**identifier.get("config", {}))
    if isinstance(identifier, str):
        lookup = {snake_case(k): v for k, v in registry.items()}
        lookup.update({k: v for k, v in registry.items()})
        lookup.update(aliases)
        cls = lookup.get(identifier) or lookup.get(identifier.lower())
        if cls is None:
            aliased = set(aliases.values())  # e.g. "adamw" stands for AdamW instead of "adam_w"
            names = sorted({snake_case(k) for k, v in registry.items() if v not in aliased} | set(aliases))
            raise ConfigError(f"unknown {kind} {identifier!r}; valid names: {names}")
        return cls()
    if inspect.isclass(identifier):
        return identifier()
    return identifier


def serialize(obj):
    """``{"class_name": ..., "config": obj.get_config()}``."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}
