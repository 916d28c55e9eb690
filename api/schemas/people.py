"""People discovery: ingest photos, list clusters, and the person's decisions (docs/people.md)."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from api.schemas.common import ErrorBody, ModelV2, TookV2
from api.schemas.recognition import NameText, RecognitionRequest

PHOTO_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,255}$"
PhotoId = Annotated[str, Field(pattern=PHOTO_ID)]


class IngestRequest(RecognitionRequest):
    """POST /collections/{c}/photos: images as /extract's; every face is stored and clustered."""

    photo_ids: list[PhotoId] = Field(
        default_factory=list,
        description="One id per image, in order (images.data, then images.urls); empty: the service "
        "makes each from the image's SHA-256. A photo id or image bytes ingested before is answered as "
        'stored ("new": false).',
    )


@with_config(ConfigDict(extra="forbid"))
class IngestedFaceBody(TypedDict):
    face_id: str
    bbox: Annotated[
        tuple[float, float, float, float],
        Field(description="Original-image px; zeros for a photo stored before"),
    ]
    quality: Annotated[float, Field(description="docs/recognition.md#face-quality")]
    subject: Annotated[
        str | None,
        Field(
            description="The gallery subject of the face's cluster: one it matched at the recognizer's "
            "open-set threshold, or the name a person gave the cluster"
        ),
    ]
    cluster: Annotated[int | None, Field(description="null: in no cluster yet")]


@with_config(ConfigDict(extra="forbid"))
class IngestedPhotoBody(TypedDict):
    photo_id: str
    status: Literal["ok", "error"]
    new: NotRequired[bool]
    faces: NotRequired[list[IngestedFaceBody]]
    error: NotRequired[ErrorBody]


@with_config(ConfigDict(extra="forbid"))
class IngestBody(TypedDict):
    collection: str
    photos: list[IngestedPhotoBody]
    took: TookV2
    recognizer: ModelV2


@with_config(ConfigDict(extra="forbid"))
class ClusterFaceBody(TypedDict):
    face_id: str
    photo_id: str
    bbox: tuple[float, float, float, float]
    quality: float
    thumbnail_url: str


@with_config(ConfigDict(extra="forbid"))
class ClusterBody(TypedDict):
    id: int
    size: int
    subject: Annotated[str | None, Field(description="The name a person gave it")]
    ignored: Annotated[bool, Field(description="Marked as not a person")]
    cover: Annotated[ClusterFaceBody, Field(description="Its best-quality face")]
    faces: Annotated[list[ClusterFaceBody], Field(description="Best quality first")]


@with_config(ConfigDict(extra="forbid"))
class ClustersBody(TypedDict):
    collection: str
    clusters: Annotated[list[ClusterBody], Field(description="Largest first")]
    unclustered: Annotated[int, Field(description="Faces in no cluster")]
    pending: Annotated[
        int, Field(description="Faces stored but not clustered: 0, a face is clustered as it is stored")
    ]


class NameClusterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: NameText


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clusters: list[Annotated[int, Field(ge=1, le=2**53)]] = Field(
        min_length=1, max_length=1000, description="Merged into the cluster of the path"
    )


class MoveFaceRequest(BaseModel):
    """Where a face goes: a cluster, a subject (a named cluster, made if none has the name), or
    with neither, out of any cluster (it is never pulled back into the one it left)."""

    model_config = ConfigDict(extra="forbid")
    cluster: Annotated[int, Field(ge=1, le=2**53)] | None = None
    subject: NameText | None = None


class IgnoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ignored: bool = True


@with_config(ConfigDict(extra="forbid"))
class ReclusterBody(TypedDict):
    collection: str
    clusters: Annotated[int, Field(description="Clusters after it")]
    faces: int
    took: TookV2


class ApartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster: Annotated[int, Field(ge=1, le=2**53, description="Never merged with the cluster of the path")]


@with_config(ConfigDict(extra="forbid"))
class DecisionBody(TypedDict):
    collection: str
    cluster: Annotated[int | None, Field(description="The cluster the decision left the face or faces in")]
