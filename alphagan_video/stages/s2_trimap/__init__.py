"""Stage 2: the trimap of every frame from its coarse mask (``alphagan_video.stages.s2_trimap.trimap``)."""
from alphagan_video.stages.s2_trimap.stage import TrimapStage

__all__ = ["TrimapStage"]
