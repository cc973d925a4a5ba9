"""Fast, realistic synthetic foregrounds for training the AlphaGAN generator without a licensed
matting data set.

Each sample is a layered foreground -- a body with anti-aliased hard or defocused edges, hair
(strands drawn at ``supersample`` x resolution with anti-aliasing, then area-downsampled so
that sub-pixel strands become soft alpha), fur (dense short strands along the whole boundary),
flyaway hairs, foliage (leaves on branches or thresholded grass texture), lace/mesh,
semi-transparent veils and glass -- combined with the Porter-Duff ``over`` operator, sometimes
motion-blurred (premultiplied, so colours stay consistent), with colours and backgrounds cut
from real photographs.

Photographs: only images shipped inside scikit-image's ``skimage.data`` whose docstrings state a
public-domain or CC0 status are used (see ``PHOTO_SOURCES``). Middlebury's motorcycle, moon,
page, logo and colorwheel are excluded (licence not stated or not a photograph).

All randomness comes from an explicit ``np.random.Generator``: the same generator state gives
the same sample bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

__all__ = [
    "PHOTO_SOURCES",
    "SyntheticSample",
    "SyntheticForegrounds",
    "load_photo_bank",
    "composite",
]

# name in skimage.data -> licence statement from its docstring (scikit-image 0.26).
PHOTO_SOURCES: dict[str, str] = {
    "astronaut": "NASA, public domain (no known copyright restrictions)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "rocket": "SpaceX, released into the public domain",
    "hubble_deep_field": "NASA, public domain",
    "retina": "CC0 1.0 Universal",
    "immunohistochemistry": "no known copyright restrictions",
    "camera": "CC0 (Lav Varshney)",
    "brick": "CC0Textures, CC0",
    "grass": "CC0Textures, CC0",
    "gravel": "CC0Textures, CC0",
    "clock": "public domain (Stefan van der Walt)",
    "coins": "no known copyright restrictions",
    "horse": "CC0 (Andreas Preuss)",
    "text": "public domain",
    "cell": "CC0",
}

# Grayscale textures with fine, high-contrast structure: thresholded, they make foliage-like
# alpha; tinted, they make backgrounds.
_TEXTURE_NAMES = ("grass", "gravel", "brick")


@dataclass(frozen=True)
class SyntheticSample:
    """One synthetic foreground.

    fg: (H, W, 3) float32 in [0, 1], straight (unpremultiplied) foreground colour.
    alpha: (H, W) float32 in [0, 1].
    bg: (H, W, 3) float32 in [0, 1], a background drawn for this sample (callers may use another).
    """

    fg: np.ndarray
    alpha: np.ndarray
    bg: np.ndarray


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """I = a*F + (1-a)*B. fg, bg: (H,W,3) float; alpha: (H,W) float in [0,1]. Returns (H,W,3) float32."""
    a = alpha[..., None].astype(np.float32)
    return (a * fg + (1.0 - a) * bg).astype(np.float32)


def load_photo_bank() -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Load the licensed scikit-image photographs.

    Returns (colour photos as (H,W,3) float32 [0,1] -- grayscale ones replicated to 3 channels,
    to be tinted at sample time -- , textures by name as (H,W) float32 [0,1]).
    """
    import skimage.data as skd

    photos: list[np.ndarray] = []
    textures: dict[str, np.ndarray] = {}
    for name in PHOTO_SOURCES:
        img = np.asarray(getattr(skd, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        img = img.astype(np.float32)
        img /= 255.0 if img.max() > 1.5 else 1.0
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if name in _TEXTURE_NAMES:
            textures[name] = img if img.ndim == 2 else img.mean(axis=2)
        if name in ("horse", "text"):
            # Binary-ish silhouettes/text: usable as background structure only.
            pass
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(img, dtype=np.float32))
    return photos, textures


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0,1], (size,size) float32, made by upsampling a cells x cells grid."""
    g = rng.random((cells, cells), dtype=np.float32)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.random(3, dtype=np.float32)


_HAIR_BASE = np.array(
    [
        [0.05, 0.04, 0.03],  # black
        [0.22, 0.13, 0.07],  # dark brown
        [0.45, 0.30, 0.17],  # light brown
        [0.85, 0.72, 0.45],  # blonde
        [0.55, 0.22, 0.08],  # red
        [0.70, 0.70, 0.70],  # grey
        [0.95, 0.93, 0.88],  # white fur
    ],
    dtype=np.float32,
)


class SyntheticForegrounds:
    """Generator of synthetic (fg, alpha, bg) triples at ``size`` x ``size``.

    size: output side in pixels (>= 32). supersample: factor at which thin structures are drawn
    before area downsampling (4 makes a 1-px-thick line 0.25 px wide).
    probabilities: ``p_hair``, ``p_fur``, ... (see __init__) choose the hard cases per sample.
    Cost: ~20-40 ms per 320x320 sample on one core.
    """

    def __init__(
        self,
        size: int = 320,
        supersample: int = 4,
        *,
        p_hair: float = 0.55,
        p_fur: float = 0.3,
        p_flyaway: float = 0.35,
        p_foliage: float = 0.2,
        p_mesh: float = 0.06,
        p_transparent: float = 0.12,
        p_motion_blur: float = 0.15,
        p_defocus: float = 0.2,
        p_close_colours: float = 0.25,
        photos: Optional[tuple[list[np.ndarray], dict[str, np.ndarray]]] = None,
    ) -> None:
        if size < 32:
            raise ValueError(f"SyntheticForegrounds size={size}: must be >= 32 pixels")
        if supersample < 1:
            raise ValueError(f"SyntheticForegrounds supersample={supersample}: must be >= 1")
        self.size = int(size)
        self.ss = int(supersample)
        self.p = dict(
            hair=p_hair, fur=p_fur, flyaway=p_flyaway, foliage=p_foliage, mesh=p_mesh,
            transparent=p_transparent, motion=p_motion_blur, defocus=p_defocus, close=p_close_colours,
        )
        self.photos, self.textures = photos if photos is not None else load_photo_bank()

    # ------------------------------------------------------------------ photos / colours
    def _photo_crop(self, rng: np.random.Generator, out: int, blur_ok: bool = True) -> np.ndarray:
        """A colour-jittered random crop of a random photo, resized to (out,out,3) float32 [0,1]."""
        img = self.photos[int(rng.integers(len(self.photos)))]
        h, w = img.shape[:2]
        side = int(min(h, w) * rng.uniform(0.25, 1.0))
        side = max(side, 16)
        y = int(rng.integers(0, h - side + 1))
        x = int(rng.integers(0, w - side + 1))
        crop = img[y : y + side, x : x + side]
        crop = cv2.resize(crop, (out, out), interpolation=cv2.INTER_AREA if side > out else cv2.INTER_LINEAR)
        k = int(rng.integers(4))
        if k:
            crop = np.rot90(crop, k)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        # Grayscale sources (equal channels) get a random tint so they are not all grey.
        if float(np.abs(crop[..., 0] - crop[..., 1]).mean()) < 1e-3 or rng.random() < 0.3:
            tint = rng.uniform(0.3, 1.2, size=3).astype(np.float32)
            crop = crop * tint
        crop = self._colour_jitter(rng, crop)
        if blur_ok and rng.random() < 0.25:
            s = rng.uniform(0.8, 4.0)
            crop = cv2.GaussianBlur(crop, (0, 0), s)
        return crop.clip(0.0, 1.0).astype(np.float32)

    @staticmethod
    def _colour_jitter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
        gain = rng.uniform(0.7, 1.3, size=3).astype(np.float32)
        bias = rng.uniform(-0.1, 0.1, size=3).astype(np.float32)
        gray = img.mean(axis=2, keepdims=True)
        sat = np.float32(rng.uniform(0.5, 1.4))
        out = gray + (img - gray) * sat
        out = out * gain + bias
        gamma = np.float32(rng.uniform(0.7, 1.4))
        return np.power(out.clip(0.0, 1.0), gamma)

    def _hair_colour_field(self, rng: np.random.Generator, n: int, streaks: Optional[np.ndarray]) -> np.ndarray:
        base = _HAIR_BASE[int(rng.integers(len(_HAIR_BASE)))] * rng.uniform(0.8, 1.2, 3).astype(np.float32)
        shade = 0.65 + 0.7 * _smooth_noise(rng, n, int(rng.integers(3, 8)))
        field = base[None, None, :] * shade[..., None]
        if streaks is not None:
            # Strand-aligned highlights: the strand coverage map itself, lightly blurred.
            field = field * (0.8 + 0.45 * streaks[..., None])
        return field.clip(0.0, 1.0).astype(np.float32)

    # ------------------------------------------------------------------ shapes
    def _body_polygon(self, rng: np.random.Generator) -> np.ndarray:
        """A smooth random closed contour (N,2) float in pixel units of the *output* grid."""
        s = self.size
        # Centre near the frame, radius such that the boundary crosses the view.
        cx, cy = rng.uniform(0.15, 0.85, 2) * s
        r0 = rng.uniform(0.25, 0.9) * s
        if rng.random() < 0.2:
            # Man-made object: a polygon with few vertices and sharp corners.
            k = int(rng.integers(3, 9))
            th = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = r0 * rng.uniform(0.6, 1.3, k)
            poly = np.stack([cx + r * np.cos(th), cy + r * np.sin(th)], axis=1)
            # Resample the edges densely so strands can root anywhere along them.
            closed = np.concatenate([poly, poly[:1]], axis=0)
            t = np.linspace(0, 1, 32, endpoint=False)[None, :, None]
            dense = closed[:-1, None, :] * (1 - t) + closed[1:, None, :] * t
            return dense.reshape(-1, 2)
        n = 256
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = np.ones(n)
        for k in range(1, 8):
            amp = rng.normal(0, 0.25 / k)
            r += amp * np.cos(k * th + rng.uniform(0, 2 * np.pi))
        r = np.clip(r, 0.25, None) * r0
        aspect = rng.uniform(0.6, 1.6)
        rot = rng.uniform(0, np.pi)
        x = r * np.cos(th) * aspect
        y = r * np.sin(th)
        xr = x * math.cos(rot) - y * math.sin(rot) + cx
        yr = x * math.sin(rot) + y * math.cos(rot) + cy
        return np.stack([xr, yr], axis=1)

    def _fill_poly(self, poly: np.ndarray, n: int, scale: float) -> np.ndarray:
        canvas = np.zeros((n, n), np.uint8)
        pts = np.round(poly * scale * 16).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_AA, shift=4)
        return canvas

    def _down(self, canvas: np.ndarray) -> np.ndarray:
        """Area-downsample a supersampled canvas to the output size, float32 [0,1]."""
        out = canvas.astype(np.float32) * (1.0 / 255.0) if canvas.dtype == np.uint8 else canvas
        if self.ss > 1:
            out = cv2.resize(out, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return out

    def _strands(
        self,
        rng: np.random.Generator,
        roots: np.ndarray,
        dirs: np.ndarray,
        length: np.ndarray,
        curl: float,
        segments: int,
        opacity_bins: int = 3,
        thickness: int = 1,
    ) -> np.ndarray:
        """Draw strands on a supersampled canvas; return it downsampled: (size,size) float32 [0,1].

        roots: (N,2) start points (output-pixel units); dirs: (N,) start angles in radians;
        length: (N,) strand lengths in output pixels; curl: std of per-segment angle change.
        """
        n_str = roots.shape[0]
        big = self.size * self.ss
        if n_str == 0:
            return np.zeros((self.size, self.size), np.float32)
        dang = rng.normal(0, curl, size=(n_str, segments)) + rng.normal(0, curl * 0.5, size=(n_str, 1))
        ang = dirs[:, None] + np.cumsum(dang, axis=1)
        step = (length / segments)[:, None]
        dx = np.cos(ang) * step
        dy = np.sin(ang) * step
        xs = roots[:, 0:1] + np.concatenate([np.zeros((n_str, 1)), np.cumsum(dx, axis=1)], axis=1)
        ys = roots[:, 1:2] + np.concatenate([np.zeros((n_str, 1)), np.cumsum(dy, axis=1)], axis=1)
        pts = np.stack([xs, ys], axis=2) * (self.ss * 8)  # shift=3 -> 1/8 sub-pixel precision
        pts = np.round(pts).astype(np.int32)
        canvas = np.zeros((big, big), np.uint8)
        bins = rng.integers(0, opacity_bins, size=n_str)
        levels = np.linspace(1.0, 0.45, opacity_bins)
        for b in range(opacity_bins):
            sel = np.nonzero(bins == b)[0]
            if sel.size == 0:
                continue
            layer = np.zeros((big, big), np.uint8) if b else canvas
            cv2.polylines(layer, list(pts[sel]), False, int(255 * levels[b]), thickness=thickness,
                          lineType=cv2.LINE_AA, shift=3)
            if b:
                np.maximum(canvas, layer, out=canvas)
        return self._down(canvas)

    @staticmethod
    def _contour_normals(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outward normal angles for a closed contour (counter-clockwise or not)."""
        d = np.roll(poly, -1, axis=0) - np.roll(poly, 1, axis=0)
        normal = np.stack([d[:, 1], -d[:, 0]], axis=1)
        # Orientation: make normals point away from the centroid on average.
        c = poly.mean(axis=0)
        if float(((poly - c) * normal).sum()) < 0:
            normal = -normal
        return poly, np.arctan2(normal[:, 1], normal[:, 0])

    def _visible(self, pts: np.ndarray, margin: float) -> np.ndarray:
        s = self.size
        return (pts[:, 0] > -margin) & (pts[:, 0] < s + margin) & (pts[:, 1] > -margin) & (pts[:, 1] < s + margin)

    # ------------------------------------------------------------------ layers
    def _layer_body(self, rng: np.random.Generator, bg: np.ndarray) -> tuple[list, np.ndarray]:
        """Body + attached hair/fur/flyaways. Returns (layers [(alpha, fg)], contour)."""
        s, ss = self.size, self.ss
        poly = self._body_polygon(rng)
        body_a = self._down(self._fill_poly(poly, s * ss, ss)) if ss > 1 else self._fill_poly(poly, s, 1) / 255.0
        body_f = self._photo_crop(rng, s, blur_ok=False)
        if rng.random() < 0.3:  # flat-ish shaded clothes/skin
            col = _random_colour(rng)
            body_f = (col[None, None, :] * (0.6 + 0.6 * _smooth_noise(rng, s, 4))[..., None]).clip(0, 1)
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        pts, nang = self._contour_normals(poly)
        # Dense contour samples for strand roots.
        vis = self._visible(pts, 0.1 * s)
        if not vis.any():
            vis[:] = True
        body_alpha = body_a

        if rng.random() < self.p["fur"]:
            # Dense short strands along the whole visible boundary; fur takes the body colour.
            n = int(rng.integers(600, 4000))
            idx = rng.choice(np.nonzero(vis)[0], size=n)
            t = rng.random(n)
            nxt = (idx + 1) % len(pts)
            roots = pts[idx] * (1 - t[:, None]) + pts[nxt] * t[:, None]
            inward = rng.uniform(0, 6, n)
            ang = nang[idx]
            roots = roots - np.stack([np.cos(ang), np.sin(ang)], 1) * inward[:, None]
            dirs = ang + rng.normal(0, rng.uniform(0.2, 0.7), n)
            flen = rng.uniform(3, 6) * rng.uniform(0.6, 2.2, n) * rng.uniform(0.7, 2.5)
            fur = self._strands(rng, roots, dirs, flen, curl=0.08, segments=4)
            body_alpha = np.maximum(body_alpha, fur)
            tip = rng.uniform(0.0, 0.3)
            body_f = (body_f * (1 + tip * _smooth_noise(rng, s, 16)[..., None])).clip(0, 1)

        if rng.random() < self.p["defocus"]:
            body_alpha = cv2.GaussianBlur(body_alpha, (0, 0), rng.uniform(0.6, 3.5))
        layers.append((body_alpha, body_f))

        if rng.random() < self.p["hair"]:
            # A hair mass along an arc of the contour: many medium strands combed one way.
            m = len(pts)
            start = int(rng.integers(m))
            span = int(m * rng.uniform(0.15, 0.6))
            arc = (start + np.arange(span)) % m
            arc = arc[vis[arc]] if vis[arc].any() else arc
            n = int(rng.integers(150, 1600))
            idx = rng.choice(arc, size=n)
            roots = pts[idx]
            ang = nang[idx]
            depth = rng.uniform(0, 0.12 * s, n)
            roots = roots - np.stack([np.cos(ang), np.sin(ang)], 1) * depth[:, None]
            comb = rng.uniform(-np.pi, np.pi)
            w = rng.uniform(0.0, 0.7)
            dirs = np.arctan2((1 - w) * np.sin(ang) + w * math.sin(comb), (1 - w) * np.cos(ang) + w * math.cos(comb))
            dirs = dirs + rng.normal(0, rng.uniform(0.1, 0.5), n)
            hlen = rng.uniform(0.05, 0.3) * s * rng.uniform(0.5, 1.5, n)
            hair = self._strands(rng, roots, dirs, hlen, curl=rng.uniform(0.02, 0.2), segments=10,
                                 thickness=int(rng.integers(1, 3)))
            # The mass itself: a band inside the contour along the arc is fully opaque hair.
            mass = np.zeros((s, s), np.uint8)
            cv2.polylines(mass, [np.round(pts[arc] * 4).astype(np.int32)], False, 255,
                          thickness=max(1, int(0.12 * s)), lineType=cv2.LINE_AA, shift=2)
            mass_a = np.minimum(mass.astype(np.float32) / 255.0, body_alpha)
            hair_a = np.maximum(hair, mass_a)
            streaks = cv2.GaussianBlur(hair, (0, 0), 0.7)
            hair_f = self._hair_colour_field(rng, s, streaks)
            layers.append((hair_a, hair_f))

        if rng.random() < self.p["flyaway"]:
            n = int(rng.integers(4, 50))
            idx = rng.choice(np.nonzero(vis)[0], size=n)
            roots = pts[idx]
            dirs = nang[idx] + rng.normal(0, 0.6, n)
            flen = rng.uniform(0.1, 0.6, n) * s
            fly = self._strands(rng, roots, dirs, flen, curl=rng.uniform(0.03, 0.15), segments=16, opacity_bins=4)
            fly = fly * np.float32(rng.uniform(0.5, 1.0))
            layers.append((fly, self._hair_colour_field(rng, s, None)))
        return layers, poly

    def _layer_foliage(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s, ss = self.size, self.ss
        big = s * ss
        if rng.random() < 0.5 and self.textures:
            # Thresholded natural texture (grass/gravel/brick): fine, irregular holes and blades.
            names = sorted(self.textures)
            tex = self.textures[names[int(rng.integers(len(names)))]]
            h, w = tex.shape
            side = int(min(h, w) * rng.uniform(0.2, 0.8))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            t = cv2.resize(np.ascontiguousarray(tex[y:y + side, x:x + side]), (big, big), interpolation=cv2.INTER_CUBIC)
            thr = np.quantile(t, rng.uniform(0.3, 0.7))
            a = (t > thr).astype(np.uint8) * 255
            a = self._down(a)
            # Confine to a region so there is also pure background.
            poly = self._body_polygon(rng)
            region = self._fill_poly(poly, s, 1).astype(np.float32) / 255.0
            region = cv2.GaussianBlur(region, (0, 0), rng.uniform(2, 10))
            alpha = a * region
        else:
            # Branches with leaves: random-walk branches, leaves as small rotated ellipses.
            canvas = np.zeros((big, big), np.uint8)
            nb = int(rng.integers(3, 12))
            for _ in range(nb):
                p = rng.uniform(0, s, 2)
                ang = rng.uniform(0, 2 * np.pi)
                nseg = int(rng.integers(8, 25))
                steps = rng.uniform(0.02, 0.06) * s
                angs = ang + np.cumsum(rng.normal(0, 0.25, nseg))
                xy = p + np.cumsum(np.stack([np.cos(angs), np.sin(angs)], 1) * steps, axis=0)
                cv2.polylines(canvas, [np.round(xy * ss * 8).astype(np.int32)], False, 255,
                              thickness=max(1, int(rng.uniform(0.3, 2.5) * ss)), lineType=cv2.LINE_AA, shift=3)
                nl = int(rng.integers(5, 30))
                at = rng.integers(0, nseg, nl)
                lsz = rng.uniform(0.01, 0.05) * s
                for j in range(nl):
                    c = xy[at[j]] + rng.normal(0, lsz * 0.8, 2)
                    ax = (int(lsz * ss * rng.uniform(0.6, 1.4)), int(lsz * ss * rng.uniform(0.2, 0.5)))
                    cv2.ellipse(canvas, (int(c[0] * ss), int(c[1] * ss)), ax, float(rng.uniform(0, 360)),
                                0, 360, 255, -1, lineType=cv2.LINE_AA)
            alpha = self._down(canvas)
        greens = np.array([rng.uniform(0.05, 0.4), rng.uniform(0.25, 0.7), rng.uniform(0.02, 0.3)], np.float32)
        col = greens if rng.random() < 0.7 else _random_colour(rng)
        fg = (col[None, None, :] * (0.5 + 0.8 * _smooth_noise(rng, s, 12))[..., None]).clip(0, 1)
        return alpha.astype(np.float32), fg.astype(np.float32)

    def _layer_mesh(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Lace / net / fence: thin lines in a rotated grid, partly transparent, inside a region."""
        s, ss = self.size, self.ss
        big = s * ss
        canvas = np.zeros((big, big), np.uint8)
        pitch = rng.uniform(4, 20) * ss
        th = max(1, int(rng.uniform(0.25, 1.5) * ss))
        for ang in (rng.uniform(0, np.pi), rng.uniform(0, np.pi)):
            d = np.array([math.cos(ang), math.sin(ang)])
            nrm = np.array([-d[1], d[0]])
            k = np.arange(-big * 1.5 / pitch, big * 1.5 / pitch)
            centres = big / 2 + k[:, None] * pitch * nrm[None, :]
            p0 = centres - d * big * 1.5
            p1 = centres + d * big * 1.5
            lines = np.stack([p0, p1], axis=1)
            cv2.polylines(canvas, list(np.round(lines * 4).astype(np.int32)), False, 255, thickness=th,
                          lineType=cv2.LINE_AA, shift=2)
        a = self._down(canvas)
        poly = self._body_polygon(rng)
        region = self._fill_poly(poly, s, 1).astype(np.float32) / 255.0
        alpha = a * region * np.float32(rng.uniform(0.5, 1.0))
        col = _random_colour(rng)
        fg = np.broadcast_to(col, (s, s, 3)).astype(np.float32)
        return alpha, fg

    def _layer_transparent(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Veil (folded fabric, sinusoidal density) or glass (low alpha, bright rims)."""
        s = self.size
        poly = self._body_polygon(rng)
        region = self._fill_poly(poly, s, 1).astype(np.float32) / 255.0
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        if rng.random() < 0.6:
            level = rng.uniform(0.15, 0.75)
            ang = rng.uniform(0, np.pi)
            freq = rng.uniform(0.02, 0.15)
            folds = 0.5 + 0.5 * np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * freq + 2 * _smooth_noise(rng, s, 4) * np.pi)
            a = region * np.clip(level * (0.6 + 0.8 * folds), 0, 1)
            col = _random_colour(rng)
            fg = np.broadcast_to(col, (s, s, 3)).astype(np.float32) * (0.8 + 0.3 * folds[..., None])
        else:
            inner = cv2.erode(region, np.ones((3, 3), np.uint8), iterations=int(rng.integers(2, 10)))
            inner = cv2.GaussianBlur(inner, (0, 0), rng.uniform(2, 8))
            rim = np.clip(region - inner, 0, 1)
            a = np.clip(region * rng.uniform(0.05, 0.35) + rim * rng.uniform(0.4, 0.9), 0, 1)
            tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
            fg = np.broadcast_to(tint, (s, s, 3)).astype(np.float32) * (0.8 + 0.4 * _smooth_noise(rng, s, 6)[..., None])
        return a.astype(np.float32), fg.clip(0, 1).astype(np.float32)

    # ------------------------------------------------------------------ sample
    @staticmethod
    def _over(layers: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Porter-Duff 'over', first layer at the back. Returns (alpha, straight fg)."""
        a_acc = np.zeros_like(layers[0][0])
        p_acc = np.zeros_like(layers[0][1])  # premultiplied colour
        for a, f in layers:
            a3 = a[..., None]
            p_acc = a3 * f + (1.0 - a3) * p_acc
            a_acc = a + (1.0 - a) * a_acc
        fg = p_acc / np.maximum(a_acc[..., None], 1e-6)
        # Where alpha is 0 the colour is undefined: fill with the nearest meaningful colour proxy.
        fallback = layers[-1][1]
        fg = np.where(a_acc[..., None] > 1e-4, fg, fallback)
        return a_acc.astype(np.float32), fg.clip(0.0, 1.0).astype(np.float32)

    def _motion_blur(self, rng: np.random.Generator, alpha: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        length = int(rng.integers(5, 31))
        k = np.zeros((length, length), np.float32)
        k[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        k = cv2.warpAffine(k, rot, (length, length))
        k /= max(float(k.sum()), 1e-6)
        prem = cv2.filter2D(fg * alpha[..., None], -1, k, borderType=cv2.BORDER_REFLECT)
        a = cv2.filter2D(alpha, -1, k, borderType=cv2.BORDER_REFLECT)
        f = np.where(a[..., None] > 1e-4, prem / np.maximum(a[..., None], 1e-6), fg)
        return a.clip(0, 1), f.clip(0, 1)

    def sample(self, rng: np.random.Generator) -> SyntheticSample:
        """Draw one sample. Deterministic given ``rng``'s state."""
        s = self.size
        bg = self._photo_crop(rng, s)
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        if rng.random() < 0.92:
            body_layers, _ = self._layer_body(rng, bg)
            layers.extend(body_layers)
        extra: list[Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]] = []
        if rng.random() < self.p["foliage"]:
            extra.append(self._layer_foliage)
        if rng.random() < self.p["mesh"]:
            extra.append(self._layer_mesh)
        if rng.random() < self.p["transparent"]:
            extra.append(self._layer_transparent)
        if not layers and not extra:
            extra.append(self._layer_foliage if rng.random() < 0.5 else self._layer_transparent)
        for fn in extra:
            layer = fn(rng)
            # Extra layers go in front of or behind the body.
            if rng.random() < 0.5:
                layers.append(layer)
            else:
                layers.insert(0, layer)
        alpha, fg = self._over(layers)
        if rng.random() < self.p["motion"]:
            alpha, fg = self._motion_blur(rng, alpha, fg)
        if rng.random() < self.p["close"]:
            # Hard case: foreground colours pulled towards the local background colour.
            band = cv2.GaussianBlur(bg, (0, 0), 12.0)
            t = np.float32(rng.uniform(0.4, 0.85))
            fg = (1 - t) * fg + t * band * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        # 8-bit quantisation of alpha, like every real ground truth.
        alpha = np.round(alpha.clip(0.0, 1.0) * 255.0) / 255.0
        return SyntheticSample(
            fg=np.ascontiguousarray(fg.clip(0.0, 1.0), dtype=np.float32),
            alpha=alpha.astype(np.float32),
            bg=np.ascontiguousarray(bg, dtype=np.float32),
        )
