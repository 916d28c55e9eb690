"""Collections, subjects and faces as listed, renamed and deleted."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    with_config,
)
from typing_extensions import TypedDict


class ThumbnailFace(TypedDict):
    id: str
    subject: str
    bbox: tuple[float, float, float, float]
    prob: float
    faces_in_image: Annotated[int, Field(description="Faces found in the photo it came from")]
    thumbnail_url: Annotated[str, Field(description="The aligned 112x112 crop, JPEG")]


class RecognizerBody(TypedDict):
    key: str
    name: str
    version: str
    license: str
    dimension: int


@with_config(ConfigDict(extra="forbid"))
class CollectionBody(TypedDict):
    collection: str
    recognizer: RecognizerBody
    created: float
    subjects: int
    faces: int


@with_config(ConfigDict(extra="forbid"))
class CollectionsBody(TypedDict):
    collections: list[CollectionBody]


@with_config(ConfigDict(extra="forbid"))
class SubjectBody(TypedDict):
    subject: str
    faces: int
    created: float


@with_config(ConfigDict(extra="forbid"))
class SubjectsBody(TypedDict):
    subjects: list[SubjectBody]
    offset: int
    limit: int
    next: Annotated[str | None, Field(description="The next page's URL; null on the last page")]


@with_config(ConfigDict(extra="forbid"))
class SubjectFacesBody(TypedDict):
    collection: str
    subject: str
    faces: list[ThumbnailFace]


@with_config(ConfigDict(extra="forbid"))
class DeletedBody(TypedDict):
    deleted: Annotated[int, Field(description="Faces (or collections) removed")]


class RenameRequest(BaseModel):
    """PATCH /collections/{c}/subjects/{s}: the subject's new name."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(description="The new name (the rule of every subject name)")


@with_config(ConfigDict(extra="forbid"))
class RenamedBody(TypedDict):
    subject: Annotated[str, Field(description="The new name")]
    faces: Annotated[int, Field(description="Faces that carry it now")]
