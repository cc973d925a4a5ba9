"""Companion media: a second medium (mask video, background plate, user trimaps) read in step with
the frames being matted, by their frame indices."""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from alphagan_video.errors import InputMediaError, MaskSourceError
from alphagan_video.types import FrameBatch, VideoInfo

#: Frames decoded per read from the companion medium.
_READ_BATCH = 8


class MediaInStep:
    """Frames of a companion medium fetched by the main video's frame indices.

    A single image (``info.kind == "image"``) answers every index with itself. Videos and
    sequences are decoded sequentially; indices must not go backwards except by restarting
    (which re-opens the decode at the new index, exact but slow).

    Args:
        path: the medium (video file, image, or sequence pattern such as ``m/%04d.png``).
        what: how error messages call it: the setting's value (``"file:m.mov"``) when ``param``
            names the setting, else a whole label.
        info: the main video; the medium must have the same coded size.
        param: the setting the medium comes from (``"mask.source"``, ``"trimap.trimap_path"``):
            errors are then ``MaskSourceError.about(param, what, ...)``.

    Raises:
        MaskSourceError: the medium cannot be read, has another size than the video, or is
            shorter than a frame index asked for.
    """

    def __init__(self, path: str, what: str, info: VideoInfo, *, param: Optional[str] = None) -> None:
        from alphagan_video.io.reader import open_input

        self.path = path
        self.what = what
        self.param = param
        try:
            self._reader = open_input(path)
        except InputMediaError as exc:
            raise self.error(str(exc), exc.mentions) from None
        self.info = self._reader.info
        if (self.info.width, self.info.height) != (info.width, info.height):
            self.close()
            raise self.error(f"{path} is {self.info.width}x{self.info.height} but the video is "
                             f"{info.width}x{info.height}; supply one of the same size")
        self.single = self.info.kind == "image"
        self._still: Optional[np.ndarray] = None
        self._iter: Optional[Iterator[FrameBatch]] = None
        self._buf: list[tuple[int, np.ndarray]] = []  # decoded frames not yet handed out
        self._next = 0  # index the buffer/iterator will produce next
        self._seen = 0  # frames known to exist (1 + highest index decoded)

    def error(self, problem: str, mentions: tuple[str, ...] = ()) -> MaskSourceError:
        """A MaskSourceError about this medium (see ``param``); ``mentions``: the parameters
        ``problem`` names (``AlphaGANVideoError.naming``), e.g. those of a reader error."""
        if self.param is not None:
            exc = MaskSourceError.about(self.param, self.what, problem)
        else:
            exc = MaskSourceError(f"{self.what}: {problem}")
        exc.mentions = tuple(mentions)
        return exc

    def _restart(self, start: int) -> None:
        self._iter = self._reader.iter_batches(_READ_BATCH, start=start)
        self._buf = []
        self._next = start

    def _pull(self, needed: int) -> None:
        """Decode the next batch into the buffer; raise a short-medium error at the end."""
        try:
            batch = next(self._iter) if self._iter is not None else None
        except StopIteration:
            batch = None
        except InputMediaError as exc:
            raise self.error(str(exc), exc.mentions) from None
        if batch is None:
            # frames decoded is exact; the container's count is the fallback when decoding
            # started past the end (a frame range that starts beyond the mask's length).
            count = self._seen or self.info.frame_count
            has = f"has {count} frame(s)" if count else f"has fewer than {needed + 1} frames"
            raise self.error(f"{self.path} {has} but frame {needed} is needed; "
                             f"supply one at least as long as the video (or a single image)")
        scale = 255.0 if batch.rgb.dtype == np.uint8 else 65535.0
        for i, rgb in zip(batch.index, batch.rgb):
            self._buf.append((i, rgb.astype(np.float32) / scale))
            self._seen = max(self._seen, i + 1)

    def count_frames(self, limit: Optional[int] = None) -> Optional[int]:
        """The medium's frame count (``InputReader.count_frames``: demuxed when the header has
        none, at most ``limit``)."""
        return self._reader.count_frames(limit)

    def frames(self, index: list[int]) -> np.ndarray:
        """(B,H,W,3) float32 in [0,1] for the given frame indices (in increasing order)."""
        if self.single:
            if self._still is None:
                batch = next(self._reader.iter_batches(1))
                scale = 255.0 if batch.rgb.dtype == np.uint8 else 65535.0
                self._still = batch.rgb[0].astype(np.float32) / scale
            return np.broadcast_to(self._still, (len(index),) + self._still.shape)
        out = []
        for i in index:
            if self._iter is None or i < self._next:
                self._restart(i)
            while True:
                while self._buf and self._buf[0][0] < i:
                    self._buf.pop(0)
                if self._buf:
                    break
                self._pull(i)
            j, rgb = self._buf.pop(0)
            self._next = j + 1
            out.append(rgb)
        return np.stack(out)

    def close(self) -> None:
        if getattr(self, "_reader", None) is not None:
            self._iter = None
            self._reader.close()
            self._reader = None  # type: ignore[assignment]
