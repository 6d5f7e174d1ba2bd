"""Exemplars: the top-activating images of every unit of any vision model, with masks.

    stats = compute_exemplars(model, ["layer1", "layer4"], dataset)      # one streaming pass
    write_exemplar_config(out, ConfigMeta("mynet-probe", "mynet", "probe"), model,
                          ["layer1", "layer4"], dataset, stats)          # masks + corpus config

    path = run_exemplars("torchvision:resnet18", "none", images, "layer4", "mine", out,
                         record_activations=True)                # what the CLI does
    probe = load_probe(path)                                     # activations on every probe image

See docs/exemplars.md for the CLI, the threshold estimator's accuracy and scale-out.
"""
from .compute import ExemplarStats, LayerStats, compute_exemplars
from .hooks import LayerRecorder, to_spatial
from .images import ImageFolderDataset, default_transform
from .masks import masks_from_maps, upsample
from .probe import ProbeActivations, load_probe, merge_probe_shards
from .quantile import QuantileSketch
from .record import record_probe_shards
from .topk import TopK
from .run import run_exemplars
from .write import exemplar_maps, write_exemplar_config

__all__ = [
    "ExemplarStats", "ImageFolderDataset", "LayerRecorder", "LayerStats", "ProbeActivations", "QuantileSketch",
    "TopK", "compute_exemplars", "default_transform", "exemplar_maps", "load_probe", "masks_from_maps",
    "merge_probe_shards", "record_probe_shards", "run_exemplars", "to_spatial", "upsample",
    "write_exemplar_config",
]
