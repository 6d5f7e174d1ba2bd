"""CLIP models, concept sets, image views and CLIP-Dissect's scoring rule, shared by the CLIP-based describers."""
from .concepts import concept_set
from .models import ClipModel, OpenClip, load_clip
from .regions import full_images, masked_regions

__all__ = ["ClipModel", "OpenClip", "concept_set", "full_images", "load_clip", "masked_regions"]
