"""People discovery over the store: ingest photos' faces and cluster them incrementally, re-cluster
a collection, and the person's decisions (docs/people.md).

Clustering runs where the faces are embedded (an ingest job's worker) inside the collection's
write lock (shared/gallery/people.py). Each process keeps each collection's ``Clustering`` in
memory with the store's version it matches: when no other process wrote since, the next ingest
starts from it as it is (a photo costs its own faces' work, not a reload); otherwise it reloads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.gallery.people import NO_CLUSTER, NewPeopleFace, PeopleStore, StoredPhoto, Writer
from worker.discovery import NONE, Clustering, DiscoverySettings

assert NONE == NO_CLUSTER  # the store's "no cluster" is the clustering's


@dataclass(frozen=True, slots=True)
class NewPhoto:
    photo_id: str
    sha256: str
    faces: list[NewPeopleFace]
    # Face for face: the gallery subject it matched at the open-set threshold (None: none).
    subjects: Sequence[str | None] = ()


@dataclass(frozen=True, slots=True)
class IngestedPhoto:
    photo_id: str
    face_ids: list[str]
    clusters: list[int]  # row for row with face_ids; NO_CLUSTER: none yet
    new: bool


@dataclass(slots=True)
class _Loaded:
    version: int
    clustering: Clustering
    seqs: list[int]
    rows: dict[str, int]  # face id -> row


@dataclass
class Discovery:
    store: PeopleStore
    settings: DiscoverySettings = field(default_factory=DiscoverySettings)
    _cache: dict[str, _Loaded] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self, writer: Writer, dimension: int) -> _Loaded:
        """The collection's clustering as of this transaction: the cached one when nobody wrote
        since it was made (the version this transaction bumped is one past it)."""
        version = writer.version()
        with self._lock:
            cached = self._cache.pop(writer.collection, None)
        if cached is not None and cached.version == version - 1:
            cached.version = version
            return cached
        rows = writer.faces()
        clustering = Clustering(dimension, self.settings)
        if rows.seqs:
            clustering.load(rows.vectors, rows.quality, rows.photos, rows.clusters)
            clustering.placed[: clustering.count] = rows.placed
        clustering.next_id = max(clustering.next_id, writer.next_cluster())
        by_id = {face_id: row for row, face_id in enumerate(rows.ids)}
        moved, apart = writer.constraints()
        clustering.forbidden = {(by_id[face], cluster) for face, cluster in moved if face in by_id}
        clustering.apart = {frozenset(pair) for pair in apart}
        return _Loaded(version, clustering, list(rows.seqs), by_id)

    def _keep(self, collection: str, loaded: _Loaded) -> None:
        with self._lock:
            self._cache[collection] = loaded

    def ingest(self, collection: str, dimension: int, photos: Sequence[NewPhoto]) -> list[IngestedPhoto]:
        """Store and cluster photos in one transaction; a photo id or content ingested before is
        answered as stored (idempotent)."""
        out: list[StoredPhoto] = []
        with self.store.writing(collection, dimension) as writer:
            loaded = self._load(writer, dimension)
            clustering = loaded.clustering
            before = clustering.cluster[: clustering.count].copy()
            for photo in photos:
                stored = writer.photo(photo.photo_id, photo.sha256)
                if stored is not None:
                    out.append(stored)
                    continue
                stored, seqs = writer.add_photo(photo.photo_id, photo.sha256, photo.faces)
                if photo.faces:
                    vectors = np.stack([face.vec for face in photo.faces]).astype(np.float32)
                    attach = [self._subject_cluster(writer, clustering, s) for s in photo.subjects]
                    rows = clustering.add_photo(
                        vectors, [f.quality for f in photo.faces], photo.photo_id, attach
                    )
                    loaded.seqs.extend(seqs)
                    loaded.rows.update(zip(stored.face_ids, rows, strict=True))
                out.append(stored)
            after = clustering.cluster[: clustering.count]
            changed = np.flatnonzero(after[: len(before)] != before).tolist() + list(
                range(len(before), clustering.count)
            )
            writer.set_clusters({loaded.seqs[i]: int(after[i]) for i in changed})
            writer.set_next_cluster(clustering.next_id)
            # Kept only once every write went through: _load took the entry out, so a failed
            # transaction leaves none and the next ingest reloads.
            self._keep(collection, loaded)
        return [self._answer(loaded, p) for p in out]

    @staticmethod
    def _subject_cluster(writer: Writer, clustering: Clustering, subject: str | None) -> int:
        """The cluster named ``subject`` (made if none is), where a face that matched it goes."""
        if subject is None:
            return NONE
        named = writer.cluster_of_subject(subject)
        if named is not None:
            return named
        made = clustering.next_id
        clustering.next_id += 1
        writer.set_meta(made, subject=subject)
        return made

    @staticmethod
    def _answer(loaded: _Loaded, photo: StoredPhoto) -> IngestedPhoto:
        cluster = loaded.clustering.cluster
        return IngestedPhoto(
            photo.photo_id, photo.face_ids, [int(cluster[loaded.rows[f]]) for f in photo.face_ids], photo.new
        )

    def recluster(
        self, collection: str, dimension: int, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, int]:
        """Cluster the collection again from scratch, keeping what a person decided; the clusters
        and faces after it. ``progress`` hears (photos clustered, photos to cluster)."""
        with self.store.writing(collection, dimension) as writer:
            loaded = self._load(writer, dimension)
            clustering = loaded.clustering
            before = clustering.cluster[: clustering.count].copy()
            clustering.recluster(writer.fixed_clusters(), progress)
            after = clustering.cluster[: clustering.count]
            writer.set_clusters(
                {loaded.seqs[i]: int(after[i]) for i in np.flatnonzero(after != before).tolist()}
            )
            writer.set_next_cluster(clustering.next_id)
            self._keep(collection, loaded)
            return len(set(after.tolist()) - {NONE}), clustering.count
