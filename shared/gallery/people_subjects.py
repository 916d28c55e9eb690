"""Who a discovered face is: the gallery's subjects are the one source of truth (docs/people.md).

A discovery cluster's ``subject`` names a gallery subject. When a person decides (names a
cluster, merges into a named one, moves a face into or out of a subject), ``sync`` makes the
gallery agree for the faces the decision touched: a face in a named cluster is enrolled as that
subject (so /recognize finds it), a face taken out has its gallery copy deleted. Faces that only
joined a named cluster by clustering, or by matching the subject at ingest, are not copied: a
person did not confirm them, and those that matched are recognized already.

The decision and the gallery are two transactions: if the gallery write fails after the decision
held, the next ``sync`` of those faces (any later decision on them) repairs it, as it compares
states rather than replaying steps. The other way round, a gallery change goes through here so
that discovery follows it, from every protocol (the collections API, CompreFace, DeepStack): a
renamed or deleted subject renames or unnames its cluster, and a person deleting an enrolled
face that discovery copied (``delete_enrolled_face``) takes the discovered face out of the subject.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.contract import RecognizerInfo
from shared.gallery import Gallery, NewFace
from shared.gallery.people import PeopleStore, enrolled_copy_deleted


def sync(
    gallery: Gallery,
    people: PeopleStore,
    collection: str,
    recognizer: RecognizerInfo,
    face_ids: Sequence[str],
) -> None:
    """Make the gallery hold each of these faces as its cluster's subject, or not at all."""
    enroll: dict[str, list[str]] = {}
    for face, state in people.subject_state(collection, face_ids).items():
        if state.enrolled is not None and state.enrolled[0] != state.wanted:
            gallery.delete_face(collection, state.enrolled[1])
            people.unlink(collection, face)
        elif state.enrolled is not None:
            continue
        if state.wanted is not None:
            enroll.setdefault(state.wanted, []).append(face)
    for subject, faces in enroll.items():
        rows = people.enrollable(collection, faces)
        # prob 0: discovery keeps no detection score; faces_in_image is the photo's face count.
        new = [NewFace(r.sha256, r.bbox, 0.0, r.faces_in_photo, r.vec, r.crop) for r in rows]
        stored = gallery.enroll(collection, recognizer, subject, new)
        # A photo this subject already had (enrolled by hand) is not linked: taking the discovered
        # face out must not delete what a person enrolled.
        people.link(
            collection, subject, [(r.face_id, s.id) for r, s in zip(rows, stored, strict=True) if s.new]
        )


def delete_enrolled_face(gallery: Gallery, people: PeopleStore, collection: str, face_id: str) -> bool:
    """Delete one enrolled face (False: none such); if discovery made it, its discovered face is
    taken out of the subject too, so that no link is left to a deleted face and no later sync
    enrolls it again."""
    if not gallery.delete_face(collection, face_id):
        return False
    enrolled_copy_deleted(people, collection, face_id)
    return True


def rename_subject(gallery: Gallery, people: PeopleStore, collection: str, old: str, new: str) -> int:
    """Rename a subject in the gallery (its faces; 0: no such subject); its cluster and links
    carry the new name."""
    faces = gallery.rename_subject(collection, old, new)
    if faces:
        people.subject_renamed(collection, old, new)
    return faces


def delete_subject(gallery: Gallery, people: PeopleStore, collection: str, subject: str) -> int:
    """Delete a subject from the gallery (its faces; 0: no such subject); its cluster keeps its
    faces, as a person grouped them, without the name."""
    deleted = gallery.delete_subject(collection, subject)
    if deleted:
        people.subject_deleted(collection, subject)
    return deleted


def delete_gallery(gallery: Gallery, people: PeopleStore, collection: str) -> bool:
    """Delete every subject of the collection's gallery (CompreFace's "delete all"), not the
    photos discovery holds: every cluster keeps its faces without a name."""
    deleted = gallery.delete_collection(collection)
    people.subject_deleted(collection, None)  # every subject
    return deleted
