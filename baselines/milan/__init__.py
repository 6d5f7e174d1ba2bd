"""MILAN (Hernandez et al., ICLR 2022) rebuilt on plain torch; importing registers describer `milan`."""
from .backbones import Backbone, load_backbone
from .checkpoint import load_checkpoint, save_checkpoint
from .describer import MilanDescriber
from .encoder import PyramidEncoder, masked_pool
from .model import MilanModel
from .released import load_released

__all__ = ["Backbone", "MilanDescriber", "MilanModel", "PyramidEncoder", "load_backbone", "load_checkpoint",
           "load_released", "masked_pool", "save_checkpoint"]
