"""The one command-line layer of beamgym: a dataclass of arguments is the parser.

:func:`dataclass_parser` / :func:`add_dataclass_arguments` turn the fields of a (frozen)
dataclass into ``--field-name`` options, typed from the field annotations, with the defaults
of the dataclass (or of a given instance); :func:`dataclass_from_args` builds the dataclass
back from the parsed namespace, so a script never copies arguments field by field.
:func:`parse_env_kwargs` is the one parser of ``--env-kw key=value`` pairs, and
:func:`train_command` the one way to write an ``examples/train.py`` command.

Bad values never turn into tracebacks: a ``float`` field rejects NaN and inf as it is parsed,
the dataclass's ``__post_init__`` checks the rest, and :func:`dataclass_from_args` reports its
``ValueError`` with the field names rewritten as the flags that set them
(:func:`name_flags`), through ``parser.error`` (one ``error: --episodes must be >= 1, got 0``
line, exit status 2). :func:`check_output_folder` / :func:`output_folder` check an ``--out``
folder before any work is done.

Field types: ``int``, ``float``, ``str`` (and their ``X | None``), ``bool``
(``--flag`` / ``--no-flag``), ``tuple[X, ...]`` (one or more values; zero or more when the
default is empty or ``None``) and ``Path``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import os
import re
import shlex
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "add_dataclass_arguments",
    "check_output_folder",
    "dataclass_from_args",
    "dataclass_parser",
    "field_help",
    "finite_float",
    "flag_of",
    "name_flags",
    "output_folder",
    "parse_env_kwargs",
    "parse_agent_entry",
    "TRAIN_SCRIPT",
    "positive_int",
    "train_command",
]


def parse_env_kwargs(pairs: Iterable[str]) -> dict[str, Any]:
    """Env keywords from ``key=value`` pairs; values are Python literals, else strings.

    ``true`` / ``false`` (any case, as TOML and shells spell them) are the bools.
    Example: ``["placement=spatial-division", "N=8", "snr_db=(5, 10)", "flag=true"]`` ->
    ``{"placement": "spatial-division", "N": 8, "snr_db": (5, 10), "flag": True}``.

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
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        out[key.strip()] = value
    return out


def parse_agent_entry(entry: str, flag: str = "--agent") -> tuple[str, dict[str, Any]]:
    """An agent and its keywords from ``name`` or ``name:key=value,key=value``.

    Example: ``"beamspace_feedback:link=noiseless,bits=64"`` ->
    ``("beamspace_feedback", {"link": "noiseless", "bits": 64})`` (values are Python
    literals, else strings, as in :func:`parse_env_kwargs`).

    Raises:
        ValueError: An empty name or a keyword item without ``=``; the message names ``flag``.
    """
    name, sep, rest = str(entry).partition(":")
    if not name.strip():
        raise ValueError(f"{flag} expects name or name:key=value,..., got {entry!r}")
    items = [item for item in rest.split(",") if item.strip()] if sep else []
    try:
        return name.strip(), parse_env_kwargs(items)
    except ValueError:
        raise ValueError(
            f"{flag} expects name or name:key=value,key=value, got {entry!r}"
        ) from None


#: The script every training command runs (:func:`train_command`, :func:`agents.runs.write_run`).
TRAIN_SCRIPT = "python examples/train.py"


def flag_of(name: str) -> str:
    """The command-line flag of the field or keyword ``name``: ``snr_db`` -> ``--snr-db``."""
    return "--" + name.replace("_", "-")


def name_flags(message: str, names: Iterable[str] = (), *, env_kw: Iterable[str] = ()) -> str:
    """``message`` with the field names in ``names`` rewritten as their flags.

    ``"episodes must be >= 1, got 0"`` -> ``"--episodes must be >= 1, got 0"``; an env
    keyword set with ``--env-kw`` (``env_kw``) becomes ``--env-kw N``. Only the first mention
    of each name is rewritten, and only as a whole word (not quoted, not part of a longer name
    or of a flag already written out).

    Args:
        message: An error message (typically a dataclass ``__post_init__``'s).
        names: Field names that the command line sets with ``--name``.
        env_kw: Keywords that the command line sets with ``--env-kw name=value``.
    """
    subs = {str(k): f"--env-kw {k}" for k in env_kw}
    subs.update({str(n): flag_of(str(n)) for n in names})
    subs = {k: v for k, v in subs.items() if k}
    if not subs:
        return message
    alternatives = "|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.'\"-])({alternatives})(?![\w'\"-])")
    done: set[str] = set()

    def flag(m: re.Match[str]) -> str:
        word = m.group(1)
        if word in done:  # the first mention names the flag; later ones read as words
            return word
        done.add(word)
        return subs[word]

    return pattern.sub(flag, message)


def finite_float(text: str) -> float:
    """Argparse type: a finite float (NaN and inf are refused with the flag named)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def check_output_folder(path: str | Path, name: str = "out") -> Path:
    """``path`` as a :class:`Path` if it can be an output folder, checked before any work.

    It must be a directory already or be creatable: not an existing file, and its nearest
    existing ancestor a writable directory.

    Args:
        path: The folder.
        name: The argument's name, for the message.

    Raises:
        ValueError: Naming ``name``, the path and what to change.
    """
    out = Path(path)
    if str(path) == "" or out.exists() and not out.is_dir():
        raise ValueError(
            f"{name} {str(path)!r} is an existing file, not a folder; choose another path"
        )
    parent = out
    while not parent.exists():
        if parent.parent == parent:  # pragma: no cover - the root always exists
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(
            f"{name} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a folder; "
            "choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"{name} {str(path)!r} is not writable (no write permission on {str(parent)!r}); "
            "choose a writable folder"
        )
    return out


def output_folder(text: str) -> Path:
    """Argparse type: :func:`check_output_folder` of ``text`` (the flag is named)."""
    try:
        return check_output_folder(text, "the output folder")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


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
        parser.add_argument(flag, type=finite_float if tp is float else tp, default=default, **kw)


def dataclass_from_args(
    cls: type,
    ns: argparse.Namespace,
    *,
    parser: argparse.ArgumentParser | None = None,
    **overrides: Any,
) -> Any:
    """Build the dataclass ``cls`` from a namespace parsed with :func:`add_dataclass_arguments`.

    Lists become tuples; ``overrides`` replace fields; fields absent from ``ns`` keep their
    defaults. The dataclass's ``__post_init__`` checks the values; its ``ValueError`` names
    the flags (:func:`name_flags`) of the fields read from ``ns``.

    Args:
        cls: The dataclass.
        ns: The parsed namespace.
        parser: If given, a rejected value ends the program through ``parser.error`` (usage,
            one ``error:`` line naming the flag, exit status 2).
        **overrides: Field values set by the caller (not by a flag of their own name).

    Raises:
        ValueError: A value ``__post_init__`` rejects (when no ``parser`` is given).
    """
    kw: dict[str, Any] = {}
    flags: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            kw[f.name] = overrides[f.name]
        elif hasattr(ns, f.name):
            v = getattr(ns, f.name)
            kw[f.name] = tuple(v) if isinstance(v, list) else v
            flags.append(f.name)
    try:
        return cls(**kw)
    except ValueError as exc:
        message = name_flags(str(exc), flags)
        if parser is not None:
            parser.error(message)
        raise ValueError(message) from exc


def dataclass_parser(
    cls: type, *, prog: str | None = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """A parser of the dataclass ``cls`` (its docstring's first line as description)."""
    doc = (cls.__doc__ or "").strip().splitlines()
    parser = argparse.ArgumentParser(prog=prog, description=doc[0] if doc else None)
    add_dataclass_arguments(parser, cls, **kwargs)
    return parser
