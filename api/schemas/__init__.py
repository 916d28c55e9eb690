"""The HTTP wire types, one module per resource: request models (pydantic, validating) and the
response bodies the routes build (TypedDicts). api/openapi.py generates the OpenAPI document from
these same types, so the document cannot drift from what is validated and sent.

Every name is re-exported here: ``from api.schemas import X`` is how the rest of the code (and
the client's drift test) imports them.
"""

from __future__ import annotations

from api.schemas.collections import (
    CollectionBody,
    CollectionsBody,
    DeletedBody,
    RecognizerBody,
    RenamedBody,
    RenameRequest,
    SubjectBody,
    SubjectFacesBody,
    SubjectsBody,
    ThumbnailFace,
)
from api.schemas.common import (
    ErrorBody,
    ErrorDetail,
    JobStatusName,
    ModelV2,
    Point,
    QualityBody,
    TookV2,
    Vector,
)
from api.schemas.draw import (
    DrawRequest,
)
from api.schemas.extract import (
    ExtractRequest,
    ExtractV1,
    ExtractV2,
    FaceV1,
    FaceV2,
    ImageV2,
)
from api.schemas.images import (
    FORBIDDEN_FETCH_HEADERS,
    HEADER_NAME,
    MAX_FETCH_HEADER_BYTES,
    MAX_FETCH_HEADERS,
    CollectionJobRequest,
    DetectionRequest,
    ImageData,
    Images,
    ImagesBody,
    QueuedBody,
    check_max_size,
    max_size_pair,
)
from api.schemas.jobs import (
    CallbackBody,
    JobAccepted,
    JobStateBody,
)
from api.schemas.recognition import (
    CompactBody,
    EnrollBody,
    EnrolledFaceBody,
    EnrollRequest,
    NameText,
    RecognitionBody,
    RecognitionRequest,
    RecognizeBody,
    RecognizedFaceBody,
    RecognizedImageBody,
    RecognizeRequest,
    ReindexBody,
    SimilarityThreshold,
    SubjectMatchBody,
    VerifyBody,
    VerifyRequest,
)
from api.schemas.status import (
    HealthBody,
    InfoBody,
    InfoModels,
    ReadyBody,
)

__all__ = [
    "FORBIDDEN_FETCH_HEADERS",
    "HEADER_NAME",
    "MAX_FETCH_HEADERS",
    "MAX_FETCH_HEADER_BYTES",
    "CallbackBody",
    "CollectionBody",
    "CollectionJobRequest",
    "CollectionsBody",
    "CompactBody",
    "DeletedBody",
    "DetectionRequest",
    "DrawRequest",
    "EnrollBody",
    "EnrollRequest",
    "EnrolledFaceBody",
    "ErrorBody",
    "ErrorDetail",
    "ExtractRequest",
    "ExtractV1",
    "ExtractV2",
    "FaceV1",
    "FaceV2",
    "HealthBody",
    "ImageData",
    "ImageV2",
    "Images",
    "ImagesBody",
    "InfoBody",
    "InfoModels",
    "JobAccepted",
    "JobStateBody",
    "JobStatusName",
    "ModelV2",
    "NameText",
    "Point",
    "QualityBody",
    "QueuedBody",
    "ReadyBody",
    "RecognitionBody",
    "RecognitionRequest",
    "RecognizeBody",
    "RecognizeRequest",
    "RecognizedFaceBody",
    "RecognizedImageBody",
    "RecognizerBody",
    "ReindexBody",
    "RenameRequest",
    "RenamedBody",
    "SimilarityThreshold",
    "SubjectBody",
    "SubjectFacesBody",
    "SubjectMatchBody",
    "SubjectsBody",
    "ThumbnailFace",
    "TookV2",
    "Vector",
    "VerifyBody",
    "VerifyRequest",
    "check_max_size",
    "max_size_pair",
]
