"""CLIP models, concept sets and masked-region views shared by the CLIP-based describers."""
from .concepts import concept_set
from .models import ClipModel, OpenClip, load_clip
from .regions import masked_regions

__all__ = ["ClipModel", "OpenClip", "concept_set", "load_clip", "masked_regions"]
