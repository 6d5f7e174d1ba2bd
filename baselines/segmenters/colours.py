"""A colour-term classifier: each pixel gets one of the 11 basic colour names.

Broden's colour concepts came from a learned colour-naming model (van de
Weijer et al., 2009) that maps pixels to the eleven basic colour terms of
Berlin & Kay. Its lookup table is not available offline, so this module
names a pixel by its nearest prototype colour in CIELAB, a perceptually
uniform space where Euclidean distance roughly tracks how different two
colours look. The prototypes are typical sRGB renderings of each term.
"""
from __future__ import annotations

import torch

#: The eleven basic colour terms (Berlin & Kay), in a fixed order.
COLOUR_NAMES: tuple[str, ...] = ("black", "white", "red", "green", "yellow", "blue", "brown", "purple",
                                 "pink", "orange", "grey")

#: A typical sRGB value of each term (focal colours, rounded).
_PROTOTYPES_RGB = torch.tensor([
    [0, 0, 0],         # black
    [255, 255, 255],   # white
    [210, 30, 30],     # red
    [40, 160, 50],     # green
    [245, 225, 40],    # yellow
    [35, 75, 210],     # blue
    [130, 80, 35],     # brown
    [125, 45, 160],    # purple
    [245, 155, 190],   # pink
    [250, 140, 20],    # orange
    [128, 128, 128],   # grey
], dtype=torch.float32)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 255] (... x 3, last dim channels) -> CIELAB (D65), same leading shape."""
    c = rgb.float() / 255.0
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                      [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], dtype=lin.dtype)
    xyz = lin @ m.T
    xyz = xyz / torch.tensor([0.95047, 1.0, 1.08883], dtype=lin.dtype)
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(xyz > eps, xyz.clamp_min(1e-12) ** (1 / 3), (kappa * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return torch.stack([L, a, b], dim=-1)


_PROTOTYPES_LAB = rgb_to_lab(_PROTOTYPES_RGB)


def colour_index(images: torch.Tensor) -> torch.Tensor:
    """uint8 images B x 3 x H x W -> int64 B x H x W index into `COLOUR_NAMES`."""
    lab = rgb_to_lab(images.permute(0, 2, 3, 1))
    d = torch.cdist(lab.reshape(-1, 3), _PROTOTYPES_LAB)
    return d.argmin(dim=1).reshape(images.shape[0], *images.shape[2:])


def colour_masks(images: torch.Tensor) -> torch.Tensor:
    """uint8 images B x 3 x H x W -> bool B x 11 x H x W, exactly one colour per pixel."""
    idx = colour_index(images)
    return idx[:, None] == torch.arange(len(COLOUR_NAMES)).view(1, -1, 1, 1)
