"""Typed configuration: one frozen dataclass per stage, and the command line derived from it.

Each field is declared with :func:`option`, which records its help text, unit and valid choices.
:func:`add_arguments` turns the dataclass into ``argparse`` options and :func:`from_namespace` /
:func:`from_dict` turn user input back into a validated instance. Values arrive as strings and are
converted here, so a bad value produces the project's error sentence rather than argparse's. Errors
name a setting by its upper-case name (``EPS``), which is also its Make variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ConfigError, must

T = TypeVar("T")
MIN_WIDTH, MAX_WIDTH = 2, 16  # operand widths every generator, evaluator and characterisation handles


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    unit: str | None = None,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
    cli: bool = True,
    before: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with what the command line and the docs need to know about it.

    ``before``: for a setting added after runs were stored, the value that reproduces what those runs did;
    a ``--resume`` of a run whose ``config.json`` lacks the setting takes it instead of the default."""
    meta = {"help": help, "unit": unit, "choices": choices, "flag": flag, "cli": cli}
    if before is not dataclasses.MISSING:
        meta["before"] = before
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return dataclasses.field(default=default, metadata=meta)


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """The value type of an annotation and whether ``None`` is allowed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _convert(name: str, tp: Any, raw: Any, choices: tuple[str, ...] | None) -> Any:
    base, optional = _base_type(tp)
    if raw is None:
        if optional:
            return None
        raise must(name, "given", raw)
    if typing.get_origin(base) is tuple:
        (inner,) = {a for a in typing.get_args(base) if a is not Ellipsis}
        items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(",", " ").split()
        return tuple(_convert(name, inner, item, choices) for item in items)
    if choices is not None and str(raw) not in choices:
        raise must(name, "one of the listed choices", raw, choices)
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw) if isinstance(raw, int) else int(str(raw), 0)
        if base is float:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
            if math.isfinite(value):
                return value
        if base is Path:
            return Path(raw)
        if base is str:
            return str(raw)
    except ValueError:
        kind = {bool: "a boolean (1/0, true/false)", int: "an integer", float: "a number"}[base]
        raise must(name, kind, raw) from None
    if base is float:  # nan passes every comparison a range check makes, inf every upper-bound-free one
        raise must(name, "a finite number", value)
    raise TypeError(f"unsupported option type {tp!r} for {name}")


def fields(cls: type) -> list[dataclasses.Field]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        f.type = hints[f.name]
        out.append(f)
    return out


class _Renamed(argparse.Action):
    """An option's old spelling: a one-line error naming the new one (raised while parsing)."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any):
        self.new = new
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        raise ConfigError(f"{option_string} is now {self.new}")


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                  renamed: dict[str, str] | None = None) -> None:
    """Declare one option per CLI-visible field of ``cls``; help text shows default and unit.

    ``renamed``: old option spelling -> new one; the old one is refused in one line that names the new."""
    group = parser.add_argument_group(cls.__name__)
    for old, new in (renamed or {}).items():
        parser.add_argument(old, dest=f"_renamed_{old.lstrip('-')}", action=_Renamed, new=new)
    for f in fields(cls):
        if not f.metadata.get("cli", True) or f.name in exclude:
            continue
        base, _ = _base_type(f.type)
        help_text = f.metadata["help"]
        if f.metadata.get("unit"):
            help_text += f" [{f.metadata['unit']}]"
        if f.default is not dataclasses.MISSING:
            shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            help_text += f" (default: {shown})"
        help_text = help_text.replace("%", "%%")
        if base is bool:
            group.add_argument(_flag(f), dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        elif typing.get_origin(base) is tuple:
            group.add_argument(_flag(f), dest=f.name, nargs="+", default=None, help=help_text,
                               metavar=f.name.upper())
        else:
            group.add_argument(_flag(f), dest=f.name, default=None, help=help_text,
                               metavar=f.name.upper(), choices=None)


def from_namespace(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from parsed arguments; options not given keep their defaults."""
    values = {f.name: getattr(ns, f.name) for f in fields(cls) if getattr(ns, f.name, None) is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, values)


def from_dict(cls: type[T], data: dict[str, Any], *, source: str = "configuration") -> T:
    """Build ``cls`` from a mapping of raw values; an unknown key is an error that lists the known ones."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source} has unknown key {unknown[0]!r} (valid keys: {', '.join(sorted(known))})")
    kwargs = {}
    for name, raw in data.items():
        f = known[name]
        kwargs[name] = _convert(name.upper(), f.type, raw, f.metadata.get("choices"))
    missing = [f.name for f in known.values()
               if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{missing[0].upper()} must be given ({_flag(known[missing[0]])})")
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dictionary of a config dataclass (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return to_dict(v)
        return v

    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False) -> None:
    """Raise the project error when ``value`` lies outside the (half-)open interval (or is not finite)."""
    if not math.isfinite(value):
        raise must(name, "a finite number", value)
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        rule = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise must(name, rule, value)




def check_width(name: str, value: int | None) -> None:
    """An operand width (``None``: not given) in MIN_WIDTH..MAX_WIDTH: the one check every command makes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_WIDTH <= value <= MAX_WIDTH:
        raise must(name, f"an operand width in {MIN_WIDTH}..{MAX_WIDTH}", value)


def check_clock(clock_period: float | None, sim_period: float | None = None) -> None:
    """``CLOCK_PERIOD`` and ``SIM_PERIOD`` in ns (``None``: derived): positive, the second no shorter."""
    if clock_period is not None and not clock_period > 0:
        raise must("CLOCK_PERIOD", "> 0 ns", clock_period)
    if sim_period is not None and not sim_period > 0:
        raise must("SIM_PERIOD", "> 0 ns", sim_period)
    if sim_period is not None and clock_period is not None and sim_period < clock_period:
        raise must("SIM_PERIOD", f">= CLOCK_PERIOD ({clock_period:g} ns)", sim_period)


def check_tag(tag: str | None) -> None:
    """A run name (``--tag``): one directory name."""
    if tag is not None and (not tag or "/" in tag or tag.startswith(".")):
        raise must("TAG", "a directory name without '/'", tag)
