"""State-dict helpers shared by the generator and SAM checkpoint loaders (torch-free).

Both loaders accept state dicts saved from wrapped models and report, in one line, how a file's
keys and shapes differ from the model they are loaded into.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

# DataParallel/DistributedDataParallel add ``module.``, torch.compile adds ``_orig_mod.``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove ``module.`` and ``_orig_mod.`` wrapper prefixes (in any order, repeated) from keys."""
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix):]
                    changed = True
        out[key] = value
    return out


def preview(items: Sequence[str], limit: int = 4) -> str:
    """The first ``limit`` items joined by ", ", plus " (+N more)" when there are more."""
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def state_dict_mismatch(
    expected: Mapping[str, Any],
    found: Mapping[str, Any],
    *,
    counts: bool = True,
    limit: int = 4,
    shape_limit: int = 3,
) -> list[str]:
    """How the tensors ``found`` in a file differ from the model's ``expected`` state dict.

    Args:
        expected: the model's ``state_dict()`` (values with ``.shape``).
        found: the file's tensors, keys already stripped of wrapper prefixes.
        counts: lead each part with its count ("2 missing keys: a, b") rather than
            naming the keys directly ("missing keys a, b").
        limit: keys shown per missing/unexpected part; ``shape_limit``: mismatches shown.

    Returns:
        Message parts (missing keys, unexpected keys, shape mismatches ``key: file S vs model S``),
        empty when ``found`` fits ``expected`` exactly; callers join them with "; ".
    """
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k}: file {tuple(found[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and tuple(found[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, items, shown in (("missing keys", missing, limit), ("unexpected keys", unexpected, limit),
                                ("shape mismatches", mismatched, shape_limit)):
        if items:
            parts.append(f"{len(items)} {label}: {preview(items, shown)}" if counts
                         else f"{label} {preview(items, shown)}")
    return parts
