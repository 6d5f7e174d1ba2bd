"""Turn a unit's exemplars into the images a CLIP model looks at: two views.

- `full_images`: the whole exemplar image, resized and centre-cropped the way
  CLIP's own preprocessing does it (shorter side to the model's input size,
  then the central square). This is what the original CLIP-Dissect shows
  CLIP: whole probe images, with no idea where in them the unit fired.
- `masked_regions`: the exemplar as annotators saw it, the active region at
  full brightness and the rest dimmed to 25%, cropped to the (squared,
  padded) bounding box of the mask so the region fills the model's view.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def full_images(images: torch.Tensor, size: int, *, mode: str = "bicubic") -> torch.Tensor:
    """k x 3 x H x W uint8 images -> k x 3 x size x size floats in [0, 1]: shorter side to size, centre crop.

    `mode` is the model's resize filter: CLIP's preprocessing uses bicubic; the
    synthetic CLIP was trained on bilinear resizes (its `interpolation`).
    """
    if images.shape[0] == 0:
        raise ValueError("unit has no exemplar pixels (images not joined?)")
    x = images.float() / 255.0
    H, W = x.shape[-2:]
    scale = size / min(H, W)
    h, w = max(size, int(round(H * scale))), max(size, int(round(W * scale)))
    if (h, w) != (H, W):
        x = F.interpolate(x, size=(h, w), mode=mode, align_corners=False, antialias=True)
    top, left = (h - size) // 2, (w - size) // 2
    return x[:, :, top:top + size, left:left + size].clamp(0, 1)


def masked_regions(images: torch.Tensor, masks: torch.Tensor, size: int, *, dim: float = 0.25,
                   margin: float = 0.15, crop: bool = True) -> torch.Tensor:
    """k x 3 x H x W uint8 images and k x 1 x H x W bool masks -> k x 3 x size x size floats in [0, 1]."""
    if images.shape[0] == 0:
        raise ValueError("unit has no exemplar pixels (images not joined?)")
    x = images.float() / 255.0
    m = masks.to(torch.bool)
    shown = torch.where(m, x, x * dim)
    out = []
    H, W = x.shape[-2:]
    for j in range(x.shape[0]):
        img = shown[j]
        if crop and m[j].any():
            ys, xs = torch.nonzero(m[j, 0], as_tuple=True)
            y0, y1, x0, x1 = ys.min().item(), ys.max().item() + 1, xs.min().item(), xs.max().item() + 1
            side = max(y1 - y0, x1 - x0)
            side = min(max(H, W), int(round(side * (1 + 2 * margin))) + 1)
            cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
            top = int(min(max(0, round(cy - side / 2)), max(0, H - side)))
            left = int(min(max(0, round(cx - side / 2)), max(0, W - side)))
            img = img[:, top:top + side, left:left + side]
        out.append(F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=True)[0])
    return torch.stack(out).clamp(0, 1)
