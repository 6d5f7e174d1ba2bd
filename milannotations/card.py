"""The dataset card (README.md) of a built corpus folder, generated from FEATURES and meta/.

The YAML header tells `datasets.load_dataset(<folder>, <config>)` and the
Hub where each config's splits live; the body documents the record,
provenance and licences, and says plainly which configs are synthetic.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from .fsutil import atomic_write_text
from .schema import FEATURES, FIELD_DOCS

CITATION = """@inproceedings{hernandez2022natural,
  title     = {Natural Language Descriptions of Deep Visual Features},
  author    = {Hernandez, Evan and Schwettmann, Sarah and Bau, David and Bagashvili, Teona and Torralba, Antonio and Andreas, Jacob},
  booktitle = {International Conference on Learning Representations},
  year      = {2022},
  url       = {https://arxiv.org/abs/2201.11114}
}"""


def read_metas(root: Path) -> list[dict]:
    """The meta/<config>.json records of a built folder, sorted by config."""
    return [json.loads(p.read_text()) for p in sorted(Path(root, "meta").glob("*.json"))]


def render_card(metas: list[dict]) -> str:
    features = FEATURES._to_yaml_list()
    header = {
        "pretty_name": "MILANNOTATIONS",
        "license": "other",
        "task_categories": ["image-to-text"],
        "language": ["en"],
        "tags": ["interpretability", "neuron-descriptions", "milan"],
        "configs": [
            {
                "config_name": m["config"],
                "data_files": [{"split": s, "path": f"data/{m['config']}/{s}-*.parquet"} for s in ("train", "test")],
            }
            for m in metas
        ],
        "dataset_info": [{"config_name": m["config"], "features": features} for m in metas],
    }
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "",
             "# MILANNOTATIONS", "",
             "Top-activating image regions (exemplars) of vision-model neurons with natural-language "
             "descriptions, after Hernandez et al., *Natural Language Descriptions of Deep Visual "
             "Features* (ICLR 2022). Built by the `milannotations` package; every number of the "
             "benchmark can be recomputed from these files.", "",
             "## Configs", "", "| config | model | dataset | kind | train | test | images shipped |",
             "|---|---|---|---|---|---|---|"]
    for m in metas:
        kind = "**synthetic (generated descriptions)**" if m.get("synthetic") else (
            "unannotated exemplars" if m.get("provenance", {}).get("unannotated") else "human descriptions")
        shipped = m.get("provenance", {}).get("images", "yes")
        c = m.get("counts", {})
        lines.append(f"| `{m['config']}` | {m['model']} | {m['dataset']} | {kind} | {c.get('train', 0)} | "
                     f"{c.get('test', 0)} | {shipped} |")
    lines += ["", "## The unit record", "", "| field | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {FIELD_DOCS[k]} |" for k in FEATURES]
    lines += ["", "## Splits", "",
              "Each config has `train` and `test`: the within-network 90/10 split, ranked by a keyed "
              "SHA-256 of the unit id (seed 0), so it is independent of row order. The unit ids of each "
              "split are published in `splits/<config>.json`. The paper's own split was unseeded and "
              "never released, so paper numbers were computed on other test units.", ""]
    synth = [m for m in metas if m.get("synthetic")]
    if synth:
        lines += ["## Synthetic configs", "",
                  "Configs named `synth-*` are **not human data**. Their scenes are drawn procedurally, "
                  "their neurons have known selectivity (stored in `truth`), and their three descriptions "
                  "per unit are *generated* from that truth with paraphrase variety and simulated annotator "
                  "disagreement. Scores on them measure recovery of known structure, never agreement with people.", ""]
        for m in synth:
            if m.get("description"):
                lines += [f"- `{m['config']}`: {m['description']}"]
        lines.append("")
    lines += ["## Images, licences and re-joining", "",
              "ImageNet pixels are never shipped (the ImageNet licence forbids redistribution): for "
              "`*-imagenet` configs of classifiers and DINO, `images` is empty until you run "
              "`milannotations join --imagenet DIR`, which rebuilds each exemplar from `image_ids` "
              "(index into the sorted validation ImageFolder) with Resize(256) + CenterCrop(224), the "
              "transform the exemplars were computed with, so images line up with their masks. "
              "Places365 and BigGAN images ship as in the original release. The descriptions were "
              "collected by the MILAN authors on Mechanical Turk; see the original release for terms.", "",
              "## Provenance", "", "| config | source | sha256 | builder |", "|---|---|---|---|"]
    for m in metas:
        p = m.get("provenance", {})
        lines.append(f"| `{m['config']}` | {p.get('source', '')} | `{p.get('sha256', '')}` | "
                     f"milannotations {m.get('builder_version', '')} |")
    for m in metas:
        if m.get("provenance", {}).get("errata"):
            lines += ["", f"**Errata, `{m['config']}`:** {m['provenance']['errata']}"]
    lines += ["", "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def write_card(root: Path) -> Path:
    """Regenerate README.md of a built folder from its meta/ records."""
    path = Path(root) / "README.md"
    atomic_write_text(path, render_card(read_metas(root)))
    return path
