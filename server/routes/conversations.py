"""OpenAI's Conversations API (text messages), plus GET /v1/conversations: the caller's conversations,
most recently active first (an extension: OpenAI has no list route; chat UIs need one)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from server.auth import UserDep
from server.deps import StoreDep
from server.errors import APIError
from server.history.ids import CONVERSATION
from server.history.items import ConversationCreate, ConversationUpdate, Item, ItemsCreate, input_items
from server.history.objects import Conversation, Deleted, Page
from server.protocol import ErrorResponse, new_id

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], responses={404: {"model": ErrorResponse}})

Limit = Annotated[int, Query(ge=1, le=100)]
Order = Annotated[Literal["asc", "desc"], Query()]


def not_found(conversation_id: str) -> APIError:
    return APIError(
        404, f"Conversation with id '{conversation_id}' not found.", param="conversation_id",
        code="conversation_not_found",
    )


def item_not_found(item_id: str) -> APIError:
    return APIError(404, f"Item with id '{item_id}' not found.", param="item_id", code="item_not_found")


@router.post("")
async def create_conversation(body: ConversationCreate, user: UserDep, store: StoreDep) -> Conversation:
    items = input_items(body.items)
    return await store.create_conversation(user, new_id(CONVERSATION), body.metadata or {}, items)


@router.get("")
async def list_conversations(
    user: UserDep, store: StoreDep, limit: Limit = 20, after: str | None = None, order: Order = "desc"
) -> Page[Conversation]:
    data, has_more = await store.list_conversations(user, limit, after, newest_first=order == "desc")
    return Page.of(data, has_more)


@router.get("/{conversation_id}")
async def get_conversation(conversation_id: str, user: UserDep, store: StoreDep) -> Conversation:
    conversation = await store.get_conversation(user, conversation_id)
    if conversation is None:
        raise not_found(conversation_id)
    return conversation


@router.post("/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, user: UserDep, store: StoreDep
) -> Conversation:
    conversation = await store.update_metadata(user, conversation_id, body.metadata)
    if conversation is None:
        raise not_found(conversation_id)
    return conversation


@router.delete("/{conversation_id}")
async def delete_conversation(conversation_id: str, user: UserDep, store: StoreDep) -> Deleted:
    if not await store.delete_conversation(user, conversation_id):
        raise not_found(conversation_id)
    return Deleted(id=conversation_id, object="conversation.deleted")


@router.get("/{conversation_id}/items")
async def list_items(
    conversation_id: str, user: UserDep, store: StoreDep, limit: Limit = 20, after: str | None = None,
    order: Order = "desc",
) -> Page[Item]:
    found = await store.load(user, conversation_id)
    if found is None:
        raise not_found(conversation_id)
    items = found.items if order == "asc" else found.items[::-1]
    start = 0
    if after is not None:
        position = next((i for i, item in enumerate(items) if item.id == after), None)
        if position is None:
            raise APIError(400, f"No item '{after}' in conversation '{conversation_id}'.", param="after")
        start = position + 1
    return Page.of(items[start:start + limit], start + limit < len(items))


@router.post("/{conversation_id}/items")
async def add_items(conversation_id: str, body: ItemsCreate, user: UserDep, store: StoreDep) -> Page[Item]:
    items = input_items(body.items)
    if not await store.append(user, conversation_id, items):
        raise not_found(conversation_id)
    return Page.of(items, False)


@router.get("/{conversation_id}/items/{item_id}")
async def get_item(conversation_id: str, item_id: str, user: UserDep, store: StoreDep) -> Item:
    found = await store.load(user, conversation_id)
    if found is None:
        raise not_found(conversation_id)
    item = next((item for item in found.items if item.id == item_id), None)
    if item is None:
        raise item_not_found(item_id)
    return item


@router.delete("/{conversation_id}/items/{item_id}")
async def delete_item(conversation_id: str, item_id: str, user: UserDep, store: StoreDep) -> Conversation:
    conversation = await store.delete_item(user, conversation_id, item_id)
    if conversation is None:
        if await store.get_conversation(user, conversation_id) is None:
            raise not_found(conversation_id)
        raise item_not_found(item_id)
    return conversation
