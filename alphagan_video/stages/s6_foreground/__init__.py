"""Stage 6: foreground colour (``alphagan_video.stages.s6_foreground.foreground``), coverage bookkeeping and the
arrays the sink writes."""
from alphagan_video.stages.s6_foreground.stage import (CoverageStage, OutputStage, WindowStage, coverage_warnings,
                                                       parse_background, render_output)

__all__ = ["CoverageStage", "OutputStage", "WindowStage", "coverage_warnings", "parse_background", "render_output"]
