"""Content parts a client sends, as the agent keeps them: images for vision models, a note for the rest.

Which models take images is configuration: ``[providers.NAME] vision_models = ["glob", ...]``
matched against the provider's own model names. An image for any other model becomes a one-line
note, so the turn is still answered and a chat that keeps re-sending the image keeps working.
(Audio and file parts are refused by the request check before they get here.)
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from bmo.agent.messages import ContentPart
from bmo_openai_compat.wire import ContentPart as WirePart

NOTE = "[{what} left out here: the model {model} does not take {kind} input]"


def accepts_images(coordinator, model: str) -> bool:
    """True when ``model`` ("NAME/model") matches its provider's ``vision_models``."""
    try:
        provider, upstream = coordinator.resolve_model(model)
    except Exception:  # noqa: BLE001 - an unknown model is refused elsewhere, with its own message
        return False
    globs = getattr(getattr(provider, "options", None), "vision_models", None) or []
    return any(fnmatchcase(upstream, g) for g in globs)


def agent_content(content: str | list[WirePart] | None, *, images: bool, model: str) -> tuple:
    """(content for the agent, parts left out): a string unless an image is kept."""
    if content is None or isinstance(content, str):
        return content, 0
    parts: list[ContentPart] = []
    left_out = 0
    for part in content:
        if part.type == "text":
            parts.append(ContentPart(type="text", text=part.text or ""))
        elif part.type == "image_url" and images:
            parts.append(ContentPart(type="image_url", image_url=part.image_url))
        else:
            left_out += 1
            parts.append(ContentPart(type="text", text=NOTE.format(what="An image", model=model, kind="image")))
    if all(p.type == "text" for p in parts):
        return "\n".join(p.text or "" for p in parts), left_out
    return parts, left_out
