"""Configuration dataclasses to and from plain JSON values, for any nesting of frozen dataclasses.

    data = config_to_dict(cfg)                       # JSON-able dict, paths absolute
    cfg == config_from_dict(json.loads(json.dumps(data)))

Written over ``dataclasses.fields`` and the field annotations, so a new field or a new nested
config class needs no change here: ``Path`` fields become absolute path strings and come back as
``Path``; tuples become lists and come back as tuples (nested tuples too); nested dataclasses
become objects. Two string fields carry paths inside a larger value and are made absolute too
(``PATH_STRINGS``: a ``plate:PATH``/``file:PATH`` mask source, a background image).
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, Callable, Optional

from alphagan_video.config import PipelineConfig
from alphagan_video.errors import UserInputError


class UnknownFieldsError(UserInputError):
    """A dict has keys that are not fields of its config class (written by another version).

    ``section``: dotted path of the config object ("" = the top level); ``fields``: the keys."""

    def __init__(self, section: str, fields: list[str]) -> None:
        where = f"config [{section}]" if section else "config"
        super().__init__(f"{where} has unknown fields {fields}")
        self.section, self.fields = section, fields


def _absolute_mask_spec(spec: str) -> str:
    """``plate:PATH`` / ``file:PATH`` with PATH made absolute (farm tasks run in other directories),
    as written otherwise (``masks.spec.MaskSpec.absolute``); a spec that does not parse unchanged
    (the run refuses it later, naming it)."""
    from alphagan_video.errors import MaskSourceError
    from alphagan_video.masks.spec import parse_mask_spec

    try:
        return parse_mask_spec(spec).absolute()
    except MaskSourceError:
        return spec


def _absolute_if_file(value: str) -> str:
    """An image path made absolute; a colour (``#00ff00``, ``green``) unchanged."""
    return os.path.abspath(value) if value and os.path.isfile(value) else value


#: Dotted field path -> how a string field that may hold a path is made absolute.
PATH_STRINGS: dict[str, Callable[[str], str]] = {
    "mask.source": _absolute_mask_spec,
    "output.background": _absolute_if_file,
}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _to_plain(value: Any, dotted: str) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name), f"{dotted}.{f.name}".lstrip("."))
                for f in dataclasses.fields(value)}
    if isinstance(value, os.PathLike):
        return os.path.abspath(os.fspath(value))
    if isinstance(value, str) and dotted in PATH_STRINGS:
        return PATH_STRINGS[dotted](value)
    if isinstance(value, (tuple, list)):
        return [_to_plain(v, dotted) for v in value]
    return value


def config_to_dict(cfg: Any) -> dict:
    """A config dataclass -> plain JSON-able dict (paths made absolute, tuples as lists)."""
    return json.loads(json.dumps(_to_plain(cfg, "")))


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _from_plain(value: Any, hint: Any, dotted: str) -> Any:
    if value is None:
        return None
    hint = _strip_optional(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"{dotted} must be an object, got {value!r}")
        return _dataclass_from(value, hint, dotted)
    if hint is Path and isinstance(value, (str, os.PathLike)):
        return Path(value)
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_plain(v, args[0], dotted) for v in value)
        if len(args) == len(value):
            return tuple(_from_plain(v, a, dotted) for v, a in zip(value, args))
        return tuple(value)
    return value


def _dataclass_from(data: dict, cls: type, dotted: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UnknownFieldsError(dotted, unknown)
    hints = _hints(cls)
    return cls(**{key: _from_plain(value, hints[key], f"{dotted}.{key}".lstrip("."))
                  for key, value in data.items()})


def config_from_dict(data: dict, cls: type = PipelineConfig) -> Any:
    """Inverse of ``config_to_dict`` for the config class ``cls`` (missing keys: defaults).

    Raises UnknownFieldsError for keys that are not fields (a dict from another version);
    values of the wrong type are passed through for the caller to check."""
    return _dataclass_from(data, cls, "")


def iter_config_fields(cfg: Any, defaults: Optional[Any] = None, dotted: str = ""):
    """(dotted name, value, default value) of every leaf field of ``cfg``, nested configs
    walked (``defaults``: an instance of the same class, by default ``type(cfg)()``)."""
    defaults = type(cfg)() if defaults is None else defaults
    for f in dataclasses.fields(cfg):
        name = f"{dotted}.{f.name}" if dotted else f.name
        value, default = getattr(cfg, f.name), getattr(defaults, f.name)
        if dataclasses.is_dataclass(value) and dataclasses.is_dataclass(default):
            yield from iter_config_fields(value, default, name)
        else:
            yield name, value, default


__all__ = ["PATH_STRINGS", "UnknownFieldsError", "config_from_dict", "config_to_dict", "iter_config_fields"]
