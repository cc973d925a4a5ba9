"""Stage 4: the matting-Laplacian refine (``alphagan_video.refine``): the generator's alpha,
and the temporal stage's prior when there is one, as data terms of one linear solve per frame.
The prior-independent half (``RefinePrepareStage``) runs in a worker while the generator runs;
the solve itself (``RefineStep``) runs frame by frame inside the temporal stage, which hands it
each frame's prior."""
from alphagan_video.stages.s4_refine.stage import RefinePrepareStage, RefineStep, refine_frames

__all__ = ["RefinePrepareStage", "RefineStep", "refine_frames"]
