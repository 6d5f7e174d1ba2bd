"""One module per `milannotations` subcommand, each with `register(subparsers)`."""


def add_image_source_args(p) -> None:
    """--imagenet / --places365 / --legacy-resize: where `build` and `join` take source pixels from."""
    p.add_argument("--imagenet", help="ImageNet val ImageFolder (<wnid>/<image>) to join pixels from")
    p.add_argument("--places365", help="Places365 val ImageFolder, for zips lacking images.npy")
    p.add_argument("--legacy-resize", action="store_true",
                   help="the original merge's Resize((224,224)) squash (misaligned; for comparison only)")
