"""Videos for the tests and the benchmarks, made with PyAV from the package photos, with known truth:
for every frame, which person (a stable label) is where (their face's box).

A scene is a list of shots (hard cuts between them, each cut a keyframe); in a shot each person's
face crop moves and scales linearly from a start to an end. Boxes are SCRFD's boxes on the source
photos (measured once, below) carried through the same scale and shift as the pixels, so a
detector on the video finds about the same boxes. Every coordinate is in *display* px: the frame
as a player shows it, after the rotation the file's metadata asks for (FFmpeg's display matrix).

Also: a truncated copy of a video and a file that is not a video, for the error paths.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from av.video.frame import PictureType
from numpy.typing import NDArray

from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.models.postprocess import box_iou

Box = tuple[float, float, float, float]  # x1, y1, x2, y2


@dataclass(frozen=True)
class Person:
    photo: str  # a key of GROUP_PHOTOS
    box: Box  # SCRFD-500M's face box in that photo (640 px input, full-size px)


# The six faces of t1.jpg left to right (t1-0 leftmost, the order tests/integration/
# test_recognition.py enrolls them in) and Yao Ming: measured once with the worker's SCRFD.
PEOPLE: dict[str, Person] = {
    "t1-0": Person("t1.jpg", (55.6, 260.8, 168.6, 397.9)),
    "t1-1": Person("t1.jpg", (270.0, 144.9, 371.9, 270.3)),
    "t1-2": Person("t1.jpg", (463.5, 266.5, 572.7, 415.4)),
    "t1-3": Person("t1.jpg", (745.3, 342.2, 847.3, 480.1)),
    "t1-4": Person("t1.jpg", (906.0, 59.5, 1011.1, 206.3)),
    "t1-5": Person("t1.jpg", (1130.3, 272.8, 1227.3, 400.6)),
    "yaoming": Person("yaoming.jpg", (71.5, 72.2, 177.8, 214.0)),
}
# The pasted crop around a face, as a multiple of its box's sides: a loose portrait with hair and
# chin, and no neighbour of the group photo in it.
CROP_MARGIN = 1.6


@dataclass(frozen=True)
class Appearance:
    """One person in one shot: the face box's centre and height (display px) move linearly from
    the shot's first frame to its last."""

    label: str
    start: tuple[float, float]
    end: tuple[float, float]
    height: tuple[float, float]


@dataclass(frozen=True)
class Shot:
    frames: int
    people: tuple[Appearance, ...]


Rotation = Literal[0, 90, 180, 270]
Codec = Literal["h264", "mpeg4"]


@dataclass(frozen=True)
class Scene:
    """What to film. ``rotation``: degrees clockwise a player turns the stored frames to show
    them (a phone's portrait video stores landscape frames with rotation 90); the file's display
    matrix says so, and PyAV's ``VideoFrame.rotation`` reads it back as ``-rotation``.
    ``keyframe_every``: a keyframe every so many frames, counted from the first, besides those at
    the cuts (0: keyframes only at cuts)."""

    size: tuple[int, int]  # display width, height (even)
    fps: int
    shots: tuple[Shot, ...]
    rotation: Rotation = 0
    keyframe_every: int = 0
    codec: Codec = "h264"

    @property
    def frames(self) -> int:
        return sum(shot.frames for shot in self.shots)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True)
class FaceTruth:
    label: str
    box: Box  # display px


@dataclass(frozen=True)
class TruthTrack:
    """One person's uninterrupted run of frames: what a tracker should report as one track."""

    label: str
    first: int  # frame index
    last: int
    fps: int

    @property
    def start_s(self) -> float:
        return self.first / self.fps

    @property
    def end_s(self) -> float:
        return self.last / self.fps

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class VideoTruth:
    scene: Scene
    faces: tuple[tuple[FaceTruth, ...], ...]  # per frame, in display order
    keyframes: tuple[int, ...]  # frame indexes the encoder was told to make keyframes
    shot_starts: tuple[int, ...]  # frame indexes of the cuts, 0 first

    @property
    def frames(self) -> int:
        return len(self.faces)

    @property
    def duration_s(self) -> float:
        return self.scene.duration_s

    def frame_at(self, time_s: float) -> int:
        """The frame shown at ``time_s`` (a frame lasts from its timestamp to the next's)."""
        return min(self.frames - 1, max(0, int(time_s * self.scene.fps + 1e-6)))

    def tracks(self) -> list[TruthTrack]:
        """Each person's appearance in each shot, in order of their first frame: a person seen in
        two shots has two tracks (a cut moves them; no tracker should follow a face across it)."""
        ends = (*self.shot_starts[1:], self.frames)
        runs = [
            TruthTrack(label, start, end - 1, self.scene.fps)
            for start, end in zip(self.shot_starts, ends, strict=True)
            for label in dict.fromkeys(face.label for face in self.faces[start])
        ]
        return sorted(runs, key=lambda run: (run.first, run.label))


def default_scene(rotation: Rotation = 0, codec: Codec = "h264") -> Scene:
    """6 s at 10 fps, 640x360 (display), four shots, five people, one of them in two shots and two
    of them crossing: the tests' video."""
    width, height = (640, 360) if rotation in (0, 180) else (360, 640)
    sx, sy = width / 640, height / 360  # the same paths in a portrait frame, squeezed
    # Faces stay inside the frame (at most 150 px high with the crop's margin: 240 px).

    def at(x: float, y: float) -> tuple[float, float]:
        return (x * sx, y * sy)

    def size(a: float, b: float) -> tuple[float, float]:
        return (a * min(sx, sy), b * min(sx, sy))

    shots = (
        Shot(15, (Appearance("t1-0", at(140, 180), at(300, 170), size(90, 110)),
                  Appearance("t1-3", at(500, 120), at(480, 240), size(80, 80)))),
        Shot(10, (Appearance("t1-5", at(320, 180), at(320, 180), size(110, 150)),)),
        Shot(15, (Appearance("t1-0", at(200, 200), at(220, 190), size(100, 100)),
                  Appearance("yaoming", at(460, 180), at(420, 170), size(100, 90)))),
        Shot(20, (Appearance("t1-1", at(120, 100), at(520, 100), size(80, 80)),
                  Appearance("t1-4", at(520, 260), at(120, 260), size(80, 80)))),
    )  # fmt: skip
    return Scene((width, height), 10, shots, rotation=rotation, codec=codec)


def long_scene(seconds: float, fps: int = 10, keyframe_every_s: float = 2.0) -> Scene:
    """The default scene's shots over and over for ``seconds`` (the benchmarks' long video), with a
    keyframe every ``keyframe_every_s`` too, so that it splits into many segments."""
    base = default_scene()
    frames = round(seconds * fps)
    shots: list[Shot] = []
    while sum(shot.frames for shot in shots) < frames:
        for shot in base.shots:
            left = frames - sum(s.frames for s in shots)
            if left <= 0:
                break
            scaled = max(1, round(shot.frames * fps / base.fps))
            shots.append(Shot(min(scaled, left), shot.people))
    return Scene(base.size, fps, tuple(shots), keyframe_every=max(1, round(keyframe_every_s * fps)))


@dataclass(frozen=True)
class _Portrait:
    """A person's face crop and their face box in the crop's px."""

    pixels: NDArray[np.uint8]
    box: NDArray[np.float64]


def _portrait(label: str) -> _Portrait:
    person = PEOPLE[label]
    photo = read_rgb(GROUP_PHOTOS[person.photo])
    box = np.array(person.box, np.float64)
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) * CROP_MARGIN / 2
    x1, y1 = np.maximum(0, np.floor(centre - half)).astype(int)
    x2, y2 = np.minimum([photo.shape[1], photo.shape[0]], np.ceil(centre + half)).astype(int)
    pixels = np.ascontiguousarray(photo[y1:y2, x1:x2])
    return _Portrait(pixels, box - np.array([x1, y1, x1, y1], np.float64))


def portrait(label: str) -> bytes:
    """A JPEG of one person: the crop pasted into the videos, to enroll them with."""
    return encode(_portrait(label).pixels)


def _background(size: tuple[int, int]) -> NDArray[np.uint8]:
    """A soft diagonal gradient: something for the encoder's motion search besides the faces."""
    width, height = size
    ramp = np.add.outer(np.linspace(0, 60, height), np.linspace(0, 60, width)) + 70
    return np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _paste(
    canvas: NDArray[np.uint8], portrait: _Portrait, centre: tuple[float, float], face_height: float
) -> Box:
    """Paste ``portrait`` scaled so its face box is ``face_height`` px high, centred on ``centre``
    (rounded to whole px); returns the face box where it landed."""
    crop_h, crop_w = portrait.pixels.shape[:2]
    scale = face_height / float(portrait.box[3] - portrait.box[1])
    new_w, new_h = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
    sx, sy = new_w / crop_w, new_h / crop_h  # the scales actually applied, per axis
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(portrait.pixels, (new_w, new_h), interpolation=interpolation)
    box = portrait.box * np.array([sx, sy, sx, sy])
    left = round(centre[0] - float(box[0] + box[2]) / 2)
    top = round(centre[1] - float(box[1] + box[3]) / 2)
    height, width = canvas.shape[:2]
    assert left >= 0 and top >= 0 and left + new_w <= width and top + new_h <= height, (
        f"a face crop of {new_w}x{new_h} at ({left}, {top}) leaves the {width}x{height} frame"
    )
    canvas[top : top + new_h, left : left + new_w] = scaled
    x1, y1, x2, y2 = (box + np.array([left, top, left, top])).tolist()
    return (x1, y1, x2, y2)


def render(scene: Scene) -> Iterator[tuple[NDArray[np.uint8], tuple[FaceTruth, ...]]]:
    """Each frame as displayed (RGB) and the faces in it."""
    portraits = {a.label: _portrait(a.label) for shot in scene.shots for a in shot.people}
    background = _background(scene.size)
    for shot in scene.shots:
        for index in range(shot.frames):
            t = index / (shot.frames - 1) if shot.frames > 1 else 0.0
            canvas = background.copy()
            faces = tuple(
                FaceTruth(
                    a.label,
                    _paste(
                        canvas,
                        portraits[a.label],
                        (_lerp(a.start[0], a.end[0], t), _lerp(a.start[1], a.end[1], t)),
                        _lerp(*a.height, t),
                    ),
                )
                for a in shot.people
            )
            yield canvas, faces


def _stored(display: NDArray[np.uint8], rotation: Rotation) -> NDArray[np.uint8]:
    """The frame as the file stores it: turned back (counter-clockwise) by the display rotation."""
    return np.ascontiguousarray(np.rot90(display, k=rotation // 90))


def displayed(stored: NDArray[np.uint8], frame_rotation: int) -> NDArray[np.uint8]:
    """A decoded frame as a player shows it, from PyAV's ``VideoFrame.rotation`` (FFmpeg's
    display matrix angle, counter-clockwise): turned clockwise by ``-frame_rotation``."""
    return np.ascontiguousarray(np.rot90(stored, k=round(frame_rotation / 90) % 4))


def make_video(path: Path, scene: Scene | None = None, faststart: bool = False) -> VideoTruth:
    """Film ``scene`` (default: default_scene()) into ``path`` (an MP4) and return what is in it.
    ``faststart``: the index (moov) before the frames, as for streaming; by default it is written
    last, so a truncated copy of the file has none."""
    scene = scene or default_scene()
    width, height = scene.size
    stored_w, stored_h = (width, height) if scene.rotation in (0, 180) else (height, width)
    shot_starts = tuple(int(x) for x in np.cumsum([0, *(shot.frames for shot in scene.shots[:-1])]))
    keyframes = set(shot_starts)
    if scene.keyframe_every:
        keyframes.update(range(0, scene.frames, scene.keyframe_every))
    faces: list[tuple[FaceTruth, ...]] = []
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        stream = _add_stream(container, scene)
        stream.width, stream.height = stored_w, stored_h
        if scene.rotation:
            stream.set_display_rotation(-scene.rotation)
        for index, (pixels, truth) in enumerate(render(scene)):
            frame = av.VideoFrame.from_ndarray(_stored(pixels, scene.rotation), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, scene.fps)
            # Forced here and nowhere else (the encoder's own scene-cut and interval keyframes are
            # off): the truth's keyframes are the file's.
            frame.pict_type = PictureType.I if index in keyframes else PictureType.NONE
            container.mux(stream.encode(frame))
            faces.append(truth)
        container.mux(stream.encode(None))
    return VideoTruth(scene, tuple(faces), tuple(sorted(keyframes)), shot_starts)


def _add_stream(container: av.container.OutputContainer, scene: Scene) -> av.VideoStream:
    rate = Fraction(scene.fps)
    if scene.codec == "h264":
        # One thread and no scene-cut detection: the same bytes on every run and machine.
        options = {"preset": "ultrafast", "crf": "20", "x264-params": "scenecut=0:keyint=100000:threads=1"}
        stream = container.add_stream("libx264", rate=rate, options=options)
    else:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.bit_rate = 2_000_000
        stream.codec_context.gop_size = 100_000
        stream.thread_count = 1
    stream.pix_fmt = "yuv420p"
    return stream


def truncated_copy(source: Path, dest: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``source``'s bytes: an upload cut off mid-way."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def not_a_video(path: Path) -> Path:
    """A file FFmpeg finds no format in (a still image would not do: FFmpeg reads a JPEG as a
    one-frame video)."""
    path.write_bytes(b"facerest: this is a text file, not a video.\n" * 100)
    return path


def boxes_of(faces: Sequence[FaceTruth]) -> NDArray[np.float64]:
    return np.array([face.box for face in faces], np.float64).reshape(-1, 4)


@dataclass(frozen=True)
class FoundTrack:
    """What a tracker reported for one track (the service's track, in these terms)."""

    start_s: float
    end_s: float
    best_time_s: float
    best_box: Box  # display px, at best_time_s
    subject: str | None = None


@dataclass(frozen=True)
class TrackingScore:
    """A tracker's tracks against the truth's, each found track matched by its best frame (the
    truth face its best box overlaps most, IoU >= MATCH_IOU, at that time).

    ``fragments``: tracks beyond the first for a truth track (a person split in pieces);
    ``switches``: tracks that run past their truth track's span by more than the tolerance (they
    followed another face, or across a cut); ``misnamed``: tracks named as someone else (with a
    collection whose subjects carry the labels as names)."""

    truth_tracks: int
    found_tracks: int
    matched: dict[str, int]  # "label@first frame" -> found tracks matched to it
    fragments: int
    missed: int
    switches: int
    false_tracks: int
    named: int
    misnamed: int

    @property
    def tracks_per_person(self) -> float:
        """Found tracks per truth track seen at all (1.0: each person once per shot)."""
        seen = [count for count in self.matched.values() if count]
        return sum(seen) / len(seen) if seen else 0.0


MATCH_IOU = 0.5


def score_tracks(truth: VideoTruth, found: Sequence[FoundTrack], tolerance_s: float) -> TrackingScore:
    """How ``found`` tracks ``truth``; ``tolerance_s``: how far a track's ends may pass its truth
    track's (one analysed frame's interval: the tracker sees only those frames)."""
    truth_tracks = truth.tracks()
    matched = {f"{t.label}@{t.first}": 0 for t in truth_tracks}
    switches = false_tracks = named = misnamed = 0
    for track in found:
        frame = truth.frame_at(track.best_time_s)
        faces = truth.faces[frame]
        ious = box_iou(np.array([track.best_box], np.float64), boxes_of(faces))[0]
        overlaps = [(float(iou), face.label) for iou, face in zip(ious, faces, strict=True)]
        iou, label = max(overlaps, default=(0.0, ""))
        if iou < MATCH_IOU:
            false_tracks += 1
            continue
        (own,) = [t for t in truth_tracks if t.label == label and t.first <= frame <= t.last]
        matched[f"{own.label}@{own.first}"] += 1
        end_s = (own.last + 1) / own.fps  # the last frame lasts until the next one
        if track.start_s < own.start_s - tolerance_s or track.end_s > end_s + tolerance_s:
            switches += 1
        if track.subject is not None:
            named += 1
            misnamed += track.subject != label
    return TrackingScore(
        truth_tracks=len(truth_tracks),
        found_tracks=len(found),
        matched=matched,
        fragments=sum(max(0, count - 1) for count in matched.values()),
        missed=sum(1 for count in matched.values() if count == 0),
        switches=switches,
        false_tracks=false_tracks,
        named=named,
        misnamed=misnamed,
    )
