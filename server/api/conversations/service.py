"""The Conversations API over the store: what a route asks for, found or refused in OpenAI's words (a missing
conversation and another user's read the same), with the paging the store leaves to its callers."""

from dataclasses import dataclass
from typing import Literal

from server.api.conversations.protocol import ConversationCreate, ItemsCreate
from server.api.protocol import Page, input_items
from server.core.failures import Invalid, NotFound
from server.core.history.items import Item
from server.core.history.objects import Conversation
from server.core.history.store import HistoryStore, StoredConversation
from server.core.ids import CONVERSATION, new_id

Order = Literal["asc", "desc"]


def not_found(conversation_id: str) -> NotFound:
    return NotFound(f"Conversation with id '{conversation_id}' not found.", param="conversation_id",
                    code="conversation_not_found")


def item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item with id '{item_id}' not found.", param="item_id", code="item_not_found")


@dataclass
class ConversationsService:
    store: HistoryStore
    user: str

    async def create(self, body: ConversationCreate) -> Conversation:
        return await self.store.create_conversation(self.user, new_id(CONVERSATION), body.metadata or {},
                                                    input_items(body.items))

    async def get(self, conversation_id: str) -> Conversation:
        conversation = await self.store.get_conversation(self.user, conversation_id)
        if conversation is None:
            raise not_found(conversation_id)
        return conversation

    async def update(self, conversation_id: str, metadata: dict[str, str]) -> Conversation:
        conversation = await self.store.update_metadata(self.user, conversation_id, metadata)
        if conversation is None:
            raise not_found(conversation_id)
        return conversation

    async def delete(self, conversation_id: str) -> None:
        if not await self.store.delete_conversation(self.user, conversation_id):
            raise not_found(conversation_id)

    async def _load(self, conversation_id: str) -> StoredConversation:
        found = await self.store.load(self.user, conversation_id)
        if found is None:
            raise not_found(conversation_id)
        return found

    async def items(self, conversation_id: str, limit: int, after: str | None, order: Order) -> Page[Item]:
        """A page of the items, oldest or newest first, after the item `after` (400 if it is not there)."""
        found = await self._load(conversation_id)
        items = found.items if order == "asc" else found.items[::-1]
        start = 0
        if after is not None:
            position = next((i for i, item in enumerate(items) if item.id == after), None)
            if position is None:
                raise Invalid(f"No item '{after}' in conversation '{conversation_id}'.", param="after")
            start = position + 1
        return Page.of(items[start:start + limit], start + limit < len(items))

    async def add_items(self, conversation_id: str, body: ItemsCreate) -> Page[Item]:
        items = input_items(body.items)
        if not await self.store.append(self.user, conversation_id, items):
            raise not_found(conversation_id)
        return Page.of(items, False)

    async def item(self, conversation_id: str, item_id: str) -> Item:
        found = await self._load(conversation_id)
        item = next((item for item in found.items if item.id == item_id), None)
        if item is None:
            raise item_not_found(item_id)
        return item

    async def delete_item(self, conversation_id: str, item_id: str) -> Conversation:
        conversation = await self.store.delete_item(self.user, conversation_id, item_id)
        if conversation is None:
            await self.get(conversation_id)  # a missing conversation is said as such
            raise item_not_found(item_id)
        return conversation
