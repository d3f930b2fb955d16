"""The diplomatic event coder: articles in, one aggregated event per real-world event out."""

CODER_VERSION = "0.1.0"
