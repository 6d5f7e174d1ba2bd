"""Procedurally drawn scenes with per-pixel ground truth for every concept.

A scene is a background (one kind, or a sky-over-ground horizon) with 1 to 4
objects, each a shape of one colour and one fill texture, placed in the cells
of a jittered 2 x 2 grid so that "above" and "left of" mean something. Every
concept of `CONCEPTS` (shapes, colours, textures, backgrounds and parts such
as "top edge of square") has an exact boolean mask, so a neuron defined on
these masks has a known selectivity and a describer's claim can be checked
pixel by pixel.

Images are `IMAGE_SIZE` = 112 px square: large enough for textures (6 px
periods) and parts (top/bottom quarter of an object) to be visible, small
enough that a pool of a thousand scenes renders in seconds on one core.

Two domains differ in style, like ImageNet and Places differ in content:
`plain` draws flat, clean backgrounds and crisp objects; `cluttered` draws
strongly textured, noisy backgrounds, shaded and jittered object colours,
more overlap and distractor strokes that belong to no concept.

Everything is a pure function of (domain, index, seed): scenes are never
stored, they are re-rendered on demand (`scene_concepts` is the oracle
segmenter other modules use).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .catalog import DOMAINS

IMAGE_SIZE = 112

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
#: Object colours and their RGB in the plain domain.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 140, 20),
    "yellow": (245, 225, 30),
    "green": (40, 170, 60),
    "blue": (35, 70, 215),
    "purple": (130, 45, 175),
    "pink": (245, 130, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "brown": (125, 75, 35),
}
TEXTURES = ("solid", "striped", "dotted", "checkered")
BACKGROUNDS = ("sky", "grass", "water", "sand", "brick", "snow")
#: Backgrounds that can form the lower half of a horizon scene (sky above).
GROUNDS = ("grass", "water", "sand", "snow")
PARTS = ("top edge", "bottom edge", "outline")


@dataclass(frozen=True)
class Concept:
    """One named, segmentable concept; `category` groups them for neuron families and descriptions."""

    name: str
    category: str  # shape | colour | texture | background | part


def _concepts() -> tuple[Concept, ...]:
    out = [Concept("object", "shape")]  # any object pixel; used by negations ("shapes that are not blue")
    out += [Concept(s, "shape") for s in SHAPES]
    out += [Concept(c, "colour") for c in COLOURS]
    out += [Concept(t, "texture") for t in TEXTURES]
    out += [Concept(b, "background") for b in BACKGROUNDS]
    out += [Concept(f"{p} of {s}", "part") for s in SHAPES for p in PARTS]
    return tuple(out)


#: The ordered concept inventory; channel i of every concept tensor is CONCEPTS[i].
CONCEPTS: tuple[Concept, ...] = _concepts()
CONCEPT_NAMES: tuple[str, ...] = tuple(c.name for c in CONCEPTS)
CONCEPT_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CONCEPTS)}


@dataclass(frozen=True)
class SceneObject:
    """What was drawn, in drawing order (later objects occlude earlier ones)."""

    shape: str
    colour: str
    texture: str
    cx: float
    cy: float
    radius: float
    cell: tuple[int, int]  # (row, col) of the 2 x 2 layout grid


@dataclass
class Scene:
    """A rendered scene: the picture, a mask per concept, what it contains, and a per-object gain map.

    `salience` (float32 H x W, positive, median 1) is a random per-region
    strength (each object and background region draws its own, log-normal);
    neurons use it so that equally selective units still differ in how
    strongly each instance drives them, as real units do. Its heavy tail
    makes the top-ranked instances clearly stronger than the unit's top-1%
    threshold, so their masks cover whole regions, not speckles.
    """

    domain: str
    index: int
    seed: int
    image: np.ndarray  # uint8 3 x H x W
    concepts: np.ndarray  # bool len(CONCEPTS) x H x W
    objects: tuple[SceneObject, ...]
    background: tuple[str, ...]  # one kind, or (sky, ground) for a horizon
    salience: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]


def _rng(domain: str, index: int, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"synth-scene:{seed}:{domain}:{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _blocky_noise(rng: np.random.Generator, sigma: float, block: int) -> np.ndarray:
    """1 x H x W grain in `block`-pixel cells: texture that still compresses (PNG) and renders fast."""
    n = IMAGE_SIZE // block
    g = rng.normal(0.0, sigma, (n, n)).astype(np.float32)
    return np.repeat(np.repeat(g, block, axis=0), block, axis=1)[None]


def _gain(rng: np.random.Generator) -> float:
    """Log-normal strength of one region (see `Scene.salience`)."""
    return float(np.exp(rng.normal(0.0, 0.45)))


_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean H x W mask of one shape centred at (cx, cy) with outer radius r."""
    dx, dy = _XX - cx, _YY - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        h = 0.85 * r
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "triangle":  # upright, apex at the top
        top, bottom = cy - r, cy + 0.8 * r
        frac = (_YY - top) / (bottom - top)
        return (_YY >= top) & (_YY <= bottom) & (np.abs(dx) <= frac * r)
    if shape == "cross":
        w = 0.33 * r
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    if shape == "star":  # five points, polar radius follows a triangle wave
        theta = np.arctan2(dy, dx) + np.pi / 2
        phase = np.mod(5 * theta / (2 * np.pi), 1.0)
        tri = np.abs(2 * phase - 1)
        rho = r * (0.42 + 0.58 * tri ** 1.5)
        return dx * dx + dy * dy <= rho * rho
    raise ValueError(f"unknown shape {shape!r}")


def _erode(mask: np.ndarray, n: int) -> np.ndarray:
    """Binary erosion by a (2n+1)-square, with numpy shifts (no scipy needed)."""
    out = mask.copy()
    for _ in range(n):
        m = out
        e = m.copy()
        e[1:, :] &= m[:-1, :]
        e[:-1, :] &= m[1:, :]
        e[:, 1:] &= m[:, :-1]
        e[:, :-1] &= m[:, 1:]
        out = e
    return out


def _texture(texture: str, rgb: np.ndarray, contrast: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """3 x H x W fill of one object: its colour, patterned with a contrasting colour."""
    period = float(rng.choice([6.0, 7.0, 8.0]))
    if texture == "solid":
        pattern = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    elif texture == "striped":
        angle = float(rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]))
        u = _XX * np.cos(angle) + _YY * np.sin(angle)
        pattern = np.mod(u, period) < period / 2.6
    elif texture == "dotted":
        u, v = np.mod(_XX, period) - period / 2, np.mod(_YY, period) - period / 2
        pattern = u * u + v * v <= (period / 4.2) ** 2
    elif texture == "checkered":
        pattern = (np.floor(_XX / period) + np.floor(_YY / period)) % 2 == 0
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return np.where(pattern[None], contrast[:, None, None], rgb[:, None, None]).astype(np.float32)


_BG_BASE = {
    "sky": (135, 195, 245), "grass": (70, 150, 55), "water": (40, 105, 170),
    "sand": (225, 200, 145), "brick": (165, 70, 50), "snow": (235, 240, 245),
}


def _background(kind: str, domain: str, rng: np.random.Generator) -> np.ndarray:
    """3 x H x W picture of one background kind, in the domain's style."""
    base = np.array(_BG_BASE[kind], np.float32)[:, None, None]
    strong = domain == "cluttered"
    amp = 1.0 if strong else 0.3
    img = np.broadcast_to(base, (3, IMAGE_SIZE, IMAGE_SIZE)).copy()
    if kind == "sky":
        img = img + (_YY / IMAGE_SIZE * 45 - 20)[None] * np.array([1, 0.6, 0.2], np.float32)[:, None, None]
        if strong:  # clouds
            for _ in range(rng.integers(2, 5)):
                cx, cy, r = rng.uniform(0, IMAGE_SIZE), rng.uniform(0, IMAGE_SIZE), rng.uniform(8, 18)
                blob = np.exp(-(((_XX - cx) / (2 * r)) ** 2 + ((_YY - cy) / r) ** 2))
                img = img + 90 * blob[None]
    elif kind == "grass":
        blades = np.sin(_XX * rng.uniform(1.2, 1.8) + 3 * np.sin(_YY * 0.3)) * 18
        img = img + amp * blades[None] * np.array([0.4, 1, 0.3], np.float32)[:, None, None]
    elif kind == "water":
        waves = np.sin(_YY * 0.45 + 2.5 * np.sin(_XX * rng.uniform(0.08, 0.14))) * 25
        img = img + amp * waves[None] * np.array([0.5, 0.7, 1], np.float32)[:, None, None]
    elif kind == "sand":
        img = img + amp * _blocky_noise(rng, 14.0, 2)
    elif kind == "brick":
        h = 10.0
        row = np.floor(_YY / h)
        xs = _XX + (row % 2) * h
        mortar = (np.mod(_YY, h) < 1.6) | (np.mod(xs, 2 * h) < 1.6)
        img = np.where(mortar[None], np.float32(200 if not strong else 215), img)
    elif kind == "snow":
        img = img - (1 - _YY / IMAGE_SIZE)[None] * 15
        if strong:
            flakes = rng.random((IMAGE_SIZE, IMAGE_SIZE)) < 0.03
            img = np.where(flakes[None], np.float32(255), img - 25)
    if strong:
        img = img + _blocky_noise(rng, 12.0, 4)
    return img


def _place(n: int, domain: str, rng: np.random.Generator) -> list[tuple[float, float, float, tuple[int, int]]]:
    """Object centres and radii: one per distinct cell of a 2 x 2 grid, jittered."""
    cells = rng.permutation(4)[:n]
    cell = IMAGE_SIZE / 2
    jitter = 0.18 if domain == "plain" else 0.3
    out = []
    for c in cells:
        row, col = divmod(int(c), 2)
        r = float(rng.uniform(11, 22) if domain == "plain" else rng.uniform(9, 25))
        cx = cell * (col + 0.5) + rng.uniform(-jitter, jitter) * cell
        cy = cell * (row + 0.5) + rng.uniform(-jitter, jitter) * cell
        out.append((float(cx), float(cy), r, (row, col)))
    return out


def render_scene(domain: str, index: int, seed: int = 0) -> Scene:
    """Draw scene `index` of `domain`; a pure function of its arguments."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown scene domain {domain!r}; known: {', '.join(DOMAINS)}")
    rng = _rng(domain, int(index), int(seed))
    n_c = len(CONCEPTS)
    concepts = np.zeros((n_c, IMAGE_SIZE, IMAGE_SIZE), bool)
    salience = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)

    # Background: one kind everywhere, or a horizon with sky above a ground kind.
    if rng.random() < 0.45:
        ground = str(rng.choice(GROUNDS))
        horizon = int(rng.integers(int(0.35 * IMAGE_SIZE), int(0.65 * IMAGE_SIZE)))
        sky_img, ground_img = _background("sky", domain, rng), _background(ground, domain, rng)
        top = _YY < horizon
        image = np.where(top[None], sky_img, ground_img)
        concepts[CONCEPT_INDEX["sky"]] = top
        concepts[CONCEPT_INDEX[ground]] = ~top
        salience[top] = _gain(rng)
        salience[~top] = _gain(rng)
        background: tuple[str, ...] = ("sky", ground)
    else:
        kind = str(rng.choice(BACKGROUNDS))
        image = _background(kind, domain, rng)
        concepts[CONCEPT_INDEX[kind]] = True
        salience[:] = _gain(rng)
        background = (kind,)
    bg_channels = [CONCEPT_INDEX[b] for b in BACKGROUNDS]

    if domain == "cluttered":  # distractor strokes: pixels that belong to no concept but the background
        for _ in range(int(rng.integers(3, 8))):
            x0, y0 = rng.uniform(0, IMAGE_SIZE, 2)
            ang, length, width = rng.uniform(0, np.pi), rng.uniform(10, 35), rng.uniform(1, 2.5)
            u = (_XX - x0) * np.cos(ang) + (_YY - y0) * np.sin(ang)
            v = -(_XX - x0) * np.sin(ang) + (_YY - y0) * np.cos(ang)
            stroke = (np.abs(v) <= width) & (u >= 0) & (u <= length)
            image = np.where(stroke[None], rng.uniform(0, 255, 3).astype(np.float32)[:, None, None], image)

    n_obj = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]))
    objects: list[SceneObject] = []
    colour_names = list(COLOURS)
    for cx, cy, r, cell in _place(n_obj, domain, rng):
        shape = str(rng.choice(SHAPES))
        colour = str(rng.choice(colour_names))
        texture = str(rng.choice(TEXTURES))
        rgb = np.array(COLOURS[colour], np.float32)
        if domain == "cluttered":
            rgb = np.clip(rgb + rng.normal(0, 14, 3), 0, 255).astype(np.float32)
        contrast = np.array((250, 250, 250) if rgb.mean() < 150 else (25, 25, 25), np.float32)
        fill = _texture(texture, rgb, contrast, rng)
        if domain == "cluttered":  # shading: light from the top left
            shade = 1.15 - 0.3 * ((_XX - cx + _YY - cy) / (4 * r) + 0.5)
            fill = fill * np.clip(shade, 0.75, 1.2)[None]
        m = shape_mask(shape, cx, cy, r)
        if not m.any():
            continue
        image = np.where(m[None], fill, image)
        # Occlusion: the new object's pixels leave every earlier object and the background.
        concepts[:, m] = False
        rows = np.nonzero(m.any(axis=1))[0]
        y0, y1 = rows[0], rows[-1] + 1
        quarter = max(2, int(round(0.25 * (y1 - y0))))
        parts = {
            "top edge": m & (_YY < y0 + quarter),
            "bottom edge": m & (_YY >= y1 - quarter),
            "outline": m & ~_erode(m, 3),
        }
        concepts[CONCEPT_INDEX["object"]] |= m
        concepts[CONCEPT_INDEX[shape]] |= m
        concepts[CONCEPT_INDEX[colour]] |= m
        concepts[CONCEPT_INDEX[texture]] |= m
        for p, pm in parts.items():
            concepts[CONCEPT_INDEX[f"{p} of {shape}"]] |= pm
        salience[m] = _gain(rng)
        objects.append(SceneObject(shape, colour, texture, cx, cy, r, cell))
    concepts[bg_channels] &= ~concepts[CONCEPT_INDEX["object"]][None]

    if domain == "cluttered":
        # uneven lighting: a random linear illumination ramp and overall exposure
        gx, gy = rng.uniform(-0.15, 0.15, 2)
        ramp = 1 + gx * (_XX / IMAGE_SIZE - 0.5) * 2 + gy * (_YY / IMAGE_SIZE - 0.5) * 2
        image = image * rng.uniform(0.8, 1.15) * ramp[None]
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return Scene(domain, int(index), int(seed), image, concepts, tuple(objects), background, salience)


def domain_of(dataset_name: str) -> str:
    """'synth-plain' -> 'plain' (the `dataset` field of synthetic rows names the scene domain)."""
    name = dataset_name[len("synth-"):] if dataset_name.startswith("synth-") else dataset_name
    if name not in DOMAINS:
        raise ValueError(f"{dataset_name!r} is not a synthetic scene domain; known: "
                         f"{', '.join('synth-' + d for d in DOMAINS)}")
    return name


def scene_concepts(dataset_name: str, image_id: int, seed: int = 0) -> np.ndarray:
    """The oracle segmenter: bool [len(CONCEPTS), H, W] of scene `image_id` of a synthetic dataset."""
    return render_scene(domain_of(dataset_name), int(image_id), seed).concepts




def caption_scene(scene: Scene) -> str:
    """A short caption naming the objects (colour, texture, shape) and the background.

    E.g. "a red striped circle and a blue star on grass". Used to train a tiny
    CLIP on scenes, so it names exactly what the ground truth contains.
    """
    phrases = []
    for o in scene.objects:
        tex = "" if o.texture == "solid" else f" {o.texture}"
        phrases.append(f"{o.colour}{tex} {o.shape}")
    if not phrases:
        things = "nothing"
    else:
        with_articles = [("an " if p[0] in "aeiou" else "a ") + p for p in phrases]
        things = with_articles[0] if len(with_articles) == 1 else (
            ", ".join(with_articles[:-1]) + " and " + with_articles[-1])
    bg = scene.background
    where = f"on {bg[0]}" if len(bg) == 1 else f"on {bg[1]} under the sky"
    if bg[0] == "brick":
        where = "in front of a brick wall"
    return f"{things} {where}"
