"""``plate:PATH``: difference against a clean background plate.

The plate is a single image (locked-off camera) or a video / image sequence read in step with
the frames (a clean pass). Per frame:

0. registration (handheld footage never lines up with a plate shot a moment apart): the plate
   is aligned to the frame with ORB features, ratio-tested matches and a RANSAC homography
   (OpenCV), as BackgroundMattingV2 does for handheld captures; identity when the shot is
   locked off (the identity already fits) or when too few features agree
   (``last_registration`` tells which, with the residual);
0b. the plate's exposure and colour are fitted to the frame (``colour_map``: a robust affine
   colour map on the pixels the plate explains; a separately shot plate is brighter or tinted,
   and against the unadjusted plate every background pixel differs -- kept background -- while
   a subject coloured like the brightened background matches it -- see-through skin);
1. colour distance ``d`` = Euclidean RGB distance between frame and the mapped plate, 3x3-median
   filtered: removes sensor/codec noise without moving edges;
2. a per-pixel threshold from a noise model of that difference, not from the subject's share of
   the frame: ``NOISE_K`` x the difference's noise (measured: the colour map's residual on flat
   background; when more than MAX_UNEXPLAINED of the frame is unexplained, each image's own
   noise on its finest detail, Immerkaer's estimator made robust with a median) plus, for a registered plate,
   the plate's local gradient times the registration residual (an edge misplaced by r pixels
   differs by about |grad| x r); where the registered plate has no data (the frame's edge), the
   nearest pixel's value (a subject cut by the frame edge stays whole);
3. a soft ramp between the low and high thresholds (subject = 1);
4. morphological opening then closing to remove specks and fill pinholes; holes enclosed by the
   subject that survive (a cheek the colour of the wall behind) become 0.5, "unsure", so the
   automatic trimap leaves them to the matting instead of calling them background.

``warnings``: when more than ``MAX_UNEXPLAINED`` of a frame differs from the mapped plate beyond
the images' noise on more than ``FEW_FRAMES`` frames (or all), the run warns (strict: exit 2).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from alphagan_video.masks._morph import median3, open_close, scale_kernel
from alphagan_video.masks.colour_map import TRIM, ColourMap, explained_plate, fit_colour_map
from alphagan_video.io.companion import MediaInStep
from alphagan_video.types import VideoInfo

#: Noise multiples above which a difference counts as subject (the ramp starts there): the
#: 99.9th percentile of the RGB distance of two noisy images that differ only by noise (a chi
#: distribution with 3 degrees of freedom: sqrt(16.27) = 4.03 per-channel sigmas).
NOISE_K = 4.03
#: Lowest starting threshold (RGB distance in [0,1] units, ~6/255): codec noise floor, so a
#: perfectly clean synthetic plate does not turn every rounding difference into subject.
MIN_THRESHOLD = 0.025
#: Registration works on frames scaled to at most this long side (features are plentiful).
REGISTER_SIDE = 960
#: ORB features per image, Lowe's ratio, fewest RANSAC inliers for a homography to be used.
ORB_FEATURES = 3000
RATIO = 0.75
MIN_INLIERS = 20
#: Residual floor in pixels for the misregistration term (sub-pixel interpolation error).
MIN_RESIDUAL = 0.5
#: Most of a frame the plate may leave unexplained (beyond the noise of the images themselves,
#: after the colour map) before the plate is doubted: the colour map's robust fit needs the
#: background to hold at least ``colour_map.TRIM`` of the frame (where least trimmed squares breaks
#: down); beyond, its map and residual say nothing about the background.
MAX_UNEXPLAINED = 1.0 - TRIM
#: A plate that does not explain a frame or two (a subject walking close) is no warning; on more
#: frames than this (or every frame) it is (as ``stages.coverage.FEW_FRAMES``).
FEW_FRAMES = 3


def _gray_u8(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def register_plate(frame: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Homography mapping plate pixels onto the frame's.

    Args:
        frame, plate: (H,W,3) float32 in [0,1], same size.
    Returns:
        (H 3x3 float64, residual in pixels (median reprojection error of the inliers, full
        resolution), inliers). Identity with residual 0 and inliers 0 when fewer than
        MIN_INLIERS matches agree, or when the identity explains the matches as well (locked-off).
    """
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, REGISTER_SIDE / max(h, w))
    small = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    g1 = cv2.resize(_gray_u8(frame), small, interpolation=cv2.INTER_AREA)
    g0 = cv2.resize(_gray_u8(plate), small, interpolation=cv2.INTER_AREA)
    identity = (np.eye(3), 0.0, 0)
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES)
    k0, d0 = orb.detectAndCompute(g0, None)
    k1, d1 = orb.detectAndCompute(g1, None)
    if d0 is None or d1 is None or len(k0) < MIN_INLIERS or len(k1) < MIN_INLIERS:
        return identity
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d0, d1, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < MIN_INLIERS:
        return identity
    src = np.float32([k0[m.queryIdx].pt for m in good])
    dst = np.float32([k1[m.trainIdx].pt for m in good])
    hom, inl = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if hom is None or inl is None or int(inl.sum()) < MIN_INLIERS:
        return identity
    inl = inl.ravel().astype(bool)
    proj = cv2.perspectiveTransform(src[inl][None], hom)[0]
    residual = float(np.median(np.linalg.norm(proj - dst[inl], axis=1)))
    still = float(np.median(np.linalg.norm(src[inl] - dst[inl], axis=1)))
    if still <= residual + 0.5:  # locked-off: the identity fits these matches as well
        return np.eye(3), still / scale, int(inl.sum())
    s = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    full = np.diag([scale, scale, 1.0])
    return s @ hom @ full, residual / scale, int(inl.sum())


def noise_sigma(rgb: np.ndarray) -> float:
    """Noise standard deviation of an (H,W,3) float image (Immerkaer's 3x3 Laplacian-difference
    estimator with a median instead of the mean, so edges and texture barely count)."""
    import cv2

    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    gray = rgb.astype(np.float32).mean(axis=2)
    resp = np.abs(cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_REPLICATE))[1:-1, 1:-1]
    if resp.size == 0:
        return 0.0
    return float(1.4826 * np.median(resp) / 6.0)


def difference_mask(frames: torch.Tensor, plate: torch.Tensor, denoise: bool = True, morph: int | None = None,
                    residual: Optional[list] = None, valid: Optional[torch.Tensor] = None,
                    noise: Optional[list] = None) -> torch.Tensor:
    """Soft subject mask from a frame/plate difference.

    Args:
        frames, plate: (B,3,H,W) float32 in [0,1] (plate may have B=1, broadcast); the plate
            already registered to each frame.
        denoise: 3x3 median on the distance map.
        morph: opening/closing kernel (odd); None = 1% of the short side, at least 3.
        residual: per frame registration residual in pixels, or None (locked-off, identity).
        valid: (B,1,H,W) float, 0 where the registered plate has no data: those pixels take the
            value of the nearest pixel that has (a subject cut by the frame edge stays whole).
        noise: per frame, the difference's per-channel noise sigma measured elsewhere (the colour
            map's residual), or None: estimated from both images (``noise_sigma``).
    Returns:
        (B,1,H,W) float32 in [0,1].
    """
    diff = frames - plate
    d = (diff * diff).sum(dim=1, keepdim=True).sqrt_()  # (B,1,H,W), 0..sqrt(3)
    if denoise:
        d = median3(d).to(frames.device)
    b = d.shape[0]
    h, w = d.shape[-2:]
    plates = plate.expand(b, -1, -1, -1)
    lo = torch.empty_like(d)
    for i in range(b):
        f_np = frames[i].permute(1, 2, 0).float().cpu().numpy()
        p_np = plates[i].permute(1, 2, 0).float().cpu().numpy()
        # The difference's per-channel noise is sqrt(s_f^2 + s_p^2); its RGB distance is then
        # chi-distributed (3 dof). After the 3x3 median the noise is smaller: errs on the safe side.
        sigma = float(np.sqrt(noise_sigma(f_np) ** 2 + noise_sigma(p_np) ** 2)) if noise is None else float(noise[i])
        lo[i, 0] = torch.from_numpy(_threshold(p_np, sigma, None if residual is None else residual[i]))
    soft = ((d - lo) / lo).clamp_(0.0, 1.0)  # ramp from lo to 2 lo
    if valid is not None:  # no plate there (outside the registered plate): the nearest known value
        soft = _fill_invalid(soft, valid)
    soft = open_close(soft, scale_kernel(h, w) if morph is None else morph).to(frames.device)
    return _unsure_holes(soft)


def _threshold(plate: np.ndarray, sigma: float, residual: Optional[float]) -> np.ndarray:
    """(H,W) float32 lowest subject threshold of the RGB distance: NOISE_K noise sigmas (at
    least MIN_THRESHOLD), plus the plate's gradient x the registration residual when registered."""
    import cv2

    thr = np.full(plate.shape[:2], max(MIN_THRESHOLD, NOISE_K * sigma), np.float32)
    if residual is not None:
        gray = plate.mean(axis=2).astype(np.float32)
        grad = np.sqrt(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) ** 2
                       + cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) ** 2) / 8.0 * np.sqrt(3.0)
        grad = cv2.dilate(grad, np.ones((3, 3), np.uint8))  # the edge may sit a pixel away
        thr = thr + grad * max(float(residual), MIN_RESIDUAL)
    return thr


def unexplained_share(frame: np.ndarray, plate: np.ndarray, usable: np.ndarray, sigma: float,
                      residual: Optional[float]) -> float:
    """Share of the usable pixels whose (3x3-median) RGB distance to the (mapped, registered) plate
    exceeds the threshold of noise ``sigma`` (the images' own) and registration ``residual``."""
    import cv2

    d = np.sqrt(((frame.astype(np.float32) - plate.astype(np.float32)) ** 2).sum(axis=2))
    d = cv2.medianBlur(d, 3)
    if not usable.any():
        return 1.0
    return float((d > _threshold(plate, sigma, residual))[usable].mean())


def _fill_invalid(soft: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each pixel without plate data (valid 0) takes the soft value of the nearest pixel with."""
    import cv2

    out = soft.clone()
    for i in range(soft.shape[0]):
        bad = (valid[i, 0] < 0.5).cpu().numpy()
        if not bad.any():
            continue
        if bad.all():
            out[i].zero_()
            continue
        # Per-pixel labels: every pixel gets the label of its nearest valid (zero) pixel; the valid
        # pixels are labelled 1.. in raster order.
        _, labels = cv2.distanceTransformWithLabels(bad.astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        m = soft[i, 0].cpu().numpy()
        by_label = np.concatenate([[0.0], m[~bad]]).astype(np.float32)
        out[i, 0] = torch.from_numpy(np.where(bad, by_label[labels], m)).to(out.device)
    return out


def _unsure_holes(soft: torch.Tensor) -> torch.Tensor:
    """Background holes enclosed by the subject -> 0.5 (unsure), each frame (B,1,H,W)."""
    import cv2

    out = soft.clone()
    for i in range(soft.shape[0]):
        fg = (soft[i, 0] > 0.5).cpu().numpy().astype(np.uint8)
        if not fg.any():
            continue
        n, labels = cv2.connectedComponents(1 - fg, connectivity=4)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        holes = (labels > 0) & ~np.isin(labels, border) & (fg == 0)
        if holes.any():
            hole_t = torch.from_numpy(holes).to(out.device)
            out[i, 0][hole_t] = torch.maximum(out[i, 0][hole_t], torch.tensor(0.5, device=out.device))
    return out


class PlateMaskSource:
    """Background-plate difference. ``__call__(frames (B,3,H,W), index)`` -> (B,1,H,W) [0,1]."""

    def __init__(self, path: str, info: VideoInfo, device: torch.device) -> None:
        self.device = torch.device(device)
        self._media = MediaInStep(path, f"plate:{path}", info, param="mask.source")
        self._still: torch.Tensor | None = None
        #: Per frame: {"frame", "registered", "residual_px", "inliers", "colour_gain", "colour_offset",
        #: "noise_sigma", "unexplained_share"}, for the run report and ``warnings``.
        self.registrations: list[dict] = []
        self.last_registration: dict | None = None
        self._colour: ColourMap | None = None  # the last explained frame's map: a start for the next

    def _plate(self, index: list[int]) -> torch.Tensor:
        if self._media.single:
            if self._still is None:
                rgb = np.ascontiguousarray(self._media.frames([index[0]])[0])
                self._still = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].to(self.device)
            return self._still
        rgb = self._media.frames(list(index))
        return torch.from_numpy(rgb).permute(0, 3, 1, 2).to(self.device)

    def _register(self, f_np: np.ndarray, p_np: np.ndarray, frame_index: int) -> tuple:
        """Register, fit the colour map, measure -> (explained plate, residual or None, valid, noise sigma)."""
        import cv2

        h, w = f_np.shape[:2]
        hom, residual, inliers = register_plate(f_np, p_np)
        registered = not np.allclose(hom, np.eye(3))
        inside = np.ones((h, w), np.float32)
        if registered:
            p_np = cv2.warpPerspective(p_np, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            inside = cv2.warpPerspective(inside, hom, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
            inside = cv2.erode(inside, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE)
        own = (noise_sigma(f_np), noise_sigma(p_np))  # each image's noise, on its finest detail
        cmap = fit_colour_map(f_np, p_np, inside > 0.5, self._colour, own)
        mapped = explained_plate(f_np, cmap.apply(p_np), p_np)
        gain = float(np.linalg.svd(cmap.matrix, compute_uv=False).mean())  # the mapped plate's noise scales with it
        sensor = float(np.hypot(own[0], gain * own[1]))
        r = residual if registered else None
        share = unexplained_share(f_np, mapped, inside > 0.5, sensor, r)
        explained = share <= MAX_UNEXPLAINED
        fitted = float(np.sqrt(np.mean(cmap.sigma ** 2)))
        if explained:
            self._colour = cmap
        self.last_registration = {
            "frame": int(frame_index), "registered": registered, "residual_px": round(residual, 3),
            "inliers": inliers, "colour_gain": cmap.gain, "colour_offset": [round(float(v), 4) for v in cmap.offset],
            "noise_sigma": round(max(fitted, sensor) if explained else sensor, 5),
            "unexplained_share": round(share, 4)}
        self.registrations.append(self.last_registration)
        # The difference's noise: the colour map's residual on flat background, measured -- unless
        # the map is not determined by the background (more than MAX_UNEXPLAINED unexplained):
        # then its residual is not noise, and the images' own noise is used.
        return mapped, r, inside, self.last_registration["noise_sigma"]

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        h, w = frames.shape[-2:]
        if (w, h) != (self._media.info.width, self._media.info.height):
            raise self._media.error(f"plate is {self._media.info.width}x{self._media.info.height} but frames are "
                                    f"{w}x{h}; supply a plate of the frame size")
        frames = frames.float()
        plates = self._plate(index).float().expand(frames.shape[0], -1, -1, -1)
        warped, residuals, valid, noise = [], [], [], []
        for i, frame_index in enumerate(index):
            f_np = frames[i].permute(1, 2, 0).cpu().numpy()
            p_np = plates[i].permute(1, 2, 0).cpu().numpy()
            mapped, r, inside, sigma = self._register(f_np, p_np, frame_index)
            valid.append(torch.from_numpy(inside)[None])
            warped.append(torch.from_numpy(np.ascontiguousarray(mapped)).permute(2, 0, 1))
            residuals.append(r)
            noise.append(sigma)
        plate = torch.stack(warped).to(frames.device)
        locked = all(r is None for r in residuals)
        return difference_mask(frames, plate, residual=None if locked else residuals,
                               valid=None if locked else torch.stack(valid).to(frames.device), noise=noise)

    @property
    def warnings(self) -> list[str]:
        """One-line run warnings: the plate leaves more than MAX_UNEXPLAINED of the frame
        unexplained on more than ``FEW_FRAMES`` frames (or on every frame)."""
        seen = {r["frame"]: r for r in self.registrations}
        bad = sorted(f for f, r in seen.items() if r["unexplained_share"] > MAX_UNEXPLAINED)
        if not bad or (len(bad) <= FEW_FRAMES and len(bad) < len(seen)):
            return []
        shown = ", ".join(str(f) for f in bad[:8]) + (f", ... ({len(bad)} frames)" if len(bad) > 8 else "")
        worst = max(seen[f]["unexplained_share"] for f in bad)
        return [f"the plate does not explain {len(bad)} of {len(seen)} frame(s): {shown}; up to {worst:.0%} of a "
                "frame differs from the registered plate by more than its fitted exposure/colour map and the noise "
                f"allow; is the plate of this shot (same place, same light), and does the background fill at least "
                f"{TRIM:.0%} of the frame?"]

    def report(self) -> dict:
        """The run report's ``plate_registration`` (how the plate was aligned to the frames); {}
        before any frame (``masks.ReportingSource``)."""
        if not self.registrations:
            return {}
        residuals = [r["residual_px"] for r in self.registrations if r["registered"]]
        return {"plate_registration": {
            "frames": len(self.registrations), "registered": len(residuals),
            "median_residual_px": float(np.median(residuals)) if residuals else None,
            "max_residual_px": max(residuals) if residuals else None,
        }}

    def close(self) -> None:
        self._media.close()
