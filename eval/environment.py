"""What produced the numbers: interpreter, library versions, code revision, device, CPU and math libraries."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch


def _version(dist_name: str) -> str | None:
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return None


def _git_hash() -> str | None:
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str, world: int = 1) -> dict:
    """What produced the numbers: interpreter, library versions, code revision, device."""
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "bert_score": _version("bert-score"),
        "sacrebleu": _version("sacrebleu"),
        "datasets": _version("datasets"),
        "milannotations": _version("milannotations"),
        "git": _git_hash(),
        "device": dev,
        "world_size": world,
        # What float results depend on beyond the code: the CPU's vector ISA (kernels differ by it),
        # the thread counts and the math libraries' versions.
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "mkl": _torch_lib("mkl") if torch.backends.mkl.is_available() else "",
        "onednn": _torch_lib("onednn"),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_lib(name: str) -> str:
    """The version line torch reports for one of its math libraries ("" if absent)."""
    info = torch.__config__.show()
    key = {"mkl": "Math Kernel Library Version", "onednn": "MKL-DNN v"}[name]
    line = next((x for x in info.splitlines() if key in x), "")
    return line.strip().lstrip("- ")
