"""The sandbox's ``GET /v1/models``: the models its key may use, as new-api lists them.

new-api (router/relay-router.go: the ``/v1/models`` group behind ``middleware.TokenAuth()``) answers an
accepted token with ``controller/model.go`` ``ListModels``: 200 ``{"success": true, "data": [...],
"object": "list"}``, each entry a ``dto.OpenAIModels`` (dto/pricing.go): ``id``, ``object`` "model",
``created``, ``owned_by`` and ``supported_endpoint_types``. A model of an ordinary channel lists
``["openai"]`` whatever it does (common/endpoint_type.go), so a client cannot tell a video model by its
endpoint types alone. A refused token gets the auth middleware's 401, as every other route does
(``wanvid.sandbox.handler``).

The list: the video models wanvid knows, plus a chat and an embedding model, so a client's filter has
something to leave out. A test may replace it: ``sandbox.models = [...]`` (ids), read at every request.
"""

from __future__ import annotations

from typing import Any

from wanvid.rules.models import MODELS

# controller/model.go buildOpenAIModel: a model new-api has no static entry for is created 1626777600
CREATED = 1626777600
OTHER_MODELS = ("qwen-plus", "text-embedding-v3")
LISTED = (*MODELS, *OTHER_MODELS)


def entry(model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": CREATED,
        "owned_by": "custom",
        "supported_endpoint_types": ["openai"],
    }


def answer(ids: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """ListModels' answer for the OpenAI-style request (neither Anthropic's nor Gemini's headers)."""
    return {"success": True, "data": [entry(i) for i in ids], "object": "list"}
