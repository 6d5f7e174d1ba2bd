"""One module per `milannotations` subcommand, each with `register(subparsers)`."""


def add_image_source_args(p) -> None:
    """--imagenet / --places365 / --legacy-resize: where `build` and `join` take source pixels from."""
    p.add_argument("--imagenet", help="ImageNet val ImageFolder (<wnid>/<image>) to join pixels from")
    p.add_argument("--places365", help="Places365 val ImageFolder, for zips lacking images.npy")
    p.add_argument("--legacy-resize", action="store_true",
                   help="the original merge's Resize((224,224)) squash (misaligned; for comparison only)")


def quiet_libraries() -> None:
    """`--no-progress`: also silence the bars `datasets` and `huggingface_hub` draw themselves (and, through
    the hub's switch, `transformers`'), in this process and in any it starts. Every console script of the
    suite calls this for `--no-progress`."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    import datasets
    import huggingface_hub.utils

    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    import sys

    if "transformers" in sys.modules:  # imported later, it reads the hub's switch itself
        sys.modules["transformers"].utils.logging.disable_progress_bar()
