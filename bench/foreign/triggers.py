"""Trigger families of the foreign zoo, applied to uint8 NHWC images in numpy (poisoning is
done here, in Python, never by badexpert's attack library). Every trigger is a deterministic
function of (image shape, seed).

family     in badexpert's library?   what it does
patch      yes (BadNet's family)     a small block of seeded random black/white (grey) or colour
                                     pixels, 1 pixel in from the bottom-right corner
blend      yes (Blend's family)      x' = (1 - a) x + a P with P smooth seeded noise (random 4x4
                                     values upsampled to the image), a = 0.15
icon       no                        a 7x7 glyph (a smiley face) stamped near the top-left corner:
                                     its shape, not a square, is the trigger
noise      no                        a fixed low-amplitude sign-noise pattern added to the whole
                                     image (+-10/255 grey, +-8/255 colour), clipped to 0..255
colour-cast no                       a warm tint over the whole image (R up, B down), colour only
"""
import numpy as np

IN_LIBRARY = {"patch": True, "blend": True, "icon": False, "noise": False, "colour-cast": False}

SMILEY = np.array([
    [0, 1, 1, 1, 1, 1, 0],
    [1, 0, 0, 0, 0, 0, 1],
    [1, 0, 1, 0, 1, 0, 1],
    [1, 0, 0, 0, 0, 0, 1],
    [1, 0, 1, 1, 1, 0, 1],
    [1, 0, 0, 0, 0, 0, 1],
    [0, 1, 1, 1, 1, 1, 0],
], dtype=bool)


def _upsample(small, h, w):
    """Bilinear upsampling of a [h0, w0, C] array to [h, w, C] (align_corners=True)."""
    h0, w0 = small.shape[:2]
    ys = np.linspace(0, h0 - 1, h)
    xs = np.linspace(0, w0 - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, h0 - 2)
    x0 = np.floor(xs).astype(int).clip(0, w0 - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    a = small[y0][:, x0]
    b = small[y0][:, x0 + 1]
    c = small[y0 + 1][:, x0]
    d = small[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def make(family, shape, seed):
    """The trigger of `family` for images of `shape` (H, W, C): a function of a uint8 NHWC batch,
    plus the parameters to record in the manifest."""
    h, w, c = shape
    rng = np.random.default_rng(seed)
    if family == "patch":
        size = 3 if c == 1 else 4
        block = (rng.integers(0, 2, size=(size, size, c)) * 255).astype(np.uint8)
        top, left = h - 1 - size, w - 1 - size

        def apply(x):
            x = x.copy()
            x[:, top:top + size, left:left + size, :] = block
            return x
        return apply, {"size": size, "top": top, "left": left, "patternSeed": seed}
    if family == "blend":
        alpha = 0.15
        pattern = _upsample(rng.random((4, 4, c)), h, w) * 255.0

        def apply(x):
            return np.clip(np.rint((1 - alpha) * x + alpha * pattern), 0, 255).astype(np.uint8)
        return apply, {"alpha": alpha, "pattern": "4x4 seeded uniform noise, bilinear to the image size", "patternSeed": seed}
    if family == "icon":
        colour = np.array([255] if c == 1 else [255, 220, 0], dtype=np.uint8)
        top, left = 2, 2
        ys, xs = np.nonzero(SMILEY)

        def apply(x):
            x = x.copy()
            x[:, top + ys, left + xs, :] = colour
            return x
        return apply, {"glyph": "7x7 smiley outline", "top": top, "left": left, "colour": colour.tolist()}
    if family == "noise":
        amplitude = 10 if c == 1 else 8
        pattern = np.where(rng.random((h, w, c)) < 0.5, -amplitude, amplitude).astype(np.int16)

        def apply(x):
            return np.clip(x.astype(np.int16) + pattern, 0, 255).astype(np.uint8)
        return apply, {"amplitude": amplitude, "pattern": "seeded sign noise over the whole image", "patternSeed": seed}
    if family == "colour-cast":
        if c != 3:
            raise ValueError("colour-cast needs colour images")
        gain = np.array([1.12, 1.0, 0.85])
        offset = np.array([10.0, 4.0, -6.0])

        def apply(x):
            return np.clip(np.rint(x * gain + offset), 0, 255).astype(np.uint8)
        return apply, {"gain": gain.tolist(), "offset": offset.tolist()}
    raise ValueError(f"unknown trigger family {family!r}")
