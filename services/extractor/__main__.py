"""``python -m services.extractor``: the extractor service, configured from the environment."""

from __future__ import annotations

import sys

from services.extractor.cli import run_service

if __name__ == "__main__":
    sys.exit(run_service(None))
