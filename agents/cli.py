"""The one command-line layer of beamgym: a dataclass of arguments is the parser.

:func:`dataclass_parser` / :func:`add_dataclass_arguments` turn the fields of a (frozen)
dataclass into ``--field-name`` options, typed from the field annotations, with the defaults
of the dataclass (or of a given instance); :func:`dataclass_from_args` builds the dataclass
back from the parsed namespace, so a script never copies arguments field by field.
:func:`parse_env_kwargs` is the one parser of ``--env-kw key=value`` pairs, and
:func:`train_command` the one way to write an ``examples/train.py`` command.

Field types: ``int``, ``float``, ``str`` (and their ``X | None``), ``bool``
(``--flag`` / ``--no-flag``), ``tuple[X, ...]`` (one or more values; zero or more when the
default is empty or ``None``) and ``Path``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import shlex
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "add_dataclass_arguments",
    "dataclass_from_args",
    "dataclass_parser",
    "field_help",
    "parse_env_kwargs",
    "TRAIN_SCRIPT",
    "train_command",
]


def parse_env_kwargs(pairs: Iterable[str]) -> dict[str, Any]:
    """Env keywords from ``key=value`` pairs; values are Python literals, else strings.

    Example: ``["placement=spatial-division", "N=8", "snr_db=(5, 10)"]`` ->
    ``{"placement": "spatial-division", "N": 8, "snr_db": (5, 10)}``.

    Raises:
        ValueError: A pair without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--env-kw expects key=value pairs, got {pair!r}")
        try:
            value: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[key.strip()] = value
    return out


#: The script every training command runs (:func:`train_command`, :func:`agents.runs.write_run`).
TRAIN_SCRIPT = "python examples/train.py"


def train_command(
    agent: str, env_id: str, env_kwargs: Mapping[str, Any] | None = None, **options: Any
) -> str:
    """The ``examples/train.py`` command that trains ``agent`` (used in messages and run folders).

    The one way to write a training command: every family names the command to run in its
    :class:`~agents.pretrained.CheckpointError` messages with it.

    Args:
        agent: Registry name.
        env_id: Env id.
        env_kwargs: Env keywords, written as ``--env-kw key=value`` (sorted), for trainers that
            take ``--env-kw``; families whose env keywords are training options pass them in
            ``options`` instead.
        **options: Further trainer options in order, ``name=value`` -> ``--name-with-dashes
            value``: a tuple or list gives several values, ``True`` / ``False`` give ``--name``
            / ``--no-name``, ``None`` leaves the option out; ``out`` (the output folder) comes
            last.

    Returns:
        A shell-quoted command line, e.g. ``python examples/train.py --agent upga_m --env
        beamgym/ModularUplink-v0 --P 8 --out runs/p8``.

    Raises:
        ValueError: An empty ``agent`` or ``env_id``, or an option value that is not a
            number, string, path, bool or tuple of them.
    """
    if not agent or not env_id:
        raise ValueError(f"train_command needs an agent and an env id, got {agent!r}, {env_id!r}")
    cmd = ["--agent", agent, "--env", env_id]
    if env_kwargs:
        cmd += ["--env-kw", *(f"{k}={_literal_text(v)}" for k, v in sorted(env_kwargs.items()))]
    out = options.pop("out", None)
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            cmd.append(flag if value else "--no-" + flag[2:])
            continue
        values = value if isinstance(value, tuple | list) else (value,)
        cmd += [flag, *(_option_text(name, v) for v in values)]
    if out is not None:
        cmd += ["--out", str(out)]
    return f"{TRAIN_SCRIPT} {shlex.join(cmd)}"


def _option_text(name: str, v: Any) -> str:
    """A command-line value: integral floats without ``.0`` (``20.0`` -> ``20``)."""
    if isinstance(v, bool) or not isinstance(v, int | float | str | Path):
        raise ValueError(f"train_command option {name}: cannot write {v!r} on a command line")
    if isinstance(v, float) and float(f"{v:g}") == v:
        return f"{v:g}"
    return str(v)


def _literal_text(v: Any) -> str:
    if isinstance(v, list):
        v = tuple(v)
    return v if isinstance(v, str) else repr(v)


def field_help(cls: type) -> dict[str, str]:
    """The attribute docstrings (``x: int = 1`` then ``\"\"\"Doc.\"\"\"``) of a dataclass."""
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    for i, line in enumerate(lines[:-1]):
        head = line.strip().split(":", 1)[0]
        nxt = lines[i + 1].strip()
        if head in names and nxt.startswith('"""'):
            out[head] = nxt.strip('"').strip()
    return out


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``(inner type, optional)`` of ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    defaults: Any = None,
    exclude: Iterable[str] = (),
) -> None:
    """Add one ``--field-name`` option per field of the dataclass ``cls``.

    Args:
        parser: Parser or argument group to add to.
        cls: The dataclass.
        defaults: An instance (or mapping) whose values are the defaults (default: the
            dataclass defaults).
        exclude: Field names to leave out.

    Raises:
        ValueError: A field type the parser cannot read from the command line.
    """
    hints = typing.get_type_hints(cls)
    docs = field_help(cls)
    skip = set(exclude)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        if isinstance(defaults, Mapping) and f.name in defaults:
            default = defaults[f.name]
        elif defaults is not None and not isinstance(defaults, Mapping):
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        flag = "--" + f.name.replace("_", "-")
        tp, _ = _unwrap(hints[f.name])
        kw: dict[str, Any] = {"dest": f.name, "help": docs.get(f.name, "")}
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, **kw)
            continue
        if typing.get_origin(tp) is tuple:
            inner = _unwrap(typing.get_args(tp)[0])[0]
            kw["nargs"] = "*" if default in ((), None) else "+"
            tp = inner
            default = None if default is None else list(default)
        if tp not in (int, float, str, Path):
            raise ValueError(f"{cls.__name__}.{f.name}: unsupported field type {hints[f.name]}")
        kw["help"] = (kw["help"] + f" (default: {default})").strip()
        parser.add_argument(flag, type=tp, default=default, **kw)


def dataclass_from_args(cls: type, ns: argparse.Namespace, **overrides: Any) -> Any:
    """Build the dataclass ``cls`` from a namespace parsed with :func:`add_dataclass_arguments`.

    Lists become tuples; ``overrides`` replace fields; fields absent from ``ns`` keep their
    defaults. The dataclass's ``__post_init__`` checks the values.
    """
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            kw[f.name] = overrides[f.name]
        elif hasattr(ns, f.name):
            v = getattr(ns, f.name)
            kw[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


def dataclass_parser(
    cls: type, *, prog: str | None = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """A parser of the dataclass ``cls`` (its docstring's first line as description)."""
    doc = (cls.__doc__ or "").strip().splitlines()
    parser = argparse.ArgumentParser(prog=prog, description=doc[0] if doc else None)
    add_dataclass_arguments(parser, cls, **kwargs)
    return parser
