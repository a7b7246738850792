"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's routes and request shapes): an admin adds or
removes a LoRA adapter while the server runs, through vLLM's own registry; it is then a `model` requests can name."""


from fastapi import APIRouter
from vllm.entrypoints.serve.engine.protocol import ErrorResponse as VllmErrorResponse
from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest

from server.api.adapters.protocol import AdapterChange
from server.api.deps import AdminDep, EngineDep
from server.api.errors import APIError
from server.api.protocol import ErrorResponse

router = APIRouter(tags=["adapters"], responses={400: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                                                 404: {"model": ErrorResponse}})


def checked(result: VllmErrorResponse | str) -> str:
    """vLLM's answer, or its error as this server's (same status, message and param)."""
    if isinstance(result, VllmErrorResponse):
        raise APIError(result.error.code, result.error.message, param=result.error.param or "lora_name")
    return result


@router.post("/v1/load_lora_adapter")
async def load_lora_adapter(body: LoadLoRAAdapterRequest, _: AdminDep, engine: EngineDep) -> AdapterChange:
    message = checked(await engine.models.load_lora_adapter(body))
    return AdapterChange(name=body.lora_name, status="loaded", message=message)


@router.post("/v1/unload_lora_adapter")
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, _: AdminDep, engine: EngineDep) -> AdapterChange:
    message = checked(await engine.models.unload_lora_adapter(body))
    return AdapterChange(name=body.lora_name, status="unloaded", message=message)
