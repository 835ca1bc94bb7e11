"""What each config key sets, one line each: the schemas' ``docs``, shown by a recipe's ``--help`` with
where each value came from."""
from __future__ import annotations

from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

__all__ = ["SHARED_KEY_DOCS", "config_help", "key_docs"]


#: Keys that mean the same in every loss config that has them (a class's own ``docs`` may override).
SHARED_KEY_DOCS = {
    "alpha": "weight of the Munchausen / advantage term (0: no term)",
    "tau": "entropy temperature (the softmax policy's)",
    "clip_value_min": "lower clip of the Munchausen term tau ln pi",
    "clip_value_max": "upper clip of the Munchausen term tau ln pi",
    "loss_function": "regression loss of the critic: l2, l1 or smooth_l1 (Huber)",
}


def key_docs(schema: type) -> dict[str, str]:
    """The one-line doc of each key of a config dataclass: :data:`SHARED_KEY_DOCS`, then its ``docs`` class
    variable merged over its bases."""
    docs: dict[str, str] = dict(SHARED_KEY_DOCS)
    for cls in reversed(getattr(schema, "__mro__", ())):
        docs.update(vars(cls).get("docs", {}))
    return docs


def config_help(cfg: DictConfig, sources: Mapping[str, str] | None = None) -> list[str]:
    """``key=value  what it sets`` for every key of a composed, typed recipe config (``--help``), the
    doc from the schema's :func:`key_docs`; with ``sources`` (key -> the file or ``command line`` that set
    it, :func:`~torchrl_reg.configs.config_sources`), ``  [source]`` after it, ``[schema default]`` for a
    key no file or override set."""
    lines: list[str] = []

    def walk(node: DictConfig, prefix: str) -> None:
        docs = key_docs(OmegaConf.get_type(node))
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                walk(child, f"{prefix}{key}.")
            else:
                value = OmegaConf.to_container(child) if OmegaConf.is_list(child) else child._value()
                shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
                line = f"{prefix}{key}={shown}  {docs.get(key, '')}".rstrip()
                if sources is not None:
                    line += f"  [{sources.get(prefix + str(key), 'schema default')}]"
                lines.append(line)

    walk(cfg, "")
    return lines
