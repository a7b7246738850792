"""The request objects of the Conversations API (its answers are the stored objects: server/core/history/)."""

from typing import Annotated

from pydantic import BaseModel, Field

from server.api.protocol import InputItem, Metadata


class ConversationCreate(BaseModel):
    items: list[InputItem] = Field(default_factory=list)
    metadata: Metadata | None = None


class ItemsCreate(BaseModel):
    items: Annotated[list[InputItem], Field(min_length=1)]


class ConversationUpdate(BaseModel):
    metadata: Metadata
