"""Where the GGUF file is: ``model_path``, or ``repo`` + ``file`` in the Hugging Face cache (fetched once)."""

from __future__ import annotations

import os
from pathlib import Path

from bmo.agent.config import ProviderOptions


def resolve(name: str, options: ProviderOptions) -> Path:
    """The model file's path; ``ValueError`` says what is missing or wrong. Blocking: call it in a thread."""
    if options.model_path:
        path = Path(options.model_path).expanduser()
        if not path.is_file():
            raise ValueError(f"[providers.{name}] model_path = {options.model_path!r} is not a file")
        return path
    if not (options.repo and options.file):
        raise ValueError(f'[providers.{name}] kind = "llamacpp" needs model_path = "/path/to/model.gguf", '
                         'or repo = "OWNER/NAME" and file = "model.gguf" (a Hugging Face repository)')
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise ValueError(f"[providers.{name}] repo/file need huggingface_hub: pip install 'bmo[local]'") from None
    try:  # the cache first: a model fetched once starts without the network
        return Path(hf_hub_download(options.repo, options.file, local_files_only=True))
    except LocalEntryNotFoundError:
        if os.environ.get("HF_HUB_OFFLINE"):
            raise ValueError(f"[providers.{name}] {options.repo}/{options.file} is not in the Hugging Face cache "
                             "and HF_HUB_OFFLINE is set") from None
    try:
        return Path(hf_hub_download(options.repo, options.file))
    except Exception as exc:  # noqa: BLE001 - any fetch failure is the same advice
        raise ValueError(f"[providers.{name}] cannot fetch {options.file} from {options.repo}: {exc}; "
                         "download it and set model_path instead") from None
