"""Typed, frozen settings that are at once a command's options, a config section and provenance.

A settings class is a frozen dataclass deriving from `Settings` whose fields are declared with
`option(...)`. That one declaration gives

- the command-line flag (`--field-name`; type, default and help from the field): `add_arguments`;
- the parsed, typed value a stage works with: `from_args`;
- the same settings read from the workflow config (keys named like the fields): `from_config`;
- the flags that pass them on, which the Snakemake rules put into their commands:
  `command_line`;
- the provenance record: `record`.

So a flag is defined in one place, its field, and the rules never spell it. A field whose type is
itself a `Settings` class is an option group: its flags sit at the top level of the command, and
its record is merged into the parent's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 - argparse's name
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    render: Callable[[Any], str] = str,
    nargs: str | None = None,
    elide_default: bool = False,
) -> Any:
    """A settings field that is also the flag `--<name>`; no default: a required flag.
    `parse` turns the flag's text into the value (default: the field's type; it runs in
    `from_args`, so its ValueError reaches the user as `codit <stage>: error: ...`) and `render`
    the value back into that text. A tuple field is a repeatable flag (`--x a --x b`), or with
    `nargs="+"` one flag with several values (`--x a b`). `elide_default`: `command_line` leaves
    the flag out at its default (an option added later, so that earlier commands stay equal)."""
    if isinstance(default, list | dict):
        raise TypeError("a mutable default is shared between instances; use a tuple or None")
    metadata = {
        "help": help,
        "choices": choices,
        "metavar": metavar,
        "parse": parse,
        "render": render,
        "nargs": nargs,
        "elide_default": elide_default,
    }
    return dataclasses.field(default=default, metadata=metadata)


def json_object(flag: str) -> Callable[[str], dict[str, Any]]:
    """A `parse` for a flag whose text is a JSON object; its errors name `flag`."""

    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{flag} is not valid JSON ({error.msg})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{flag} must be a JSON object, got {text!r}")
        return value

    return parse


def json_text(value: Any) -> str:
    """The `render` of a JSON option: keys sorted, so equal settings give equal commands."""
    return json.dumps(value, sort_keys=True)


def group(settings: type[Settings], title: str) -> Any:
    """A field holding an option group (another settings class); it defaults to the group's
    defaults when the group has a default for every field."""
    metadata = {"group": title}
    if any(_required(field) for field in dataclasses.fields(settings)):
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default_factory=settings, metadata=metadata)


def _required(field: dataclasses.Field) -> bool:
    missing = dataclasses.MISSING
    return field.default is missing and field.default_factory is missing


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the type a flag's text converts to, whether None is allowed) of a field annotation."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        (annotation,) = members
    return annotation, optional


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of the settings classes (see the module docstring). Subclasses are
    `@dataclass(frozen=True, kw_only=True)`, so required and defaulted fields mix in any order.
    `flag_prefix` names every flag of a class (`judge_` -> `--judge-url` for the field `url`)."""

    flag_prefix: ClassVar[str] = ""

    @classmethod
    def _fields(cls) -> list[tuple[dataclasses.Field, Any]]:
        hints = typing.get_type_hints(cls)
        return [(field, hints[field.name]) for field in dataclasses.fields(cls)]

    @classmethod
    def dest(cls, name: str) -> str:
        """Where argparse keeps the field `name`: `judge_url` for `url` of a `judge_` class."""
        return cls.flag_prefix + name

    @classmethod
    def flag(cls, name: str) -> str:
        """The flag of the field `name`: `max_length` -> `--max-length`."""
        return "--" + cls.dest(name).replace("_", "-")

    @classmethod
    def add_arguments(
        cls, parser: argparse.ArgumentParser, into: argparse._ArgumentGroup | None = None
    ) -> None:
        """Add one flag per field to `parser` (or its group `into`); an option group gets an
        argument group of its own (argparse groups do not nest, so each is made on `parser`)."""
        target = into or parser
        for field, annotation in cls._fields():
            if "group" in field.metadata:
                annotation.add_arguments(parser, parser.add_argument_group(field.metadata["group"]))
                continue
            base, _ = _base_type(annotation)
            kwargs: dict[str, Any] = {"help": field.metadata["help"], "dest": cls.dest(field.name)}
            if field.default is dataclasses.MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = field.default
            if field.metadata["metavar"]:
                kwargs["metavar"] = field.metadata["metavar"]
            if base is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif typing.get_origin(base) is tuple:
                (item, _) = typing.get_args(base)
                kwargs |= {"type": item, "default": None}
                if field.metadata["nargs"]:
                    kwargs["nargs"] = field.metadata["nargs"]
                else:
                    kwargs["action"] = "append"
            else:
                kwargs["type"] = str if field.metadata["parse"] else base
                if field.metadata["choices"]:
                    kwargs["choices"] = field.metadata["choices"]
            target.add_argument(cls.flag(field.name), **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """The settings a parsed command line holds (repeated flags become tuples)."""
        values = {}
        for field, annotation in cls._fields():
            if "group" in field.metadata:
                values[field.name] = annotation.from_args(args)
                continue
            value = getattr(args, cls.dest(field.name))
            if typing.get_origin(_base_type(annotation)[0]) is tuple:
                value = tuple(value) if value is not None else field.default
            elif field.metadata["parse"] and isinstance(value, str):
                value = field.metadata["parse"](value)
            values[field.name] = value
        return cls(**values)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **values: Any) -> Self:
        """The settings of a config section (keys named like the fields), with `values` set
        on top; keys of the section that are no field are left alone."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
        return cls(**{key: value for key, value in section.items() if key in names} | values)

    def command_line(self) -> str:
        """The flags that pass these settings on to the command. None is left out, and so is a
        switch at its default, as a store_true flag would be (`--compile` only when on), and an
        `elide_default` option at its default."""
        parts = []
        for field, annotation in self._fields():
            value, option_flag = getattr(self, field.name), self.flag(field.name)
            is_switch = _base_type(annotation)[0] is bool
            if "group" in field.metadata:
                parts.append(value.command_line())
            elif value is None or (
                (is_switch or field.metadata["elide_default"]) and value == field.default
            ):
                continue
            elif is_switch:
                parts.append(option_flag if value else "--no-" + option_flag[2:])
            elif isinstance(value, tuple) and field.metadata["nargs"]:
                if value:
                    items = " ".join(shlex.quote(str(item)) for item in value)
                    parts.append(f"{option_flag} {items}")
            elif isinstance(value, tuple):
                parts += [f"{option_flag} {shlex.quote(str(item))}" for item in value]
            else:
                text = field.metadata["render"](value)
                parts.append(f"{option_flag} {shlex.quote(text)}")
        return " ".join(part for part in parts if part)

    def record(self) -> dict[str, Any]:
        """Every setting by its field name, option groups merged in (for provenance)."""
        record: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if "group" in field.metadata:
                record.update(value.record())
            else:
                record[field.name] = list(value) if isinstance(value, tuple) else value
        return record
