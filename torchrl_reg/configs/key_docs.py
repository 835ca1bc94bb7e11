"""What each config key sets, one line each: the ``#:`` comment above its field in the schema, shown by a
recipe's ``--help`` with where each value came from, and by the API reference (Sphinx's autodoc reads the same
comments)."""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

__all__ = ["config_help", "field_docs", "key_docs"]


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field that the body of ``cls`` declares (its lines joined by a space), as
    autodoc reads it::

        #: Adam learning rate
        lr: float = 2.5e-4

    A class without source (built by :func:`dataclasses.make_dataclass`) declares none."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent("".join(lines))
    text = source.splitlines()
    node = ast.parse(source).body[0]
    docs = {}
    for statement in node.body if isinstance(node, ast.ClassDef) else ():
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            comment: list[str] = []
            line = statement.lineno - 2  # the line above, 0-based
            while line >= 0 and text[line].lstrip().startswith("#:"):
                comment.insert(0, text[line].lstrip()[2:].strip())
                line -= 1
            if comment:
                docs[statement.target.id] = " ".join(comment)
    return docs


def key_docs(schema: type) -> dict[str, str]:
    """The one-line doc of each field of a config dataclass: its ``#:`` comment (:func:`field_docs`), from the
    class that declares the field last in the method resolution order (a subclass may declare a field again
    to say what it means there, e.g. ``seed``)."""
    docs: dict[str, str] = {}
    for cls in reversed(getattr(schema, "__mro__", ())):
        docs.update(field_docs(cls))
        # fields a class adds programmatically (no ``#:`` comment in any source) say what they set here
        docs.update(vars(cls).get("generated_field_docs", {}))
    names = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else set(docs)
    return {name: doc for name, doc in docs.items() if name in names}


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
