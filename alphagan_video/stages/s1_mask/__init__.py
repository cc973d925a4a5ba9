"""Stage 1: the coarse mask of every frame, from a mask source (``alphagan_video.masks``),
stabilised over time; or the user's own trimaps read in step with the frames."""
from alphagan_video.stages.s1_mask.stage import MaskStage, UserTrimapStage

__all__ = ["MaskStage", "UserTrimapStage"]
