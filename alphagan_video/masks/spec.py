"""The mask spec (``MaskConfig.source``: ``person``, ``sam``, ``chroma``, ``plate:PATH``,
``file:PATH``) as a typed value, ``MaskSpec``, made by the one function that reads the string,
``parse_mask_spec``. Every other module takes the ``MaskSpec`` (a run gets it once, from its
run plan, ``plan.plan_run``); tests/test_architecture.py fails on a ``partition(":")`` or
``split(":")`` anywhere else. No torch here: the CLI checks a spec before loading anything.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from alphagan_video.errors import MaskSourceError

#: The source names, in the order help texts list them (``masks.MASK_SOURCES`` builds each).
MASK_SOURCE_NAMES: tuple[str, ...] = ("person", "sam", "chroma", "plate", "file")
#: Sources whose spec is ``name:PATH``.
MASK_SOURCES_WITH_PATH: frozenset[str] = frozenset({"plate", "file"})
#: Every spec form (``person``, ..., ``plate:PATH``, ``file:PATH``), for messages and help texts.
MASK_SPEC_FORMS: tuple[str, ...] = tuple(f"{n}:PATH" if n in MASK_SOURCES_WITH_PATH else n for n in MASK_SOURCE_NAMES)


@dataclass(frozen=True)
class MaskSpec:
    """A parsed mask spec.

    name: the source, one of ``MASK_SOURCE_NAMES`` (lower case).
    arg: its PATH for ``plate`` / ``file`` (as written, trailing blanks dropped), else ``""``.
    text: the spec as written; path_at: where its PATH begins in ``text`` (-1: no ``:``). Both
    only serve ``absolute``, which must rewrite the string as written (the farm's settings
    digest hashes it), so they take no part in comparisons.
    """

    name: str
    arg: str = ""
    text: str = field(default="", compare=False)
    path_at: int = field(default=-1, compare=False)

    @property
    def takes_path(self) -> bool:
        return self.name in MASK_SOURCES_WITH_PATH

    def absolute(self) -> str:
        """The spec as written with its PATH made absolute (farm tasks run in other directories);
        a spec without a PATH unchanged. A spec built directly (no ``text``) in its plain form."""
        if not self.text:
            return f"{self.name}:{os.path.abspath(self.arg)}" if self.takes_path else self.name
        tail = self.text[self.path_at:] if self.path_at >= 0 else ""
        if not (self.takes_path and tail):
            return self.text
        return self.text[:self.path_at] + os.path.abspath(tail)


def parse_mask_spec(spec: str) -> MaskSpec:
    """``name`` or ``name:PATH`` -> ``MaskSpec``: the only place a mask spec string is split.

    Splits on the first ``:`` only, so Windows paths (``file:C:\\masks\\m.mov``) survive; the
    name is case- and blank-insensitive.

    Raises:
        MaskSourceError: about ``mask.source``: unknown name, a PATH missing for plate/file, or
            a PATH given to a source that takes none.
    """
    text = spec or ""
    head, sep, tail = text.partition(":")
    name, arg = head.strip().lower(), tail.rstrip()
    if name not in MASK_SOURCE_NAMES:
        raise MaskSourceError.about("mask.source", repr(spec),
                                    f"unknown mask source; use one of {', '.join(MASK_SPEC_FORMS)}")
    if name in MASK_SOURCES_WITH_PATH and not arg:
        raise MaskSourceError.about("mask.source", repr(spec), f"{name} needs a path; use mask.source {name}:PATH")
    if name not in MASK_SOURCES_WITH_PATH and sep:
        raise MaskSourceError.about("mask.source", repr(spec), f"{name} takes no argument; use mask.source {name}")
    return MaskSpec(name, arg, text, len(head) + 1 if sep else -1)


__all__ = ["MASK_SOURCES_WITH_PATH", "MASK_SOURCE_NAMES", "MASK_SPEC_FORMS", "MaskSpec", "parse_mask_spec"]
