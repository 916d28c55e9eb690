"""Domain errors. Each carries a stable machine-readable code; the API edge maps them to HTTP.

``ERRORS`` is the one code -> class table: an error stored by a worker (an ``ErrorInfo``) is
raised again in the API as the same class with ``from_info``, extra fields included.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.contract import ErrorInfo


class FaceRestError(Exception):
    """Base of every error a client can be told about."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message)


class InvalidRequest(FaceRestError):
    code = "invalid_request"


class InvalidImage(FaceRestError):
    """The bytes are not a decodable image (not base64, not an image format, corrupt)."""

    code = "invalid_image"


class LimitExceeded(FaceRestError):
    """A configured size limit was exceeded; the message names the limit."""

    code = "limit_exceeded"


class InvalidField(FaceRestError):
    """A field holds a value the schema allows but a configured limit does not."""

    code = "validation_error"


class InvalidVideo(FaceRestError):
    """The bytes are not a video FFmpeg decodes (not a video, corrupt, truncated, no video stream)."""

    code = "invalid_video"


class UrlRefused(FaceRestError):
    """An image URL is not allowed: its scheme, or an address it resolves or redirects to."""

    code = "url_refused"


class UrlFetchFailed(FaceRestError):
    """An allowed image URL could not be fetched (network error, HTTP status, timeout)."""

    code = "url_fetch_failed"


class Overloaded(FaceRestError):
    """Too much work is queued; the client should come back after ``retry_after_s``."""

    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooManyJobs(Overloaded):
    """The request's owner (its API key, or client address) has its share of jobs in flight."""

    code = "too_many_jobs"


class MissingApiKey(FaceRestError):
    code = "missing_api_key"


class InvalidApiKey(FaceRestError):
    code = "invalid_api_key"


class IdempotencyConflict(FaceRestError):
    """An Idempotency-Key was sent again with a different body or to another method or path: it
    names another request."""

    code = "idempotency_conflict"


class JobNotFound(FaceRestError):
    code = "job_not_found"


class VideoNotFound(JobNotFound):
    code = "video_not_found"


class ResultTimeout(FaceRestError):
    """The synchronous wait ran out; the job goes on and can be polled."""

    code = "timeout"

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class ServiceUnavailable(FaceRestError):
    code = "unavailable"


class JobFailed(FaceRestError):
    """The worker could not process the job (a bug or a crash), as opposed to a bad input."""

    code = "job_failed"


class TooManyAttempts(JobFailed):
    """The job was delivered more than ``max_attempts`` times: it crashed or lost its worker each time."""

    code = "too_many_attempts"


class InternalError(JobFailed):
    """An unexpected exception in a worker; the message carries no library text, the log has it."""

    code = "internal_error"


class ModelNotLoaded(InvalidRequest):
    """The request asks for a model that no worker (or not this worker) has loaded."""

    code = "model_not_loaded"

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available

    def info(self) -> ErrorInfo:
        return ErrorInfo(self.code, self.message, tuple(self.available))


class CollectionNotFound(FaceRestError):
    code = "collection_not_found"


class SubjectNotFound(FaceRestError):
    code = "subject_not_found"


class FaceNotFound(FaceRestError):
    code = "face_not_found"


class SubjectExists(FaceRestError):
    """A rename to a name another subject of the collection already has."""

    code = "subject_exists"


class RecognizerMismatch(FaceRestError):
    """A collection's vectors come from a recognizer the workers have not loaded: comparing
    them with another model's vectors would give meaningless similarities."""

    code = "recognizer_mismatch"


class NoFace(InvalidImage):
    """An image to enroll or verify holds no face; the message names the image."""

    code = "no_face"


class SeveralFaces(InvalidImage):
    """``"face": "only"`` and the image holds more than one face."""

    code = "several_faces"


class LowQuality(InvalidImage):
    """An image to enroll whose face scores under the request's ``min_quality``."""

    code = "low_quality"


class CollectionForbidden(FaceRestError):
    """The API key is limited to other collections."""

    code = "collection_forbidden"


class CrossOriginRefused(FaceRestError):
    """A browser sent a state-changing request from a web origin that is neither this service's
    nor one FACEREST_CORS_ORIGINS lists (a cross-site request forgery, or a page not allowed)."""

    code = "cross_origin_refused"


class NoWebhookSecret(FaceRestError):
    """There is no per-key webhook secret to tell: webhooks are off (no FACEREST_WEBHOOK_SECRET),
    or API keys are (then the operator gives receivers the service secret)."""

    code = "no_webhook_secret"


# Every code a worker can store, and the class the API raises for it.
ERRORS: Mapping[str, type[FaceRestError]] = MappingProxyType(
    {
        kind.code: kind
        for kind in (
            InvalidRequest,
            InvalidImage,
            InvalidVideo,
            LimitExceeded,
            InvalidField,
            UrlRefused,
            UrlFetchFailed,
            IdempotencyConflict,
            JobFailed,
            TooManyAttempts,
            InternalError,
            CollectionNotFound,
            SubjectNotFound,
            RecognizerMismatch,
            NoFace,
            SeveralFaces,
            LowQuality,
        )
    }
)


def from_info(info: ErrorInfo) -> FaceRestError:
    """The domain error a stored ``ErrorInfo`` stands for (an unknown code: a failed job)."""
    if info.code == ModelNotLoaded.code:
        return ModelNotLoaded(info.message, list(info.available))
    return ERRORS.get(info.code, JobFailed)(info.message)
