"""People discovery's store against both databases (SQLite, PostgreSQL + pgvector): ingest is
idempotent by photo id and by content, clustering is incremental across processes, and the
person's decisions hold through later ingests and a full re-cluster. Vectors are generated
(tests/unit/test_discovery.py), the store's job is to keep them and their clusters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shared.contract import RecognizerInfo
from shared.gallery import Gallery, NewFace, open_gallery
from shared.gallery.people import (
    NO_CLUSTER,
    NewPeopleFace,
    PeopleStore,
    ignore_cluster,
    keep_apart,
    merge_clusters,
    move_face,
    name_cluster,
    open_people,
)
from shared.gallery.people_subjects import (
    delete_enrolled_face,
    delete_gallery,
    delete_subject,
    rename_subject,
    sync,
)
from testkit.postgres import files_holding, fresh_database, postgres_data_dir
from tests.unit.test_discovery import DIM, GOOD, people, photo_of
from worker.people import Discovery, NewPhoto


@pytest.fixture(scope="module")
def postgres_url(postgres_server: str) -> str:
    return fresh_database(postgres_server, "people_tests")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PeopleStore]:
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_people(url, tmp_path)
    opened.delete_collection("album")  # one server per module: start each test empty
    yield opened
    opened.close()


@pytest.fixture
def gallery(store: PeopleStore, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gallery]:
    """The recognition gallery in the same database as ``store``."""
    url = "" if store.dialect.name == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_gallery(url, tmp_path)
    opened.delete_collection("album")
    yield opened
    opened.close()


RECOGNIZER = RecognizerInfo("arcface", "w600k_mbf", "1", "research", DIM)


def photo(name: str, vectors: np.ndarray, quality: float = GOOD) -> NewPhoto:
    faces = [NewPeopleFace((1.0, 2.0, 50.0, 60.0), quality, v, b"jpeg") for v in vectors]
    return NewPhoto(name, f"sha-{name}", faces)


def test_ingest_clusters_each_person_and_answers_a_photo_again_as_stored(store: PeopleStore) -> None:
    rng = np.random.default_rng(11)
    centres = people(4, rng)
    discovery = Discovery(store)
    photos = [photo(f"p{p}-{n}", photo_of(centres[p : p + 1], rng)) for n in range(4) for p in range(3)]
    photos.append(photo("alone", photo_of(centres[3:4], rng)))
    done = discovery.ingest("album", DIM, photos)
    listing = store.listing("album")
    assert sorted(len(c.faces) for c in listing.clusters) == [4, 4, 4]
    assert listing.unclustered == 1
    by_person = {p: {d.clusters[0] for d in done if d.photo_id.startswith(f"p{p}-")} for p in range(3)}
    assert all(len(labels) == 1 and NO_CLUSTER not in labels for labels in by_person.values())
    again = discovery.ingest(
        "album", DIM, [photos[0], NewPhoto("renamed", photos[1].sha256, photos[1].faces)]
    )
    assert [a.new for a in again] == [False, False]
    assert again[0].face_ids == done[0].face_ids and again[1].photo_id == photos[1].photo_id
    assert sum(len(c.faces) for c in store.listing("album").clusters) == 12


def test_another_process_s_ingest_is_seen_and_joins_the_same_clusters(store: PeopleStore) -> None:
    rng = np.random.default_rng(12)
    centres = people(2, rng)
    first, second = Discovery(store), Discovery(store)  # two workers, each with its own cache
    a = first.ingest("album", DIM, [photo(f"a{n}", photo_of(centres, rng)) for n in range(3)])
    b = second.ingest("album", DIM, [photo(f"b{n}", photo_of(centres, rng)) for n in range(2)])
    c = first.ingest("album", DIM, [photo("c0", photo_of(centres, rng))])  # its cache is stale now
    for done in (b, c):
        for item in done:
            assert item.clusters == a[0].clusters  # each person's face went to its own cluster
    assert NO_CLUSTER not in a[0].clusters and len(set(a[0].clusters)) == 2
    assert len(store.listing("album").clusters) == 2


def test_decisions_hold_through_later_ingests_and_a_recluster(store: PeopleStore) -> None:
    rng = np.random.default_rng(13)
    centres = people(3, rng)
    discovery = Discovery(store)
    done = discovery.ingest("album", DIM, [photo(f"x{n}", photo_of(centres, rng)) for n in range(4)])
    ann, bob, cid = done[0].clusters
    # A face moved out of ann's cluster never comes back.
    moved = done[1].face_ids[0]
    assert move_face(store, "album", moved, None, None) == NO_CLUSTER
    assert name_cluster(store, "album", ann, "ann") == ann
    ignore_cluster(store, "album", cid)
    keep_apart(store, "album", ann, bob)
    discovery.ingest("album", DIM, [photo(f"y{n}", photo_of(centres, rng)) for n in range(2)])
    discovery.recluster("album", DIM)
    listing = {c.id: c for c in store.listing("album").clusters}
    assert moved not in {f.face_id for c in listing.values() for f in c.faces}
    assert listing[ann].subject == "ann" and len(listing[ann].faces) == 5
    assert listing[cid].ignored and len(listing[bob].faces) == 6
    # Naming bob's cluster "ann" too makes it ann's: one cluster, one face per photo.
    assert name_cluster(store, "album", bob, "ann") == ann
    merged = {c.id: c for c in store.listing("album").clusters}[ann]
    photos = [f.photo_id for f in merged.faces]
    assert len(photos) == len(set(photos)) == 6
    # A face put into a subject by hand stays there.
    assert move_face(store, "album", moved, None, "ann") == ann
    discovery.recluster("album", DIM)
    assert moved in {f.face_id for f in {c.id: c for c in store.listing("album").clusters}[ann].faces}
    merge_clusters(store, "album", ann, [cid])
    assert cid not in {c.id for c in store.listing("album").clusters}


def test_the_gallery_s_subjects_are_who_a_discovered_face_is(store: PeopleStore, gallery: Gallery) -> None:
    rng = np.random.default_rng(14)
    centres = people(3, rng)
    discovery = Discovery(store)
    done = discovery.ingest("album", DIM, [photo(f"x{n}", photo_of(centres, rng)) for n in range(3)])
    ann, bob, _ = done[0].clusters
    # Naming a cluster enrolls its faces as the subject: the gallery's search finds ann.
    assert name_cluster(store, "album", ann, "ann") == ann
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", cluster=ann))
    assert len(gallery.faces("album", "ann")) == 3
    query = photo_of(centres[:1], rng)
    assert gallery.search("album", query, 1)[0][0].subject == "ann"
    # bob, enrolled by hand: a face that matched him at ingest is attached to a cluster named bob.
    hand = NewFace("hand", (0.0, 0.0, 9.0, 9.0), 0.9, 1, photo_of(centres[1:2], rng)[0], b"jpeg")
    gallery.enroll("album", RECOGNIZER, "bob", [hand])
    later = photo("later", photo_of(centres, rng))
    attached = discovery.ingest(
        "album", DIM, [NewPhoto(later.photo_id, later.sha256, later.faces, ["ann", "bob", None])]
    )
    named = store.subjects("album")
    assert named[attached[0].clusters[0]] == "ann" and attached[0].clusters[0] == ann
    bob_cluster = attached[0].clusters[1]
    assert named[bob_cluster] == "bob" and bob_cluster != bob
    # Naming the discovered bob cluster "bob" merges it into bob's: all five are bob's in the gallery.
    assert name_cluster(store, "album", bob, "bob") == bob_cluster
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", cluster=bob_cluster))
    assert len(gallery.faces("album", "bob")) == 1 + 4
    # Taking a face out of ann removes it from the gallery's ann; the others stay.
    out = done[1].face_ids[0]
    move_face(store, "album", out, None, None)
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", photo_of=out))
    assert len(gallery.faces("album", "ann")) == 2
    # A face moved into a subject by hand is enrolled there, and bob's face of the same photo
    # leaves bob (one face per photo), in the gallery too.
    move_face(store, "album", out, None, "bob")
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", photo_of=out))
    assert len(gallery.faces("album", "ann")) == 2 and len(gallery.faces("album", "bob")) == 5
    assert store.subject_state("album", [done[1].face_ids[1]])[done[1].face_ids[1]].enrolled is None
    # The gallery renames bob, then deletes him: discovery's cluster follows, and keeps its faces.
    assert rename_subject(gallery, store, "album", "bob", "robert") == 5
    assert store.subjects("album")[bob_cluster] == "robert"
    assert delete_subject(gallery, store, "album", "robert") == 5
    assert bob_cluster not in store.subjects("album")
    assert len({c.id: c for c in store.listing("album").clusters}[bob_cluster].faces) == 4


def test_deleting_an_enrolled_copy_takes_its_discovered_face_out_of_the_subject(
    store: PeopleStore, gallery: Gallery
) -> None:
    rng = np.random.default_rng(15)
    centres = people(2, rng)
    discovery = Discovery(store)
    done = discovery.ingest("album", DIM, [photo(f"d{n}", photo_of(centres, rng)) for n in range(3)])
    ann = done[0].clusters[0]
    name_cluster(store, "album", ann, "ann")
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", cluster=ann))
    face = done[1].face_ids[0]
    copy = store.subject_state("album", [face])[face].enrolled
    assert copy is not None and copy[0] == "ann"
    hand = NewFace("hand", (0.0, 0.0, 9.0, 9.0), 0.9, 1, photo_of(centres[:1], rng)[0], b"jpeg")
    by_hand = gallery.enroll("album", RECOGNIZER, "ann", [hand])[0].id
    assert len(gallery.faces("album", "ann")) == 4

    assert delete_enrolled_face(gallery, store, "album", copy[1])
    assert len(gallery.faces("album", "ann")) == 3 and store.linked_to("album", copy[1]) is None
    assert store.subject_state("album", [face])[face].enrolled is None
    clusters = {c.id: c for c in store.listing("album").clusters}
    assert face not in {f.face_id for f in clusters[ann].faces} and len(clusters[ann].faces) == 2
    # A person's decision: a later sync, ingest or re-cluster never brings it back.
    sync(gallery, store, "album", RECOGNIZER, [*store.face_ids("album", cluster=ann), face])
    assert len(gallery.faces("album", "ann")) == 3
    discovery.ingest("album", DIM, [photo("d-later", photo_of(centres, rng))])
    discovery.recluster("album", DIM)
    after = {c.id: c for c in store.listing("album").clusters}
    assert face not in {f.face_id for c in after.values() for f in c.faces}
    assert len(after[ann].faces) == 3
    # A face enrolled by hand is no copy: deleting it touches no discovered face.
    assert delete_enrolled_face(gallery, store, "album", by_hand)
    assert len({c.id: c for c in store.listing("album").clusters}[ann].faces) == 3
    assert not delete_enrolled_face(gallery, store, "album", by_hand)
    # Deleting every subject (CompreFace's "delete all") unnames every cluster; none loses a face.
    (bob,) = (c.id for c in store.listing("album").clusters if c.id != ann)
    name_cluster(store, "album", bob, "bob")
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", cluster=bob))
    assert len(gallery.faces("album", "bob")) == 4
    assert delete_gallery(gallery, store, "album") and store.subjects("album") == {}
    kept = store.face_ids("album", cluster=ann) + store.face_ids("album", cluster=bob)
    assert all(state.enrolled is None for state in store.subject_state("album", kept).values())
    assert sorted(len(c.faces) for c in store.listing("album").clusters) == [3, 4]


def test_compaction_leaves_no_deleted_photo_or_subject_name_in_the_database_files(
    store: PeopleStore, gallery: Gallery, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    postgres = store.dialect.name == "postgres"
    root = postgres_data_dir(request.getfixturevalue("postgres_url")) if postgres else tmp_path
    rng = np.random.default_rng(16)
    centres = people(2, rng)
    discovery = Discovery(store)
    secret_crop = b"\xff\xd8" + rng.bytes(6000)  # incompressible: PostgreSQL's TOAST table
    gone = NewPeopleFace((1.0, 2.0, 50.0, 60.0), GOOD, photo_of(centres[:1], rng)[0], secret_crop)
    discovery.ingest("album-gone", DIM, [NewPhoto("secret", "sha-secret", [gone])])
    done = discovery.ingest("album", DIM, [photo(f"e{n}", photo_of(centres, rng)) for n in range(3)])
    name = "erase-me-subject-5f2a"
    named = name_cluster(store, "album", done[0].clusters[0], name)
    sync(gallery, store, "album", RECOGNIZER, store.face_ids("album", cluster=named))
    needles = (secret_crop[100:164], name.encode())
    assert len(files_holding(root, *needles)) > 0

    assert store.delete_collection("album-gone")
    assert gallery.delete_subject("album", name) == 3
    store.subject_deleted("album", name)
    if postgres:  # dead tuples and WAL: a DELETE alone leaves them (SQLite zeroes them, secure_delete)
        assert len(files_holding(root, *needles)) > 0
    # What the compact job does: the gallery's collection, then discovery's shared tables.
    assert gallery.compact("album").log_flushed
    assert store.compact()  # the test servers' user may checkpoint
    assert files_holding(root, *needles) == []
    assert sorted(len(c.faces) for c in store.listing("album").clusters) == [3, 3]
