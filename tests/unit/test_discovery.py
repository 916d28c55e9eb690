"""Incremental people discovery (worker/discovery.py) on generated vectors: people of several
photos become one cluster each, two faces of one photo never share one, poor faces never seed
but may join, and a person's decisions hold through later photos and a full re-cluster."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from worker.discovery import NONE, Clustering, DiscoverySettings

DIM = 512
GOOD = 0.8


def _unit(rows: NDArray[np.float64]) -> NDArray[np.float32]:
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), np.float32)


def people(count: int, rng: np.random.Generator) -> NDArray[np.float64]:
    return rng.normal(size=(count, DIM))


def photo_of(centres: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float32]:
    """One face per centre: its direction plus noise of norm 0.8, so two faces of one person are
    about 0.6 cosine similar (ArcFace's same-person range) and of two people about 0."""
    directions = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return _unit(directions + rng.normal(size=centres.shape) * 0.8 / np.sqrt(DIM))


def test_each_person_of_several_photos_becomes_one_cluster_and_a_single_photo_stays_alone() -> None:
    rng = np.random.default_rng(1)
    centres = people(6, rng)
    clustering = Clustering(DIM)
    rows: dict[int, list[int]] = {p: [] for p in range(6)}
    for n in range(8):
        for p in range(5):  # person 5 has one photo only
            rows[p] += clustering.add_photo(photo_of(centres[p : p + 1], rng), [GOOD], f"p{p}-{n}")
    rows[5] += clustering.add_photo(photo_of(centres[5:6], rng), [GOOD], "alone")
    labels = clustering.cluster[: clustering.count]
    for p in range(5):
        assert len(set(labels[rows[p]].tolist())) == 1 and labels[rows[p][0]] != NONE
    assert len({int(labels[rows[p][0]]) for p in range(5)}) == 5
    assert labels[rows[5][0]] == NONE


def test_two_faces_of_one_photo_never_share_a_cluster() -> None:
    """A photo holding the same person twice (a mirror, a poster): one face joins, one waits."""
    rng = np.random.default_rng(2)
    centre = people(1, rng)
    clustering = Clustering(DIM)
    for n in range(4):
        clustering.add_photo(photo_of(centre, rng), [GOOD], f"solo-{n}")
    twice = clustering.add_photo(photo_of(np.repeat(centre, 2, axis=0), rng), [GOOD, GOOD], "twice")
    labels = clustering.cluster[twice]
    assert labels[0] != labels[1] and NONE in labels.tolist()
    # Even when the first faces arrive together, in one photo.
    fresh = Clustering(DIM)
    pair = fresh.add_photo(photo_of(np.repeat(centre, 2, axis=0), rng), [GOOD, GOOD], "pair")
    assert fresh.cluster[pair].tolist() == [NONE, NONE]
    fresh.add_photo(photo_of(centre, rng), [GOOD], "next")
    assert len(set(fresh.cluster[pair].tolist()) - {NONE}) == 1


def test_poor_faces_never_seed_a_cluster_but_join_one() -> None:
    rng = np.random.default_rng(3)
    centre = people(1, rng)
    settings = DiscoverySettings()
    clustering = Clustering(DIM, settings)
    poor = [clustering.add_photo(photo_of(centre, rng), [0.1], f"blurred-{n}")[0] for n in range(5)]
    assert (clustering.cluster[poor] == NONE).all()
    good = [clustering.add_photo(photo_of(centre, rng), [GOOD], f"sharp-{n}")[0] for n in range(2)]
    # The second good face seeds the cluster with the first; the sweep takes the poor ones in.
    label = clustering.cluster[good[0]]
    assert label != NONE and (clustering.cluster[poor + good] == label).all()


def test_a_face_moved_away_is_never_pulled_back() -> None:
    rng = np.random.default_rng(4)
    centre = people(1, rng)
    clustering = Clustering(DIM)
    rows = [clustering.add_photo(photo_of(centre, rng), [GOOD], f"p-{n}")[0] for n in range(6)]
    label = int(clustering.cluster[rows[0]])
    clustering.move(rows[0], NONE)  # "not this person"
    for n in range(4):
        clustering.add_photo(photo_of(centre, rng), [GOOD], f"later-{n}")
    clustering.recluster(fixed=set())
    assert clustering.cluster[rows[0]] == NONE
    assert (clustering.cluster[rows[1:]] != NONE).all()
    assert (0, label) in clustering.forbidden


def test_a_recluster_reports_its_progress_per_photo_and_finds_the_same_people() -> None:
    rng = np.random.default_rng(7)
    centres = people(3, rng)
    clustering = Clustering(DIM)
    for n in range(4):
        clustering.add_photo(photo_of(centres, rng), [GOOD] * 3, f"group-{n}")
    before = clustering.cluster[: clustering.count].reshape(4, 3).copy()
    heard: list[tuple[int, int]] = []
    clustering.recluster(fixed=set(), progress=lambda done, total: heard.append((done, total)))
    assert heard == [(done, 4) for done in range(5)]  # before each photo, and once done
    after = clustering.cluster[: clustering.count].reshape(4, 3)
    assert len(set(before[0].tolist())) == 3 and (before == before[0]).all()
    assert len(set(after[0].tolist())) == 3 and (after == after[0]).all()


def test_clusters_kept_apart_stay_apart_through_a_recluster() -> None:
    rng = np.random.default_rng(5)
    centre = people(1, rng)
    clustering = Clustering(DIM)
    first = [clustering.add_photo(photo_of(centre, rng), [GOOD], f"a-{n}")[0] for n in range(3)]
    a = int(clustering.cluster[first[0]])
    # A person split the cluster: the last face into a cluster of its own, kept apart.
    b = clustering.next_id
    clustering.next_id += 1
    clustering.move(first[2], b)
    clustering.keep_apart(a, b)
    clustering.recluster(fixed=set())
    assert clustering.cluster[first[:2]].tolist() == [a, a] and clustering.cluster[first[2]] == b


def test_merge_keeps_one_face_per_photo() -> None:
    rng = np.random.default_rng(6)
    one, two = people(2, rng)
    clustering = Clustering(DIM)
    ones = [clustering.add_photo(photo_of(one[None], rng), [GOOD], f"one-{n}")[0] for n in range(3)]
    both = clustering.add_photo(photo_of(np.stack([one, two]), rng), [GOOD, GOOD], "together")
    twos = [clustering.add_photo(photo_of(two[None], rng), [GOOD], f"two-{n}")[0] for n in range(3)]
    a, b = int(clustering.cluster[ones[0]]), int(clustering.cluster[twos[0]])
    assert a != b and clustering.cluster[both].tolist() == [a, b]
    clustering.merge(a, b)
    assert (clustering.cluster[ones + twos] == a).all()
    assert clustering.cluster[both].tolist() == [a, NONE]


def test_the_sign_code_shortlist_clusters_as_the_exact_scan_does() -> None:
    """Past ``exact_below`` faces, candidates come from sign-bit codes: the same clusters here."""
    rng = np.random.default_rng(7)
    centres = people(60, rng)
    owners = rng.integers(0, 60, 600)
    faces = [photo_of(centres[o : o + 1], rng) for o in owners]
    results = []
    for settings in (DiscoverySettings(), DiscoverySettings(exact_below=0, shortlist=64)):
        clustering = Clustering(DIM, settings)
        for n, face in enumerate(faces):
            clustering.add_photo(face, [GOOD], f"photo-{n}")
        results.append(clustering.cluster[: clustering.count].copy())
    exact, shortlisted = results
    assert (exact != NONE).mean() > 0.95
    # The same partition (cluster ids may differ in number): each exact cluster is one shortlisted one.
    pairs = set(zip(exact.tolist(), shortlisted.tolist(), strict=True))
    assert len(pairs) == len(set(exact.tolist())) == len(set(shortlisted.tolist()))


def test_a_face_attached_to_a_subject_s_cluster_stays_and_sweeps_its_pool_faces_in() -> None:
    rng = np.random.default_rng(8)
    ann, bob = people(2, rng)
    clustering = Clustering(DIM)
    # One photo of ann alone: in the pool, no cluster to join or seed with.
    (waiting,) = clustering.add_photo(photo_of(ann[None], rng), [GOOD], "ann-old")
    assert clustering.cluster[waiting] == NONE
    # A later photo whose first face matched ann, enrolled in the gallery, and bob unknown.
    label = clustering.next_id
    clustering.next_id += 1
    rows = clustering.add_photo(photo_of(np.stack([ann, bob]), rng), [GOOD, GOOD], "pair", [label, NONE])
    assert clustering.cluster[rows[0]] == label and clustering.cluster[waiting] == label
    assert clustering.cluster[rows[1]] == NONE  # bob: no cluster of his, no pool face like him
