"""Pixel-format and colour-matrix helpers shared by the reader and the writer.

Why this module exists: PyAV's ``to_ndarray``/``reformat`` convert YUV with BT.601 unless told
otherwise, and treat an unspecified range as limited. Decoding HD material that way shifts every
hue. Here the source's own matrix and range are always passed explicitly. Measured with PyAV 18:
``reformat`` without ``dst_colorspace`` converted RGB to YUV with BT.601, and of the colour tags
prores_ks writes only those set on the frame, libx264 only those on the codec context (the
writer sets both).

Only numpy HWC arrays and ``av.VideoFrame`` objects appear here (IO edge).
"""
from __future__ import annotations

import cv2
import numpy as np
from av import VideoFormat, VideoFrame
from av.video.reformatter import Interpolation

from alphagan_video.types import ColorTags

# AVCOL_SPC_* -> swscale colourspace names accepted by ``VideoFrame.reformat``.
_SPACE_TO_SWS = {
    1: "ITU709",  # BT709
    4: "FCC",
    5: "ITU601",  # BT470BG
    6: "ITU601",  # SMPTE170M
    7: "SMPTE240M",
    9: "BT2020",  # BT2020_NCL
    10: "BT2020",  # BT2020_CL (swscale has only the NCL matrix; closest available)
}

# AVCOL_* integer values used for tagging BT.709 limited-range output.
BT709 = 1
RANGE_MPEG = 1
RANGE_JPEG = 2

# Bilinear chroma resampling with accurate rounding (same-size conversions only resample chroma).
# Not FULL_CHR_H_INT: with FFmpeg 8.1's swscale it wrecks 4:2:0 -> RGB (measured median error
# 57/255 on a gradient).
_INTERP = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def pix_fmt_bit_depth(pix_fmt: str) -> int:
    """Largest per-component bit depth of an FFmpeg pixel format (8 for rgb24, 10 for
    yuv420p10le, 32 for gbrpf32le)."""
    try:
        fmt = VideoFormat(pix_fmt)
    except (ValueError, TypeError):
        return 8
    bits = [c.bits for c in fmt.components]
    return max(bits) if bits else 8


def _is_float_format(pix_fmt: str) -> bool:
    return "f32" in pix_fmt or "f16" in pix_fmt


def _is_rgb_like(frame: VideoFrame) -> bool:
    """True for RGB, GBR, gray and palette formats (no YUV matrix involved)."""
    name = frame.format.name
    if name.startswith(("gray", "ya", "pal", "monow", "monob")):
        return True
    return bool(frame.format.is_rgb)


def source_matrix(colorspace: int, height: int) -> str:
    """swscale matrix name for a YUV source: its tag, else BT.709 for >= 720 lines, else BT.601."""
    name = _SPACE_TO_SWS.get(int(colorspace))
    if name is not None:
        return name
    return "ITU709" if height >= 720 else "ITU601"


def source_range(frame: VideoFrame) -> str:
    """'JPEG' (full) for yuvj* formats or frames tagged pc/JPEG, else 'MPEG' (limited)."""
    if frame.format.name.startswith("yuvj") or int(frame.color_range) == RANGE_JPEG:
        return "JPEG"
    return "MPEG"


def frame_color_tags(frame: VideoFrame) -> ColorTags:
    """The colour tags a decoded frame carries (AVCOL_* integers)."""
    return ColorTags(
        primaries=int(frame.color_primaries),
        trc=int(frame.color_trc),
        space=int(frame.colorspace),
        range=int(frame.color_range),
    )


def frame_to_rgb(frame: VideoFrame, deep: bool) -> np.ndarray:
    """Decoded frame -> (H, W, 3) RGB array, full range.

    deep False: uint8. deep True: uint16 on the full 0..65535 scale.
    Planar YUV (yuv4xxp / yuvj / yuva at 8-16 bits, i.e. what H.264, HEVC, ProRes, VP9, FFV1
    decoders output) is converted here (OpenCV affine transform) with the source's own matrix
    and range, round-to-nearest: FFmpeg 8.1's swscale maps 10-bit limited-range white to 65283/65535 in
    rgb48 and to 253 in rgb24 (measured), which would turn a matte's 1.0 into 0.996.
    Other YUV layouts (nv12, p010...) go through swscale. Float sources (EXR) are clipped to
    [0, 1] and quantised (values are not transfer-converted). Alpha, if present, is dropped.
    """
    name = frame.format.name
    if _is_float_format(name):
        if name.startswith("gray"):
            arr = frame.to_ndarray(format="grayf32le")
            arr = np.repeat(arr[..., None], 3, axis=2)
        else:
            arr = frame.to_ndarray(format="gbrpf32le")  # (H, W, 3) in RGB order
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        return _quantise(arr, deep)
    if _is_rgb_like(frame):
        # No matrix: gray/RGB are full range by definition.
        return frame.reformat(format="rgb48le" if deep else "rgb24").to_ndarray()
    layout = _planar_yuv_layout(frame)
    if layout is not None:
        return _planar_yuv_to_rgb(frame, *layout, deep=deep)
    conv = frame.reformat(
        format="rgb48le" if deep else "rgb24",
        src_colorspace=source_matrix(int(frame.colorspace), frame.height),
        src_color_range=source_range(frame),
        dst_color_range="JPEG",
        interpolation=_INTERP,
    )
    return conv.to_ndarray()


# swscale matrix name -> (Kr, Kb)
_MATRIX_K = {
    "ITU709": (0.2126, 0.0722),
    "ITU601": (0.299, 0.114),
    "FCC": (0.30, 0.11),
    "SMPTE240M": (0.212, 0.087),
    "BT2020": (0.2627, 0.0593),
}


def _planar_yuv_layout(frame: VideoFrame) -> tuple[int, int, int] | None:
    """(bits, log2 chroma w, log2 chroma h) for little-endian planar YUV formats, else None."""
    fmt = frame.format
    name = fmt.name
    if not name.startswith(("yuv", "yuvj", "yuva")) or name.endswith("be"):
        return None
    comps = fmt.components
    if len(comps) < 3 or len({c.plane for c in comps[:3]}) != 3:
        return None  # semi-planar / packed
    bits = comps[0].bits
    if bits > 16 or any(c.bits != bits for c in comps[:3]):
        return None
    cw = comps[1].width
    ch = comps[1].height
    if cw == 0 or ch == 0:
        return None
    sx = {frame.width: 0, (frame.width + 1) >> 1: 1}.get(cw)
    sy = {frame.height: 0, (frame.height + 1) >> 1: 1}.get(ch)
    if sx is None or sy is None:
        return None  # 4:1:1 and other rare layouts: swscale
    return bits, sx, sy


def _plane_array(frame: VideoFrame, index: int, bits: int) -> np.ndarray:
    plane = frame.planes[index]
    dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
    itemsize = np.dtype(dtype).itemsize
    arr = np.frombuffer(plane, dtype=dtype)
    return arr.reshape(plane.height, plane.line_size // itemsize)[:, : plane.width]


def _upsample_chroma(c: np.ndarray, width: int, height: int, sx: int, sy: int) -> np.ndarray:
    """Integer chroma plane -> full size. Vertical 2x (4:2:0): chroma sited midway between luma
    rows, i.e. centre-aligned linear interpolation (cv2.resize). Horizontal 2x: chroma
    co-sited with even luma columns (MPEG-2/H.264/ProRes 'left' siting), odd columns are the
    rounded mean of their neighbours."""
    if sy:
        c = cv2.resize(c, (c.shape[1], height), interpolation=cv2.INTER_LINEAR)
    if sx:
        nxt = np.concatenate([c[:, 1:], c[:, -1:]], axis=1)
        out = np.empty((c.shape[0], c.shape[1] * 2), c.dtype)
        out[:, 0::2] = c
        out[:, 1::2] = ((c.astype(np.uint32) + nxt + 1) >> 1).astype(c.dtype)
        c = out[:, :width]
    return np.ascontiguousarray(c)


def _planar_yuv_to_rgb(frame: VideoFrame, bits: int, sx: int, sy: int, deep: bool) -> np.ndarray:
    """Planar YUV frame -> (H, W, 3) RGB, uint16 full scale if deep else uint8, with the frame's
    matrix and range. One cv2.transform (3x4 affine per pixel, saturating, round-to-nearest):
    ~23 ms per 1080p frame on one core here, vs ~116 ms for the same maths in numpy."""
    h, w = frame.height, frame.width
    kr, kb = _MATRIX_K[source_matrix(int(frame.colorspace), h)]
    kg = 1.0 - kr - kb
    y = np.ascontiguousarray(_plane_array(frame, 0, bits))
    u = _upsample_chroma(_plane_array(frame, 1, bits), w, h, sx, sy)
    v = _upsample_chroma(_plane_array(frame, 2, bits), w, h, sx, sy)
    ycc = cv2.merge([y, u, v])
    # cv2.transform's output depth follows its input: compute >8-bit sources at 16 bits.
    out_max = 65535.0 if (deep or bits > 8) else 255.0
    if deep and ycc.dtype == np.uint8:
        ycc = ycc.astype(np.uint16)
    if source_range(frame) == "JPEG":
        full = float((1 << bits) - 1)
        ys = cs = out_max / full
        offsets = (0.0, float(1 << (bits - 1)), float(1 << (bits - 1)))
    else:
        scale = float(1 << (bits - 8))
        ys, cs = out_max / (219.0 * scale), out_max / (224.0 * scale)
        offsets = (16.0 * scale, 128.0 * scale, 128.0 * scale)
    m = np.array(
        [
            [ys, 0.0, 2.0 * (1.0 - kr) * cs],
            [ys, -2.0 * kb * (1.0 - kb) / kg * cs, -2.0 * kr * (1.0 - kr) / kg * cs],
            [ys, 2.0 * (1.0 - kb) * cs, 0.0],
        ]
    )
    affine = np.concatenate([m, (-m @ np.array(offsets))[:, None]], axis=1)
    rgb = cv2.transform(ycc, affine)
    if not deep and rgb.dtype != np.uint8:  # >8-bit source asked for 8-bit output
        rgb = np.rint(rgb / 257.0).astype(np.uint8)
    return rgb


def _quantise(arr: np.ndarray, deep: bool) -> np.ndarray:
    """float RGB (any range) -> uint16 (deep) or uint8, clipped and rounded to nearest."""
    y = np.clip(arr, 0.0, 1.0, dtype=np.float32)
    y *= 65535.0 if deep else 255.0
    np.rint(y, out=y)
    return y.astype(np.uint16 if deep else np.uint8)


def to_uint16(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (any shape) -> uint16 full scale, rounded to nearest."""
    y = np.clip(x, 0.0, 1.0, dtype=np.float32)
    y *= 65535.0
    np.rint(y, out=y)
    return y.astype(np.uint16)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] (any shape) -> uint8, rounded to nearest."""
    y = np.clip(x, 0.0, 1.0, dtype=np.float32)
    y *= 255.0
    np.rint(y, out=y)
    return y.astype(np.uint8)


def fill_plane(frame: VideoFrame, index: int, values: np.ndarray) -> None:
    """Copy a 2-D array into plane ``index`` of a freshly allocated ``frame`` (one copy, straight
    into the plane's memory, honouring its line padding)."""
    plane = frame.planes[index]
    h, w = values.shape
    if plane.height != h or plane.width != w:
        raise ValueError(f"plane {index} is {plane.width}x{plane.height}, values are {w}x{h}")
    itemsize = values.dtype.itemsize
    view = np.frombuffer(plane, dtype=values.dtype)
    if not view.flags.writeable:  # defensive: fall back to a padded copy
        buf = np.zeros((h, plane.line_size // itemsize), dtype=values.dtype)
        buf[:, :w] = values
        plane.update(buf.tobytes())
        return
    view.reshape(h, plane.line_size // itemsize)[:, :w] = values


def matte_to_yuv_frame(alpha: np.ndarray, pix_fmt: str) -> VideoFrame:
    """(H, W) float alpha in [0, 1] -> a limited-range YUV frame with the matte in luma and
    neutral chroma, built directly (no swscale) so 0 and 1 map exactly to black and white.

    pix_fmt: yuv422p10le / yuv444p10le (Y = 64 + 876 a) or yuv420p (Y = 16 + 219 a).
    Tagged BT.709 / limited range.
    """
    h, w = alpha.shape
    frame = VideoFrame(w, h, pix_fmt)
    a = np.clip(alpha, 0.0, 1.0, dtype=np.float32)
    if "10le" in pix_fmt:
        y = np.rint(64.0 + 876.0 * a).astype(np.uint16)
        mid = 512
        dtype = np.uint16
    else:
        y = np.rint(16.0 + 219.0 * a).astype(np.uint8)
        mid = 128
        dtype = np.uint8
    fill_plane(frame, 0, y)
    for i in (1, 2):
        p = frame.planes[i]
        fill_plane(frame, i, np.full((p.height, p.width), mid, dtype=dtype))
    tag_bt709(frame)
    return frame


def tag_bt709(frame: VideoFrame) -> None:
    """Tag a frame BT.709 primaries/transfer/matrix, limited range (prores_ks reads frame tags)."""
    frame.color_primaries = BT709
    frame.color_trc = BT709
    frame.colorspace = BT709
    frame.color_range = RANGE_MPEG


# BT.709 luma coefficients.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def rgb_to_yuv10_frame(
    rgb: np.ndarray, alpha: np.ndarray | None, pix_fmt: str
) -> VideoFrame:
    """Straight RGB(+alpha) floats -> a BT.709 limited-range 10-bit YUV(A) frame, tagged bt709/tv.

    rgb: (H, W, 3) float32 in [0, 1]; alpha: (H, W) float32 in [0, 1] or None.
    pix_fmt: yuva444p10le (needs alpha), yuv444p10le or yuv422p10le.
    Not swscale: its 16->10-bit path truncates (measured ~1/1023 alpha error). Here RGB is
    quantised to 16 bits, then one cv2.transform (3x4 affine, saturating, round-to-nearest) gives
    the 10-bit codes; alpha is rounded straight from float, so 10-bit alpha is exact to
    quantisation (<= 0.5/1023) and 0 / 1 stay 0 / 1023. Alpha is full range (it has no video
    range). ~45 ms per 1080p frame on one core here (numpy float maths: ~120 ms).
    """
    h, w = rgb.shape[:2]
    rgb16 = to_uint16(rgb)
    ycc = cv2.transform(rgb16, _RGB16_TO_YCC10)  # uint16 codes, already inside 64..960
    y, cb, cr = cv2.split(ycc)
    if pix_fmt == "yuv422p10le":
        cb, cr = _subsample_h(cb), _subsample_h(cr)
    frame = VideoFrame(w, h, pix_fmt)
    fill_plane(frame, 0, y)
    fill_plane(frame, 1, cb)
    fill_plane(frame, 2, cr)
    if pix_fmt.startswith("yuva"):
        if alpha is None:
            raise ValueError(f"{pix_fmt} needs an alpha plane")
        a = np.clip(alpha, 0.0, 1.0, dtype=np.float32)
        a *= 1023.0
        np.rint(a, out=a)
        fill_plane(frame, 3, a.astype(np.uint16))
    tag_bt709(frame)
    return frame


def rgb_to_ycc10_torch(rgb, alpha=None):
    """Straight RGB(+alpha) -> BT.709 limited-range 10-bit Y, Cb, Cr (+ alpha) codes, in torch,
    on the tensors' own device (the GPU path of :func:`rgb_to_yuv10_frame`).

    rgb: (B, 3, H, W) float in [0, 1]; alpha: (B, 1, H, W) float in [0, 1] or None.
    Returns (B, 3 or 4, H, W) int16 codes (Y 64..940, Cb/Cr 64..960, alpha 0..1023 full range),
    rounded to nearest from float32, so within one 10-bit level of the exact float64 conversion
    (in practice off by one only where float32 rounding lands on .5). Same device as ``rgb``:
    on a GPU the int16 planes are what crosses to the host (2 bytes a sample, not 4).
    On one CPU core it costs about what the cv2 path does (~45 vs ~34 ms at 1080p), so the
    pipeline uses it on CUDA only.
    """
    import torch

    m = torch.as_tensor(_RGB16_TO_YCC10[:, :3] * 65535.0, dtype=torch.float32, device=rgb.device)
    offset = torch.as_tensor(_RGB16_TO_YCC10[:, 3], dtype=torch.float32, device=rgb.device)
    ycc = torch.einsum("ij,bjhw->bihw", m, rgb.float().clamp(0.0, 1.0)) + offset[None, :, None, None]
    channels = 3 if alpha is None else 4
    out = torch.empty((rgb.shape[0], channels, *rgb.shape[2:]), dtype=torch.int16, device=rgb.device)
    out[:, :3] = ycc.round_()
    if alpha is not None:
        out[:, 3:] = (alpha.float().clamp(0.0, 1.0) * 1023.0).round_()
    return out


def planes_to_yuv10_frame(planes: np.ndarray, pix_fmt: str) -> VideoFrame:
    """(3|4, H, W) uint16 10-bit codes (from :func:`rgb_to_ycc10_torch`) -> a tagged
    yuv444p10le / yuva444p10le frame (no conversion, one copy per plane)."""
    n = 4 if pix_fmt.startswith("yuva") else 3
    if pix_fmt not in ("yuv444p10le", "yuva444p10le") or planes.shape[0] != n:
        raise ValueError(f"{planes.shape[0]} planes cannot fill a {pix_fmt} frame")
    frame = VideoFrame(planes.shape[2], planes.shape[1], pix_fmt)
    for k in range(n):
        fill_plane(frame, k, planes[k])
    tag_bt709(frame)
    return frame


def _rgb16_to_ycc10() -> np.ndarray:
    """3x4 affine: RGB 0..65535 -> BT.709 limited-range 10-bit Y, Cb, Cr codes."""
    kr, kb = _KR, _KB
    kg = 1.0 - kr - kb
    yrow = np.array([kr, kg, kb])
    cbrow = (np.array([0.0, 0.0, 1.0]) - yrow) * (0.5 / (1.0 - kb))
    crrow = (np.array([1.0, 0.0, 0.0]) - yrow) * (0.5 / (1.0 - kr))
    m = np.stack([876.0 * yrow, 896.0 * cbrow, 896.0 * crrow]) / 65535.0
    return np.concatenate([m, np.array([[64.0], [512.0], [512.0]])], axis=1)


_RGB16_TO_YCC10 = _rgb16_to_ycc10()

_HALF_BAND = np.array([[0.25, 0.5, 0.25]], np.float32)


def _subsample_h(c: np.ndarray) -> np.ndarray:
    """Horizontal 2:1 chroma subsampling, co-sited with even luma columns ([1, 2, 1] / 4 filter,
    edges replicated) as MPEG-2/ProRes 4:2:2 expects. Output width ceil(W / 2)."""
    filtered = cv2.filter2D(c, -1, _HALF_BAND, borderType=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(filtered[:, ::2])


def rgb8_to_yuv_frame(rgb8: np.ndarray, pix_fmt: str) -> VideoFrame:
    """(H, W, 3) uint8 RGB -> BT.709 limited-range YUV frame (e.g. yuv420p for H.264), tagged."""
    f = VideoFrame.from_ndarray(np.ascontiguousarray(rgb8), format="rgb24")
    out = f.reformat(
        format=pix_fmt,
        dst_colorspace="ITU709",
        dst_color_range="MPEG",
        interpolation=_INTERP,
    )
    tag_bt709(out)
    return out
