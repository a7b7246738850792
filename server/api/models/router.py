"""GET /v1/models: the served model(s) with their context window and decoding defaults, then each LoRA adapter
with its parent (the base model it applies to)."""

from fastapi import APIRouter

from server.api.deps import EngineDep
from server.api.models.protocol import ModelCard, ModelList

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    card = {"max_model_len": engine.max_model_len, "default_sampling": engine.default_sampling}
    return ModelList(data=[
        *(ModelCard(id=name, **card) for name in engine.model_names),
        *(ModelCard(id=name, parent=adapter.base_model_name or engine.model_name, root=adapter.lora_path, **card)
          for name, adapter in engine.adapters.items()),
    ])
