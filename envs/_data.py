"""Data the built-in envs derive from installed packages, built once and cached as JSON.

`make data` builds every file at install time; an env that finds its file missing (a wheel
install, a fresh checkout) builds it on first use. Nothing is downloaded: the sources are Python
packages already installed. Each file records the source it was built from and is rebuilt when
that changes.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def _cache_dirs() -> list[Path]:
    user = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentgym"
    return [PACKAGE_DATA, user]


def cached_json(name: str, source: str, build: Callable[[], Any]) -> Any:
    """Return the data in `name`, building it with `build()` when absent or built from another
    `source` (a string naming the source packages and their versions)."""
    for directory in _cache_dirs():
        path = directory / name
        try:
            with path.open() as f:
                doc = json.load(f)
            if doc.get("source") == source:
                return doc["data"]
        except (OSError, ValueError, KeyError, AttributeError):
            continue
    data = build()
    doc = {"source": source, "data": data}
    for directory in _cache_dirs():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Write to a temporary file and rename, so a concurrent reader never sees half a file.
            with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
                json.dump(doc, f, separators=(",", ":"))
            os.chmod(f.name, 0o644)
            os.replace(f.name, directory / name)
            log.info("built env data", extra={"file": str(directory / name)})
            break
        except OSError:
            continue
    return data
