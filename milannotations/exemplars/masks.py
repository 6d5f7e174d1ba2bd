"""Exemplar masks: a unit's activation map upsampled to the image and thresholded."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(n, h, w) or (n, 1, h, w) activation maps -> (n, 1, H, W), bilinear, align_corners=False.

    These are the sample points of the original netdissect upsampler (half-pixel
    centres); beyond the outermost feature centres `interpolate` clamps to the
    edge value where netdissect blended towards zero.
    """
    if maps.ndim == 3:
        maps = maps[:, None]
    return F.interpolate(maps.float(), size=tuple(size), mode="bilinear", align_corners=False)


def masks_from_maps(maps: torch.Tensor, threshold: float | torch.Tensor,
                    size: tuple[int, int]) -> torch.Tensor:
    """Bool (n, 1, H, W): where the upsampled map exceeds the unit's threshold."""
    return upsample(maps, size).double() > torch.as_tensor(threshold, dtype=torch.float64)
