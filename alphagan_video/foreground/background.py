"""The composite's background (``parse_background``): a colour or an image, checked without torch
(the command line checks ``output.background`` before the model loads)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from alphagan_video.errors import ParameterError

_NAMED_COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "green": (0, 255, 0), "blue": (0, 0, 255),
    "red": (255, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128),
}


def _parse_colour(text: str) -> Optional[tuple[int, ...]]:
    """``#RRGGBB``, ``R,G,B`` (0-255) or a colour name -> (R, G, B) 0-255; None otherwise."""
    if text.lower() in _NAMED_COLOURS:
        return _NAMED_COLOURS[text.lower()]
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
        if text.count(",") == 2:
            rgb = tuple(int(v) for v in text.split(","))
            return rgb if all(0 <= v <= 255 for v in rgb) else None
    except ValueError:
        return None
    return None


def parse_background(spec: str, height: int, width: int) -> np.ndarray:
    """``#RRGGBB``, ``R,G,B`` (0-255), a colour name, or an image path -> (H,W,3) float32 [0,1].
    Raises ParameterError about ``output.background``."""
    text = spec.strip()
    rgb = _parse_colour(text)
    if rgb is not None:
        return np.broadcast_to(np.asarray(rgb, np.float32) / 255.0, (height, width, 3)).copy()
    path = Path(text)
    if path.is_file():
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ParameterError.about("output.background", spec, "not a readable image file")
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image[..., ::-1].astype(np.float32) / 255.0
    raise ParameterError.about(
        "output.background", repr(spec),
        f"expected #RRGGBB, R,G,B, a colour name ({', '.join(_NAMED_COLOURS)}) or an image file")
