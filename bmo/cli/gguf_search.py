"""GGUF model files already on this machine, for ``bmo init`` to offer: the Hugging Face cache and LM Studio's folders.

Only where those tools keep models, a few levels deep, so the search takes milliseconds; a file
counts when it starts with the GGUF magic and is not a vision projector (``mmproj``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_FOUND = 20
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class LocalModel:
    path: Path
    size: int
    repo: str = ""  # found in the Hugging Face cache: its repo id and the file's path in the repo
    file: str = ""

    @property
    def name(self) -> str:
        return Path(self.file or self.path).stem


def hub_cache() -> Path:
    """Where ``huggingface_hub`` keeps downloads, by its own rules (without importing it: it is an extra)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def lmstudio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def _is_model(path: Path) -> bool:
    if "mmproj" in path.name.lower():
        return False
    try:
        with open(path, "rb") as f:  # a snapshot entry is a symlink to its blob: open follows it
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _in_hub(cache: Path) -> list[LocalModel]:
    found = {}
    for snapshot in cache.glob("models--*/snapshots/*"):
        repo = snapshot.parent.parent.name.removeprefix("models--").replace("--", "/")
        for pattern in ("*.gguf", "*/*.gguf"):
            for path in snapshot.glob(pattern):
                file = path.relative_to(snapshot).as_posix()
                if (repo, file) not in found and _is_model(path):
                    found[repo, file] = LocalModel(path, _size(path), repo, file)
    return list(found.values())


def find() -> list[LocalModel]:
    """The GGUF models found, smallest first (a first run loads fastest on the smallest)."""
    models = _in_hub(hub_cache())
    for root in lmstudio_dirs():
        for pattern in ("*.gguf", "*/*.gguf", "*/*/*.gguf"):  # LM Studio: models/<publisher>/<repo>/<file>
            models += [LocalModel(p, _size(p)) for p in root.glob(pattern) if _is_model(p)]
    models.sort(key=lambda m: (m.size, str(m.path)))
    return models[:MAX_FOUND]
