"""Enroll, recognize, verify, reindex and compact in the worker: embed, then use the gallery.

The worker does the store work right after embedding, so one request is one queued job, the
vectors never travel back through Redis, and the gallery every process reads is the database
itself (docs/recognition.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import msgspec
import numpy as np
from scipy.optimize import linear_sum_assignment

from shared.contract import (
    AnalysisOptions,
    CompactJob,
    CompactResult,
    EnrolledFace,
    EnrollJob,
    EnrollResult,
    ErrorInfo,
    Face,
    IngestedFace,
    IngestedPhoto,
    IngestJob,
    IngestResult,
    ReclusterJob,
    ReclusterResult,
    RecognizedFace,
    RecognizedImage,
    RecognizeJob,
    RecognizeResult,
    RecognizerInfo,
    ReindexJob,
    ReindexResult,
    SubjectMatch,
    VerifyJob,
    VerifyResult,
)
from shared.errors import (
    CollectionNotFound,
    FaceNotFound,
    InvalidRequest,
    LowQuality,
    NoFace,
    SeveralFaces,
    SubjectNotFound,
    from_info,
)
from shared.gallery import Gallery, NewFace, Vectors, check_recognizer
from shared.gallery.people import NO_CLUSTER, NewPeopleFace
from shared.images import image_label
from shared.recognition import Match, default_threshold, image_digest
from worker.analysis import Analysis, Analyzer
from worker.people import Discovery, NewPhoto


def assign(candidates: Sequence[Sequence[Match]], threshold: float) -> list[Match | None]:
    """One subject per face of one photo, none twice: the assignment with the largest total
    similarity among pairs at or above ``threshold`` (Hungarian method); faces left over get None."""
    names = sorted({m.subject for matches in candidates for m in matches if m.similarity >= threshold})
    if not names:
        return [None] * len(candidates)
    column = {name: j for j, name in enumerate(names)}
    gain = np.zeros((len(candidates), len(names)), np.float64)
    for i, matches in enumerate(candidates):
        for m in matches:
            if m.similarity >= threshold:
                # +2 makes every pair above the threshold worth more than leaving the face unnamed
                # (0), whatever the threshold (cosines are >= -1).
                gain[i, column[m.subject]] = m.similarity + 2.0
    rows, cols = linear_sum_assignment(gain, maximize=True)
    chosen: list[Match | None] = [None] * len(candidates)
    for i, j in zip(rows, cols, strict=True):
        if gain[i, j] > 0:
            chosen[i] = Match(names[j], round(float(gain[i, j]) - 2.0, 5))
    return chosen


def _vector(face: Face) -> Vectors:
    assert face.vec is not None  # every option set below asks for embeddings
    return np.frombuffer(face.vec, np.float32)


def _largest(faces: Sequence[Face]) -> Face:
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class JobErasure(Protocol):
    """What a compaction needs of shared/jobs.py's JobStore."""

    def erase_collection(self, collection: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Recognition:
    """The recognition jobs of one worker: its analyzer, its recognizer and the shared gallery."""

    analyzer: Analyzer
    gallery: Gallery
    recognizer: RecognizerInfo
    name: str  # the worker's, for the results
    jobs: JobErasure  # the job store, whose copies of a collection's photos and names a compaction erases
    discovery: Discovery | None = None  # people discovery's store and clustering; None: not served

    def _check_collection(self, collection: str, must_exist: bool) -> None:
        recognizer = self.gallery.recognizer_of(collection)
        if recognizer is None:
            if must_exist:
                raise CollectionNotFound(f"no collection {collection!r}: enroll a face to create it")
            return
        check_recognizer(collection, recognizer, self.recognizer)

    def _faces_of(
        self, images: Sequence[bytes], options: AnalysisOptions, request_id: str, data_count: int
    ) -> Analysis:
        """Analysed images, all of them good: the first failure fails the job, naming its image."""
        done = self.analyzer.run(images, options, request_id)
        for index, image in enumerate(done.images):
            label = image_label(index, data_count)
            if image.error is not None:
                error = from_info(image.error)
                error.message = f"{label}: {error.message}"
                raise error
            if not image.faces:
                raise NoFace(f"{label}: no face found")
        return done

    def enroll(self, job: EnrollJob, start: float) -> EnrollResult:
        self._check_collection(job.collection, must_exist=False)
        options = msgspec.structs.replace(
            job.options,
            extract_embedding=True,
            return_face_data=True,
            return_quality=job.options.return_quality or job.min_quality > 0,
        )
        done = self._faces_of(job.images, options, job.request_id, job.data_count)
        new: list[NewFace] = []
        for index, (data, image) in enumerate(zip(job.images, done.images, strict=True)):
            if job.face == "only" and len(image.faces) > 1:
                raise SeveralFaces(
                    f'{image_label(index, job.data_count)}: {len(image.faces)} faces, "face": "only" '
                    "asks for exactly one"
                )
            face = _largest(image.faces)
            if face.quality is not None and face.quality.quality < job.min_quality:
                raise LowQuality(
                    f"{image_label(index, job.data_count)}: face quality {face.quality.quality} is under "
                    f"min_quality={job.min_quality} (sharpness {face.quality.sharpness}, yaw "
                    f"{face.quality.yaw}, pitch {face.quality.pitch}, size {face.quality.size} px)"
                )
            new.append(
                NewFace(
                    image_digest(data),
                    face.bbox,
                    face.prob,
                    len(image.faces),
                    _vector(face),
                    face.facedata or b"",
                )
            )
        stored = self.gallery.enroll(job.collection, self.recognizer, job.subject, new)
        faces = [EnrolledFace(f.id, f.subject, f.bbox, f.prob, f.faces_in_image, f.new) for f in stored]
        return EnrollResult(job.collection, faces, self.name, _ms_since(start), done.recognizer)

    def recognize(self, job: RecognizeJob, start: float) -> RecognizeResult:
        self._check_collection(job.collection, must_exist=True)
        threshold = default_threshold(self.recognizer.key) if job.threshold is None else job.threshold
        options = msgspec.structs.replace(job.options, extract_embedding=True)
        images: list[RecognizedImage] = []
        done = self.analyzer.run(job.images, options, job.request_id)
        for image in done.images:
            if image.error is not None:
                images.append(RecognizedImage("error", image.took_ms, error=image.error))
                continue
            if not image.faces:
                images.append(RecognizedImage("ok", image.took_ms))
                continue
            queries = np.stack([_vector(face) for face in image.faces])
            # At least as many candidates as faces: the same-photo rule may need each face's
            # next-best subject.
            candidates = self.gallery.search(job.collection, queries, max(job.limit, len(image.faces)))
            chosen = assign(candidates, threshold)
            faces = []
            for face, matches, pick in zip(image.faces, candidates, chosen, strict=True):
                best = pick or (matches[0] if matches else None)
                faces.append(
                    RecognizedFace(
                        face.bbox,
                        face.prob,
                        None if pick is None else pick.subject,
                        None if best is None else best.similarity,
                        [SubjectMatch(m.subject, m.similarity) for m in matches[: job.limit]],
                        norm=face.norm,
                        landmarks=face.landmarks if options.return_landmarks else None,
                        landmarks106=face.landmarks106,
                        gender=face.gender,
                        gender_score=face.gender_score,
                        age=face.age,
                        quality=face.quality,
                        vec=face.vec if job.options.extract_embedding else None,
                    )
                )
            images.append(RecognizedImage("ok", image.took_ms, faces))
        return RecognizeResult(
            job.collection, images, threshold, self.name, _ms_since(start), done.recognizer
        )

    def verify(self, job: VerifyJob, start: float) -> VerifyResult:
        threshold = default_threshold(self.recognizer.key) if job.threshold is None else job.threshold
        options = msgspec.structs.replace(job.options, extract_embedding=True)
        done = self._faces_of(job.images, options, job.request_id, job.data_count)
        faces = [_largest(image.faces) for image in done.images]
        probe = _vector(faces[0])
        if len(faces) == 2:
            similarity = float(probe @ _vector(faces[1]))
        elif job.collection is not None and job.subject is not None:
            self._check_collection(job.collection, must_exist=True)
            if job.face_id is not None:  # one face of the subject (deleted since: not found)
                gallery = self.gallery.face_vector(job.collection, job.face_id)
                if not len(gallery):
                    raise FaceNotFound(f"no face {job.face_id!r} in collection {job.collection!r}")
            else:
                gallery = self.gallery.subject_vectors(job.collection, job.subject)
                if not len(gallery):
                    raise SubjectNotFound(f"no subject {job.subject!r} in collection {job.collection!r}")
            similarity = float(np.max(gallery @ probe))  # a subject scores as its best face
        else:  # the API sends two images, or one with a subject
            raise InvalidRequest("verify needs two images, or one image with a collection and a subject")
        similarity = round(similarity, 5)
        return VerifyResult(
            similarity >= threshold,
            similarity,
            threshold,
            [face.bbox for face in faces],
            self.name,
            _ms_since(start),
            done.recognizer,
        )

    def ingest(self, job: IngestJob, start: float) -> IngestResult:
        """Every face of every photo stored with its quality and clustered (docs/people.md); a
        photo that fails (not an image) is answered alone, the others are stored."""
        if self.discovery is None:
            raise InvalidRequest("this worker serves no people discovery")
        options = msgspec.structs.replace(
            job.options, extract_embedding=True, return_face_data=True, return_quality=True
        )
        done = self.analyzer.run(job.images, options, job.request_id)
        photos: list[NewPhoto] = []
        failed: dict[int, ErrorInfo] = {}
        for index, (data, image, photo_id) in enumerate(
            zip(job.images, done.images, job.photo_ids, strict=True)
        ):
            if image.error is not None:
                failed[index] = image.error
                continue
            digest = image_digest(data)
            new_faces = [
                NewPeopleFace(
                    face.bbox,
                    face.quality.quality if face.quality else 0.0,
                    _vector(face),
                    face.facedata or b"",
                )
                for face in image.faces
            ]
            photos.append(NewPhoto(photo_id or digest[:32], digest, new_faces))
        photos = self._enrolled(job.collection, photos)
        stored = iter(self.discovery.ingest(job.collection, self.recognizer.dimension, photos))
        names = self.discovery.store.subjects(job.collection) if photos else {}
        answered: list[IngestedPhoto] = []
        for index, image in enumerate(done.images):
            if index in failed:
                answered.append(IngestedPhoto(job.photo_ids[index], "error", error=failed[index]))
                continue
            photo = next(stored)
            qualities = [f.quality.quality if f.quality else 0.0 for f in image.faces]
            boxes = [f.bbox for f in image.faces]
            if not photo.new:  # answered as stored: its faces' boxes are not this image's
                boxes, qualities = [(0.0, 0.0, 0.0, 0.0)] * len(photo.face_ids), [0.0] * len(photo.face_ids)
            faces = [
                IngestedFace(
                    face_id,
                    box,
                    round(quality, 4),
                    None if cluster == NO_CLUSTER else cluster,
                    names.get(cluster),
                )
                for face_id, box, quality, cluster in zip(
                    photo.face_ids, boxes, qualities, photo.clusters, strict=True
                )
            ]
            answered.append(IngestedPhoto(photo.photo_id, "ok", faces, photo.new))
        return IngestResult(job.collection, answered, self.name, _ms_since(start), done.recognizer)

    def _enrolled(self, collection: str, photos: list[NewPhoto]) -> list[NewPhoto]:
        """The photos with, face for face, the subject enrolled in the collection's gallery each
        face is, as recognize would say it (the recognizer's default open-set threshold, one
        subject per face of a photo). One search for the whole job; none when the gallery has no
        such collection."""
        faces = [face for photo in photos for face in photo.faces]
        if not faces or self.gallery.recognizer_of(collection) is None:
            return photos
        queries = np.stack([face.vec for face in faces]).astype(np.float32)
        # As many candidates as the largest photo has faces: the same-photo rule may need each
        # face's next-best subject.
        candidates = self.gallery.search(collection, queries, max(len(photo.faces) for photo in photos))
        threshold = default_threshold(self.recognizer.key)
        out, at = [], 0
        for photo in photos:
            chosen = assign(candidates[at : at + len(photo.faces)], threshold)
            at += len(photo.faces)
            out.append(replace(photo, subjects=[None if pick is None else pick.subject for pick in chosen]))
        return out

    def recluster(
        self, job: ReclusterJob, start: float, progress: Callable[[int, int], None] | None = None
    ) -> ReclusterResult:
        if self.discovery is None:
            raise InvalidRequest("this worker serves no people discovery")
        if self.discovery.store.version(job.collection) < 0:
            raise CollectionNotFound(f"no photos were ingested into collection {job.collection!r}")
        clusters, faces = self.discovery.recluster(job.collection, self.recognizer.dimension, progress)
        return ReclusterResult(job.collection, clusters, faces, self.name, _ms_since(start))

    def compact(self, job: CompactJob, start: float) -> CompactResult:
        # No model involved: any worker may run it. It can take long (PostgreSQL rewrites the
        # collection's table), which is why it is a job and not an API request.
        done = self.gallery.compact(job.collection)
        # Discovery's tables hold photos, crops and subject names too; they are shared by every
        # collection, so this also erases what deleted collections left there (docs/people.md).
        people_flushed = self.discovery.store.compact() if self.discovery is not None else True
        # Photos and names crossed Redis in this collection's jobs: drop the finished ones and
        # rewrite Redis's files, which still hold what was deleted.
        rewritten = self.jobs.erase_collection(job.collection)
        flushed = done.log_flushed and people_flushed
        return CompactResult(job.collection, done.faces, flushed, self.name, _ms_since(start), rewritten)

    def reindex(self, job: ReindexJob, start: float) -> ReindexResult:
        if self.gallery.recognizer_of(job.collection) is None:
            raise CollectionNotFound(f"no collection {job.collection!r}")
        crops = self.gallery.crops(job.collection)
        options = AnalysisOptions(embed_only=True, extract_embedding=True)
        done = self.analyzer.run([crop for _, crop in crops], options, job.request_id)
        vectors = {
            face_id: _vector(image.faces[0])
            for (face_id, _), image in zip(crops, done.images, strict=True)
            if image.faces and image.faces[0].vec is not None
        }
        self.gallery.replace_vectors(job.collection, self.recognizer, vectors)
        return ReindexResult(
            job.collection,
            len(vectors),
            len(crops) - len(vectors),
            self.name,
            _ms_since(start),
            done.recognizer,
        )
