"""OpenAI's Conversations API (text messages), plus GET /v1/conversations: the caller's conversations,
most recently active first (an extension: OpenAI has no list route; chat UIs need one)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from server.api.conversations.protocol import ConversationCreate, ConversationUpdate, ItemsCreate
from server.api.conversations.service import ConversationsService, Order
from server.api.deps import StoreDep, UserDep
from server.api.protocol import Deleted, ErrorResponse, Page
from server.core.history.items import Item
from server.core.history.objects import Conversation

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], responses={404: {"model": ErrorResponse}})

Limit = Annotated[int, Query(ge=1, le=100)]
OrderQuery = Annotated[Order, Query()]


def conversations(user: UserDep, store: StoreDep) -> ConversationsService:
    return ConversationsService(store, user)


Service = Annotated[ConversationsService, Depends(conversations)]


@router.post("")
async def create_conversation(body: ConversationCreate, service: Service) -> Conversation:
    return await service.create(body)


@router.get("")
async def list_conversations(
    user: UserDep, store: StoreDep, limit: Limit = 20, after: str | None = None, order: OrderQuery = "desc"
) -> Page[Conversation]:
    data, has_more = await store.list_conversations(user, limit, after, newest_first=order == "desc")
    return Page.of(data, has_more)


@router.get("/{conversation_id}")
async def get_conversation(conversation_id: str, service: Service) -> Conversation:
    return await service.get(conversation_id)


@router.post("/{conversation_id}")
async def update_conversation(conversation_id: str, body: ConversationUpdate, service: Service) -> Conversation:
    return await service.update(conversation_id, body.metadata)


@router.delete("/{conversation_id}")
async def delete_conversation(conversation_id: str, service: Service) -> Deleted:
    await service.delete(conversation_id)
    return Deleted(id=conversation_id, object="conversation.deleted")


@router.get("/{conversation_id}/items")
async def list_items(
    conversation_id: str, service: Service, limit: Limit = 20, after: str | None = None, order: OrderQuery = "desc",
) -> Page[Item]:
    return await service.items(conversation_id, limit, after, order)


@router.post("/{conversation_id}/items")
async def add_items(conversation_id: str, body: ItemsCreate, service: Service) -> Page[Item]:
    return await service.add_items(conversation_id, body)


@router.get("/{conversation_id}/items/{item_id}")
async def get_item(conversation_id: str, item_id: str, service: Service) -> Item:
    return await service.item(conversation_id, item_id)


@router.delete("/{conversation_id}/items/{item_id}")
async def delete_item(conversation_id: str, item_id: str, service: Service) -> Conversation:
    return await service.delete_item(conversation_id, item_id)
