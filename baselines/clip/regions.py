"""Turn a unit's exemplars into the image regions a CLIP model looks at.

Annotators saw each exemplar with the active region at full brightness and
the rest dimmed to 25%; we show CLIP the same, cropped to the (squared,
padded) bounding box of the mask so the region fills the model's view.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
