"""GET /v1/models: the served model(s) with their context window and decoding defaults."""

from fastapi import APIRouter

from server.deps import EngineDep
from server.protocol import ModelCard, ModelList

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    return ModelList(
        data=[
            ModelCard(id=name, max_model_len=engine.max_model_len, default_sampling=engine.default_sampling)
            for name in engine.model_names
        ]
    )
