"""The pipeline's stages, each a package joined to the others only by Kafka topics, and the
plumbing they share (``services.common``)."""

# The stages in data order; `wirewatch run` starts those that exist.
SERVICE_NAMES = ("poller", "extractor", "dedup", "coder")
