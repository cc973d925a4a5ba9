"""``open_output`` and ``OutputWriter``: batches of matting results into one output target."""
from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np

from alphagan_video.config import OutputConfig
from alphagan_video.errors import OutputError
from alphagan_video.io.colour import planes_to_yuv10_frame
from alphagan_video.io.writer._common import PathLike, _raise_if_environment
from alphagan_video.io.writer.check import check_target
from alphagan_video.io.writer.plan import plan_output, takes_planes
from alphagan_video.io.writer.targets import TARGETS, OutputTarget
from alphagan_video.types import OutputBatch, VideoInfo


def open_output(
    path: PathLike,
    info: VideoInfo,
    cfg: OutputConfig,
    *,
    has_color: bool,
    has_alpha: bool,
    frame_range: Optional[tuple[int, int]] = None,
) -> "OutputWriter":
    """Validate OUTPUT and open a writer (use as a context manager).

    frame_range: (first, last) source frame indices when only part of the clip is written, None
    for a full-clip run. It moves the timecode to the first written frame and keeps other frames
    of a sequence on disk (see ``OutputWriter``).

    Raises OutputError before any work for: unknown extension/codec, a combination the format
    cannot hold (alpha in .mp4), a missing output directory, an existing output without
    ``cfg.overwrite``, or frame sizes the encoder cannot take.
    """
    return OutputWriter(os.fspath(path), info, cfg, has_color=has_color, has_alpha=has_alpha,
                        frame_range=frame_range)


class OutputWriter:
    """Writer returned by ``open_output``. ``write`` takes OutputBatch objects in frame order.

    Sequence files are numbered by frame index (``OutputBatch.index``, 0-based, the input's
    decode order), so chunks of a farm job written separately land on consistent names; the
    input sequence's own start number is not reused.

    Overwriting a sequence (``cfg.overwrite``): a full-clip run (``frame_range`` None) owns the
    whole pattern, so after it has succeeded the files matching the pattern that it did not
    write (frames of an older, longer run) are deleted. A frame-range run (``frame_range`` set)
    deletes nothing: the other frames may be other chunks of the same job.
    Nothing is deleted when the run fails.

    Video outputs of a video source carry the source's container tags and timecode
    (``apply_source_metadata``; for a range, the timecode of its first frame); ``timecode`` is
    what was written (None: none).
    """

    def __init__(
        self,
        path: str,
        info: VideoInfo,
        cfg: OutputConfig,
        *,
        has_color: bool,
        has_alpha: bool,
        frame_range: Optional[tuple[int, int]] = None,
    ) -> None:
        self.path = path
        self.frame_range = frame_range
        self.info = info
        self.cfg = cfg
        self.has_color = has_color
        self.has_alpha = has_alpha
        self.plan = plan_output(path, cfg, has_color=has_color, has_alpha=has_alpha)
        self.description = self.plan.label
        self.frames_written = 0
        self._closed = False
        #: Called when the output is complete but not yet in place (see ``close``); None: nothing.
        self.before_publish: Optional[Callable[[], Optional[Callable[[], None]]]] = None
        check_target(self.path, self.plan, self.info, self.cfg)
        self._target: OutputTarget = TARGETS[self.plan.target](path, self.plan, info, cfg, frame_range)
        try:
            self._target.open()
        except BaseException:
            self._target.cleanup()
            raise

    @property
    def timecode(self) -> Optional[str]:
        """The start timecode written into the output (None: none)."""
        return self._target.timecode

    # ------------------------------------------------------------------ writing
    def write(self, batch: OutputBatch) -> None:
        """Encode B frames. color (B,H,W,3) float32 [0,1] straight, alpha (B,H,W) float32 [0,1];
        each must be present exactly when the writer was opened with has_color/has_alpha."""
        if self._closed:
            raise OutputError(f"writer for {self.path} is already closed")
        self._check_batch(batch)
        planes = batch.planes if self._takes_planes(batch) else None
        for i in range(len(batch)):
            color = batch.color[i] if batch.color is not None else None
            alpha = batch.alpha[i] if batch.alpha is not None else None
            pts = batch.pts[i] if batch.pts[i] is not None else batch.index[i]
            if planes is not None:
                frame = planes_to_yuv10_frame(planes[i], self.plan.pix_fmt)
                self._target.encode(frame, pts, batch.time_base, self.frames_written)
            else:
                self._target.write(color, alpha, pts, batch.time_base, batch.index[i], self.frames_written)
            self.frames_written += 1

    def accepts_planes(self, channels: int) -> bool:
        """True when ``OutputBatch.planes`` with ``channels`` 10-bit YCbCr(A) planes can fill this
        output's frames directly (``plan.takes_planes``: ProRes 4444 / 4444 XQ video)."""
        return takes_planes(self.plan, channels)

    def _takes_planes(self, batch: OutputBatch) -> bool:
        return batch.planes is not None and batch.planes.ndim == 4 and self.accepts_planes(batch.planes.shape[1])

    def _check_batch(self, batch: OutputBatch) -> None:
        n, h, w = len(batch), self.info.height, self.info.width
        if self._takes_planes(batch):
            if batch.planes.shape != (n, batch.planes.shape[1], h, w) or batch.planes.dtype != np.uint16:
                raise ValueError(f"planes must be ({n}, C, {h}, {w}) uint16, got {batch.planes.shape} "
                                 f"{batch.planes.dtype}")
            if len(batch.pts) != n:
                raise ValueError(f"batch has {n} indices but {len(batch.pts)} pts")
            return
        if self.has_color:
            if batch.color is None or batch.color.shape != (n, h, w, 3):
                got = None if batch.color is None else batch.color.shape
                raise ValueError(f"color must be ({n}, {h}, {w}, 3) float32, got {got}")
        if self.has_alpha:
            if batch.alpha is None or batch.alpha.shape != (n, h, w):
                got = None if batch.alpha is None else batch.alpha.shape
                raise ValueError(f"alpha must be ({n}, {h}, {w}) float32, got {got}")
        if len(batch.pts) != n:
            raise ValueError(f"batch has {n} indices but {len(batch.pts)} pts")

    # ------------------------------------------------------------------ closing
    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        """Flush, finish the file and move it into place. On failure nothing is left behind.

        ``before_publish`` (when set) runs after the last frame is encoded and before OUTPUT is
        moved into place: side files staged there are published with OUTPUT, and an exception
        from it fails the write (no OUTPUT). What it returns (when not None) runs right after
        OUTPUT is in place (the side files' renames); if that fails, the files this run just
        put in place (a sequence: only its own frames) are taken back and the write fails."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}")
            self._target.before_publish = self.before_publish
            self._target.finish()
        except OSError as e:  # renames and file writes: a full or vanished output location
            self.abort()
            _raise_if_environment(e, self.path)
            raise
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Stop writing and delete every temporary; OUTPUT is left as it was. Idempotent."""
        self._closed = True
        self._target.cleanup()
