"""One spelling per JSON value, for hashes of configs and manifests."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    """One spelling per value, so equal configs get equal hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
