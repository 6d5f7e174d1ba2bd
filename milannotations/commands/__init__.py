"""One module per `milannotations` subcommand, each with `register(subparsers)`."""
