"""Frame ranges as users write them: ``"A-B"`` (0-based, inclusive) or, where a single frame is
allowed, ``"A"`` (render farms pass one-frame chunks that way)."""
from __future__ import annotations

from alphagan_video.errors import ParameterError

#: The parameter a frame range sets (errors are about it).
FRAMES_PARAM = "frames"


def parse_frame_range(value: str, *, single: bool = False) -> tuple[int, int]:
    """``"A-B"`` (and ``"A"`` when ``single``) -> (A, B), 0-based, inclusive.

    Raises ParameterError about ``frames`` for text that is not such a range or has B < A or
    a negative A."""
    text = value.strip()
    try:
        if "-" in text or not single:
            first, last = (int(v) for v in text.split("-"))
        else:
            first = last = int(text)
    except ValueError:
        expected = "A-B or A with 0-based frame numbers" if single else \
            "A-B with 0-based frame numbers, e.g. 0-99"
        raise ParameterError.about(FRAMES_PARAM, repr(value), f"expected {expected}") from None
    if first < 0 or last < first:
        raise ParameterError.about(FRAMES_PARAM, repr(value), "expected 0 <= A <= B")
    return first, last


__all__ = ["FRAMES_PARAM", "parse_frame_range"]
