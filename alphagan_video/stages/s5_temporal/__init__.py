"""Stage 5: motion-compensated temporal smoothing (``alphagan_video.stages.s5_temporal.temporal``). Frame by frame
it hands the refine (stage 4) the warped previous alpha as a prior, then blends."""
from alphagan_video.stages.s5_temporal.stage import TemporalStage, TemporalTrack

__all__ = ["TemporalStage", "TemporalTrack"]
