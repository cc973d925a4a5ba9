"""The flag table: which command-line flag sets each library parameter (``PARAMETER_FLAGS``),
and errors shown in the user's words (``user_message``). The library names parameters
(``model.batch_size``); only the command line spells flags."""
from __future__ import annotations

import re
from typing import Iterable


#: Library parameter (``AlphaGANVideoError.about``'s ``param``: a dotted configuration path or a
#: function argument) -> the command-line flag that sets it. The library never spells a flag; an
#: error about a parameter listed here, or naming one (``AlphaGANVideoError.naming``), is shown
#: with the flag the user typed (``user_message``).
PARAMETER_FLAGS: dict[str, str] = {
    "model.batch_size": "--batch-size",
    "model.checkpoint": "--checkpoint",
    "model.variant": "--variant",
    "model.device": "--device",
    "temporal.strength": "--temporal-strength",
    "trimap.band_px": "--trimap-band",
    "trimap.trimap_path": "--trimap",
    "mask.source": "--mask",
    "mask.prompts_json": "--prompts",
    "mask.sam_checkpoint": "--sam-checkpoint",
    "mask.chroma_key": "--chroma-key",
    "max_pixels": "--max-pixels",
    "model.compile": "--compile",
    "model.prior_scale": "--prior-scale",
    "output.background": "--background",
    "output.kind": "--output-kind",
    "context": "--context",
    "size": "--size",
    "rate": "--rate",
    "pix_fmt": "--pix-fmt",
    "output.overwrite": "--overwrite",
    "handles": "--handles",
    "output.copy_audio=False": "--no-audio",  # the flag turns copying off
    "output.codec": "--codec",
    "frames": "--frames",
    "frame_range": "--frames",
    "chunk_size": "--chunk-size",
    "address": "--address",
    "mask.box": "--box",
    "mask.points": "--point",
}


def flag_words(text: str, params: Iterable[str]) -> str:
    """``text`` with each of ``params`` that ``PARAMETER_FLAGS`` knows shown as its flag
    (``use mask.source person`` -> ``use --mask person``), where it stands as a word."""
    names = sorted((p for p in set(params) if p in PARAMETER_FLAGS), key=len, reverse=True)
    if not names:
        return text
    pattern = r"(?<![\w./\\-])(" + "|".join(map(re.escape, names)) + r")(?![\w-]|\.\w)"
    return re.sub(pattern, lambda m: PARAMETER_FLAGS[m.group(1)], text)


def user_message(exc: BaseException) -> str:
    """The one-line message of ``exc`` in the user's words: the parameter the error is about
    (``AlphaGANVideoError.about``) and those it names (``AlphaGANVideoError.naming``) by their
    flags (``PARAMETER_FLAGS``); other errors keep their message."""
    param = getattr(exc, "param", None)
    named = (*getattr(exc, "mentions", ()), *([param] if param else []))
    if param in PARAMETER_FLAGS:
        return f"{PARAMETER_FLAGS[param]} {exc.value_text}: {flag_words(exc.problem, named)}"
    return flag_words(str(exc), named)
