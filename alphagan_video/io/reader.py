"""Sequential decoding of a video file, a single image or a printf-style image sequence.

    with open_input("clip.mp4") as reader:
        info = reader.info                        # VideoInfo
        for batch in reader.iter_batches(8):      # FrameBatch, rgb (B, H, W, 3) uint8|uint16
            ...

Rules kept here:
- Frames are never rotated: ``info.rotation`` (from the first decoded frame) is metadata that
  the writer copies to the output.
- pts and time_base are the container's, untouched (VFR preserved).
- YUV -> RGB uses the source's own matrix and range (see ``colour.frame_to_rgb``).
- Every failure is an ``InputMediaError`` with a one-line message naming the file; PyAV
  exceptions never escape.
- Pixel budget: a frame larger than ``max_pixels`` (default ``DEFAULT_MAX_PIXELS``, 8192x8192;
  settable per run with ``pixel_budget``) is refused from the size the container
  declares, before any frame is decoded (``ResourceLimitError``). The decoders are also told
  the declared size as their own limit, so a file whose frames are larger than its header
  says fails to decode instead of allocating.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np

from alphagan_video.errors import InputMediaError, ResourceLimitError
from alphagan_video.io.colour import frame_color_tags, frame_to_rgb, pix_fmt_bit_depth
from alphagan_video.types import FrameBatch, VideoInfo

#: Suffixes treated as single still images (decoded with FFmpeg's image decoders).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp", ".dpx", ".tga"}
)

#: Frame rate assumed for images and image sequences (they carry none). pts = frame number
#: in a 1/rate time base.
DEFAULT_STILL_RATE = Fraction(24)

_PATTERN_RE = re.compile(r"%(0?)(\d*)d")

PathLike = Union[str, "os.PathLike[str]"]

#: Default pixel budget per frame: 8192x8192 (generous for 8K DCI, 8192x4320).
DEFAULT_MAX_PIXELS = 8192 * 8192

_MAX_PIXELS: contextvars.ContextVar[int] = contextvars.ContextVar("alphagan_max_pixels", default=DEFAULT_MAX_PIXELS)


@contextlib.contextmanager
def pixel_budget(max_pixels: Optional[int]) -> Iterator[None]:
    """Within the block, readers opened without an explicit ``max_pixels`` use this budget
    (None: keep the current one). The CLI wraps a run in it with the user's budget."""
    if max_pixels is None:
        yield
        return
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    token = _MAX_PIXELS.set(int(max_pixels))
    try:
        yield
    finally:
        _MAX_PIXELS.reset(token)


def current_max_pixels() -> int:
    """The pixel budget readers use now (see ``pixel_budget``)."""
    return _MAX_PIXELS.get()


def format_pixels(n: int) -> str:
    """``67108864`` -> ``"67108864 (8192x8192)"`` when n is a square, else the number."""
    root = int(round(n ** 0.5))
    return f"{n} ({root}x{root})" if root * root == n else str(n)


def check_frame_size(path: str, width: int, height: int, max_pixels: Optional[int] = None) -> None:
    """Raise ResourceLimitError when a width x height frame exceeds the pixel budget."""
    limit = current_max_pixels() if max_pixels is None else max_pixels
    if width * height > limit:
        raise ResourceLimitError.naming(
            f"{path}: frames are {width}x{height} = {width * height} pixels, over the budget of "
            f"{format_pixels(limit)} per frame; pass max_pixels {width * height} if this machine has the "
            "memory, or scale the input down first", "max_pixels"
        )


def _header_size(path: str) -> Optional[tuple[int, int]]:
    """Width and height from a PNG's IHDR or a y4m header, read as bytes: FFmpeg learns a PNG's
    size only by decoding it, and refuses a huge y4m with a misleading "Device or resource busy"."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if len(head) >= 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return (w, h) if w > 0 and h > 0 else None
    if head.startswith(b"YUV4MPEG2 "):
        m = re.search(rb" W(\d{1,9}) H(\d{1,9})", head.split(b"\n", 1)[0])
        if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
            return int(m.group(1)), int(m.group(2))
    return None


def _special_file(path: str) -> Optional[str]:
    """What ``path`` is when it exists but is not a regular file nor a folder (a character device
    such as /dev/zero or /dev/urandom, a named pipe, a block device, a socket), else None."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, what in ((stat.S_ISCHR, "a character device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None


def _bad_y4m_size(path: str) -> Optional[str]:
    """``"width -64"`` (say) when ``path`` is a y4m stream whose header declares a width or height
    that is missing, zero or negative; None otherwise (not y4m, or a usable size)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"YUV4MPEG2 "):
        return None
    line = head.split(b"\n", 1)[0]
    for field, name in ((b"W", "width"), (b"H", "height")):
        m = re.search(rb" " + field + rb"(\S*)", line)
        if m is None:
            return f"no {name}"
        text = m.group(1).decode("ascii", "replace")
        if not text.isdigit() or int(text) <= 0:
            return f"{name} {text or '(empty)'}"
    return None


def _open(path: str, max_pixels: int) -> "av.container.InputContainer":
    """av.open with the decoders capped at ``max_pixels``: probing the stream (which decodes a
    frame for images) never allocates a larger picture."""
    try:
        return av.open(path, "r", options={"max_pixels": str(_slack(max_pixels))})
    except av.FFmpegError as e:
        raise InputMediaError(f"not a readable media file: {path} ({_reason(e)})") from None
    except (OSError, UnicodeDecodeError, ValueError, MemoryError) as e:
        raise InputMediaError(f"cannot open {path}: {e}") from None


def _slack(max_pixels: int) -> int:
    """A decoder-side cap a little above the budget: FFmpeg checks aligned / coded sizes."""
    return max_pixels + max_pixels // 8 + (1 << 20)


def _limit_decoder(path: str, stream, max_pixels: int) -> None:
    """Refuse a declared size over the budget; cap the decoder at the declared size (or the budget)."""
    ctx = stream.codec_context
    if ctx is None:
        raise InputMediaError(f"{path}: the video stream has no codec FFmpeg knows; not a usable video")
    w, h = int(ctx.width or 0), int(ctx.height or 0)
    if not (w > 0 and h > 0):
        w, h = _header_size(path) or (0, 0)
    if w > 0 and h > 0:
        check_frame_size(path, w, h, max_pixels)
        cap = (w + 256) * (h + 256)  # decoders check padded sizes (aligned width, coded height)
    else:
        cap = _slack(max_pixels)
    try:
        ctx.options = {**dict(ctx.options or {}), "max_pixels": str(cap)}
    except Exception:  # noqa: BLE001 - a codec without the option: the declared-size check stands
        pass


def open_input(path: PathLike, *, still_rate: Fraction = DEFAULT_STILL_RATE,
               max_pixels: Optional[int] = None) -> "InputReader":
    """Open ``path`` (video file, single image, or sequence pattern like ``shots/%04d.png``).

    Probes the input (decoding its first frame) and raises ``InputMediaError`` if it is missing,
    a directory, not media, audio-only, empty or undecodable, and ``ResourceLimitError`` if its
    declared frame size exceeds ``max_pixels`` (None: ``current_max_pixels()``), before decoding.
    ``still_rate`` is the frame rate given to images and sequences. Use as a context manager.
    """
    return InputReader(os.fspath(path), still_rate=still_rate, max_pixels=max_pixels)


def is_sequence_pattern(path: str) -> bool:
    """True if the file name contains one printf integer conversion (``%d``, ``%04d``)."""
    return len(_PATTERN_RE.findall(os.path.basename(path))) == 1


class InputReader:
    """Decoder for one input; see ``open_input``.

    Attributes:
        info: VideoInfo of the input.
        sequence_files: for sequences, the ordered file list (else empty).
        sequence_start: for sequences, the number of the first file (else None).
    """

    def __init__(self, path: str, *, still_rate: Fraction = DEFAULT_STILL_RATE,
                 max_pixels: Optional[int] = None) -> None:
        self.path = path
        #: Pixel budget per frame (captured here: decoding may run in another thread).
        self.max_pixels = current_max_pixels() if max_pixels is None else int(max_pixels)
        self._still_rate = Fraction(still_rate)
        self.sequence_files: list[str] = []
        self.sequence_start: Optional[int] = None
        #: Indices of decoded frames whose timestamp did not increase (equal to or before the
        #: previous frame's: an ``stts`` delta of 0, a broken muxer) and was replaced by the
        #: previous one plus a frame at the nominal rate (``_iter_video``). A muxer refuses
        #: such timestamps; the pipeline reports the repair as a warning.
        self.repaired_timestamps: list[int] = []
        self._open_containers: list[av.container.InputContainer] = []
        if is_sequence_pattern(path):
            self.info = self._probe_sequence()
        else:
            self._check_file(path)
            if Path(path).suffix.lower() in IMAGE_SUFFIXES:
                self.info = self._probe_image(path, kind="image")
            else:
                self.info = self._probe_video()

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "InputReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close any container left open by an abandoned ``iter_batches`` generator."""
        while self._open_containers:
            c = self._open_containers.pop()
            try:
                c.close()
            except Exception:  # closing a broken container must not mask the real error
                pass

    # ------------------------------------------------------------------ probing
    @staticmethod
    def _check_file(path: str) -> None:
        if not os.path.exists(path):
            raise InputMediaError(f"input not found: {path}")
        if os.path.isdir(path):
            raise InputMediaError(
                f"input is a directory: {path}; for an image sequence pass a pattern "
                f"like {os.path.join(path, '%04d.png')}"
            )
        kind = _special_file(path)
        if kind is not None:
            raise InputMediaError(f"input is {kind}, not a media file: {path}; pass a video, an image or a "
                                  "sequence pattern (raw frames on stdin: alphagan-video pipe)")
        if os.path.getsize(path) == 0:
            raise InputMediaError(f"input is an empty file: {path}")

    def _open_container(self, path: str) -> av.container.InputContainer:
        bad = _bad_y4m_size(path)
        if bad is not None:  # FFmpeg answers "Device or resource busy"
            raise InputMediaError(f"not a readable media file: {path} (its YUV4MPEG2 header declares {bad}, "
                                  "not a frame size)")
        size = _header_size(path)
        if size is not None:  # refused before FFmpeg even opens it
            check_frame_size(path, size[0], size[1], self.max_pixels)
        c = _open(path, self.max_pixels)
        if c.streams.video:
            try:
                _limit_decoder(path, c.streams.video[0], self.max_pixels)
            except BaseException:
                c.close()
                raise
        return c

    def _probe_video(self) -> VideoInfo:
        c = self._open_container(self.path)
        try:
            if not c.streams.video:
                if c.streams.audio:  # MP4 / MOV muxers drop a video track that holds no frames
                    raise InputMediaError(f"audio-only file: {self.path} has no video stream to matte (a video "
                                          "written with 0 frames reads so: MP4 and MOV keep no empty video track)")
                raise InputMediaError(f"no video stream: {self.path} has no video stream to matte")
            s = c.streams.video[0]
            first = None
            try:
                for first in c.decode(s):
                    break
            except (av.FFmpegError, MemoryError) as e:
                raise InputMediaError.naming(
                    f"corrupt video: {self.path}: cannot decode frame 0 ({_reason(e)}){self._budget_hint(c)}",
                    "max_pixels") from None
            if first is None:
                raise InputMediaError(f"video has no frames: {self.path}")
            rate = s.average_rate or s.guessed_rate or s.base_rate
            pix_fmt = first.format.name
            return VideoInfo(
                path=self.path,
                kind="video",
                width=first.width,
                height=first.height,
                time_base=Fraction(s.time_base) if s.time_base else Fraction(1, 90000),
                frame_rate=Fraction(rate) if rate else None,
                frame_count=int(s.frames) if s.frames else None,
                pix_fmt=pix_fmt,
                bit_depth=pix_fmt_bit_depth(pix_fmt),
                rotation=int(first.rotation or 0),
                color=frame_color_tags(first),
                codec_name=s.codec_context.name,
                audio_stream_count=len(c.streams.audio),
            )
        finally:
            c.close()

    def count_frames(self, limit: Optional[int] = None) -> Optional[int]:
        """Frames of a video whose header states no count (``info.frame_count`` None: Matroska,
        WebM, raw streams), counted as the video stream's packets by demuxing, without decoding:
        for video, one packet is one frame. Counting stops at ``limit`` (the count is then
        ``limit``: at least that many), so a caller that needs N frames reads no more than N
        packets. ``info.frame_count`` when the header states it; None when the file cannot be
        demuxed (the decode then finds out) or is not a video file."""
        if self.info.frame_count is not None or self.info.kind != "video":
            return self.info.frame_count
        count = 0
        try:
            c = _open(self.path, self.max_pixels)
        except Exception:  # the probe opened it: whatever fails now, the decode reports
            return None
        try:
            for packet in c.demux(c.streams.video[0]):
                if packet.size:  # the demuxer's final flush packet is empty
                    count += 1
                    if limit is not None and count >= limit:
                        break
        except (av.FFmpegError, OSError):
            return None  # a damaged tail: the decode reports it with the frame index
        finally:
            c.close()
        return count

    def _budget_hint(self, c: av.container.InputContainer) -> str:
        """When the size could not be read without decoding, a failed decode may be the budget."""
        ctx = c.streams.video[0].codec_context if c.streams.video else None
        if (ctx is not None and ctx.width and ctx.height) or _header_size(c.name) is not None:
            return ""
        return (f"; the frame size could not be read, and frames over the pixel budget "
                f"{format_pixels(self.max_pixels)} fail this way too (max_pixels)")

    def _decode_still(self, path: str) -> av.VideoFrame:
        frame, _ = self._decode_still_codec(path)
        return frame

    def _decode_still_codec(self, path: str) -> tuple[av.VideoFrame, str]:
        self._check_file(path)
        c = self._open_container(path)
        try:
            if not c.streams.video:
                raise InputMediaError(f"not an image: {path}")
            try:
                for frame in c.decode(c.streams.video[0]):
                    return frame, c.streams.video[0].codec_context.name
            except (av.FFmpegError, MemoryError) as e:
                raise InputMediaError.naming(f"corrupt image: {path} ({_reason(e)}){self._budget_hint(c)}",
                                             "max_pixels") from None
            raise InputMediaError(f"image has no picture data: {path}")
        finally:
            c.close()

    def _probe_image(self, path: str, kind: str, frame_count: int = 1) -> VideoInfo:
        frame, codec_name = self._decode_still_codec(path)
        pix_fmt = frame.format.name
        return VideoInfo(
            path=self.path,
            kind=kind,  # type: ignore[arg-type]
            width=frame.width,
            height=frame.height,
            time_base=1 / self._still_rate,
            frame_rate=self._still_rate,
            frame_count=frame_count,
            pix_fmt=pix_fmt,
            bit_depth=pix_fmt_bit_depth(pix_fmt),
            rotation=0,
            color=frame_color_tags(frame),
            codec_name=codec_name,
            audio_stream_count=0,
        )

    def _probe_sequence(self) -> VideoInfo:
        files, start = list_sequence(self.path)
        self.sequence_files = files
        self.sequence_start = start
        return self._probe_image(files[0], kind="sequence", frame_count=len(files))

    # ------------------------------------------------------------------ decoding
    def iter_batches(
        self, batch_size: int, start: int = 0, stop: Optional[int] = None
    ) -> Iterator[FrameBatch]:
        """Yield FrameBatch objects of ``batch_size`` frames (the last may be short) for the frame
        indices ``start <= index < stop`` (stop None = to the end).

        Video frames before ``start`` are decoded and dropped (sequential decode, exact);
        sequence files before ``start`` are skipped without reading. rgb is uint8 when
        ``info.bit_depth <= 8`` else uint16 (full 0..65535 scale).
        Raises InputMediaError on a decode error (naming the frame index) or when the container
        announced more frames than could be decoded (truncated file).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if start < 0 or (stop is not None and stop < start):
            raise ValueError(f"bad frame range start={start} stop={stop}")
        deep = self.info.bit_depth > 8
        if self.info.kind == "video":
            frames = self._iter_video(start, stop, deep)
        else:
            frames = self._iter_stills(start, stop, deep)
        rgbs: list[np.ndarray] = []
        pts: list[Optional[int]] = []
        idx: list[int] = []
        for i, p, rgb in frames:
            rgbs.append(rgb)
            pts.append(p)
            idx.append(i)
            if len(idx) == batch_size:
                yield FrameBatch(np.stack(rgbs), pts, idx, self.info.time_base)
                rgbs, pts, idx = [], [], []
        if idx:
            yield FrameBatch(np.stack(rgbs), pts, idx, self.info.time_base)

    def _iter_stills(
        self, start: int, stop: Optional[int], deep: bool
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        files = self.sequence_files or [self.path]
        end = len(files) if stop is None else min(stop, len(files))
        for i in range(start, end):
            frame = self._decode_still(files[i])
            if (frame.width, frame.height) != (self.info.width, self.info.height):
                raise InputMediaError(
                    f"sequence frame size changes: {files[i]} is {frame.width}x{frame.height}, "
                    f"the first frame is {self.info.width}x{self.info.height}"
                )
            yield i, i, _to_rgb(frame, deep, files[i], i)

    def _iter_video(
        self, start: int, stop: Optional[int], deep: bool
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        c = self._open_container(self.path)
        self._open_containers.append(c)
        try:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            step = _frame_step(self.info)
            decoder = c.decode(s)
            index = 0
            last_pts: Optional[int] = None
            exhausted = False
            while stop is None or index < stop:
                try:
                    frame = next(decoder)
                except StopIteration:
                    exhausted = True
                    break
                except (av.FFmpegError, MemoryError) as e:
                    raise InputMediaError(
                        f"corrupt video: {self.path}: decode error at frame {index} "
                        f"({_reason(e)})"
                    ) from None
                # Containers without timestamps (raw streams) give None: continue the cadence.
                # A timestamp that does not increase is repaired the same way (and recorded):
                # every run of the clip, chunked or not, decodes from frame 0, so a frame gets the
                # same repaired timestamp whichever run writes it.
                p = frame.pts
                if p is not None and last_pts is not None and p <= last_pts:
                    if index not in self.repaired_timestamps:
                        self.repaired_timestamps.append(index)
                    p = None
                if p is None:
                    p = 0 if last_pts is None else last_pts + step
                last_pts = p
                if index >= start:
                    if (frame.width, frame.height) != (self.info.width, self.info.height):
                        raise InputMediaError(
                            f"{self.path}: frame {index} is {frame.width}x{frame.height}, "
                            f"the stream started at {self.info.width}x{self.info.height}; "
                            "resolution changes are not supported"
                        )
                    yield index, p, _to_rgb(frame, deep, self.path, index)
                index += 1
            expected = self.info.frame_count
            # Only a run to the end can tell a truncated file (mp4/mov announce the frame count;
            # Matroska does not, so a cut .mkv ends early without an error).
            if exhausted and expected and index < expected:
                raise InputMediaError(
                    f"truncated video: {self.path}: decoding ended at frame {index} of "
                    f"{expected} announced by the container"
                )
        finally:
            try:
                c.close()
            finally:
                if c in self._open_containers:
                    self._open_containers.remove(c)


def list_sequence(pattern: str) -> tuple[list[str], int]:
    """Files of a printf-style sequence, ordered, starting at the lowest existing number.

    Consecutive numbering is required: a gap followed by later files is an error (a silently
    shorter clip would desynchronise masks and audio). Returns (files, first number).
    """
    directory, name = os.path.split(pattern)
    directory = directory or "."
    m = _PATTERN_RE.search(name)
    if m is None:
        raise InputMediaError(f"not a sequence pattern: {pattern}")
    if not os.path.isdir(directory):
        raise InputMediaError(f"sequence directory not found: {directory} (pattern {pattern})")
    prefix, suffix = name[: m.start()], name[m.end() :]
    rx = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + r"\Z")
    numbers = []
    for entry in os.listdir(directory):
        mm = rx.match(entry)
        # exactness: the file name must be what the pattern formats the number to (%04d vs %d)
        if mm and (name % int(mm.group(1))) == entry:
            numbers.append(int(mm.group(1)))
    if not numbers:
        raise InputMediaError(f"no files match the sequence pattern {pattern}")
    numbers.sort()
    first = numbers[0]
    count = 0
    while count < len(numbers) and numbers[count] == first + count:
        count += 1
    if count < len(numbers):
        missing = name % (first + count)
        raise InputMediaError(
            f"gap in image sequence {pattern}: {missing} is missing but "
            f"{name % numbers[count]} exists; renumber the files or remove the later ones"
        )
    files = [os.path.join(directory, name % (first + k)) for k in range(count)]
    return files, first


def _to_rgb(frame: av.VideoFrame, deep: bool, path: str, index: int) -> np.ndarray:
    try:
        return frame_to_rgb(frame, deep)
    except (av.FFmpegError, ValueError) as e:
        raise InputMediaError(
            f"{path}: cannot convert frame {index} ({frame.format.name}) to RGB: {_reason(e)}"
        ) from None


def _frame_step(info: VideoInfo) -> int:
    """pts ticks per frame at the nominal rate (used only when a frame has no pts)."""
    if info.frame_rate and info.time_base:
        return max(1, round(1 / (info.frame_rate * info.time_base)))
    return 1


def _reason(e: BaseException) -> str:
    """Short text of a PyAV error without the errno prefix."""
    text = getattr(e, "strerror", None) or str(e)
    return str(text).strip().splitlines()[0] if text else type(e).__name__


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "check_frame_size",
    "current_max_pixels",
    "pixel_budget",
    "IMAGE_SUFFIXES",
    "DEFAULT_STILL_RATE",
    "InputReader",
    "open_input",
    "is_sequence_pattern",
    "list_sequence",
]
