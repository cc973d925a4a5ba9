"""The coverage stage: frames whose matte is empty or full, and the warnings they call for."""
from __future__ import annotations

from alphagan_video.engine import Stage, Work

#: An empty or full matte on more than this many frames (or on every frame) is worth a warning:
#: a frame or two may legitimately have nobody in it.
FEW_FRAMES = 3

#: Per mask source (the first word of its description): what to check when the matte is empty/full.
#: Settings are named by their parameter; the CLI shows them as its flags.
COVERAGE_HINTS = {
    "plate": "is the plate of this shot, and shot from (about) the same camera position?",
    "chroma": "is there a green/blue screen behind the subject? try mask.chroma_key R,G,B",
    "person": "is there a person in frame? for other subjects use mask.source sam or file:PATH",
    "sam": "add a prompt for those frames (mask.prompts_json JSON)",
    "file": "check that the masks are white (255) on the subject and match the frames",
    "user": "check the trimaps: white = foreground, black = background, grey = unknown",
}


def _frame_list(frames: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f", ... ({len(frames)} frames)" if len(frames) > limit else "")


def coverage_warnings(empty: list[int], full: list[int], total: int, mask_description: str = "") -> list[str]:
    """One-line warnings when the matte is empty or full on more than ``FEW_FRAMES`` frames (or on
    all of them), naming the frames and a hint. Empty list when all is well."""
    source = mask_description.split(" ", 1)[0] if mask_description else ""
    hint = COVERAGE_HINTS.get(source, "check the mask.source source")
    out = []
    for what, frames in (("empty (fully transparent)", empty), ("full (fully opaque)", full)):
        if frames and (len(frames) > FEW_FRAMES or len(frames) == total):
            out.append(f"the matte is {what} on {len(frames)} of {total} frame(s): {_frame_list(frames)}; {hint}")
    return out


class CoverageStage(Stage):
    """Records the frames whose matte is empty (no pixel above 0.5) or full (none below)."""

    name = "coverage"
    on_warm_up = False

    def __init__(self) -> None:
        self.empty_frames: list[int] = []
        self.full_frames: list[int] = []

    def __call__(self, work: Work) -> Work:
        above = (work.alpha > 0.5).flatten(1)
        for i, frame in enumerate(work.batch.index):
            if not bool(above[i].any()):
                self.empty_frames.append(int(frame))
            elif bool(above[i].all()):
                self.full_frames.append(int(frame))
        return work


__all__ = ["COVERAGE_HINTS", "FEW_FRAMES", "CoverageStage", "coverage_warnings"]
