"""The web page at /ui in a real browser (Debian's chromium driven by Playwright) against the real
system: the faces it draws are the API's, batches go as async jobs with progress, errors show
next to their photo, a face clicked on is enrolled and recognized in another photo, Retry-After
is honoured and the API key stays out of URLs.

Screenshots are kept in var/test-artifacts/ui/ (git-ignored) for a look after the run.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest
import requests
from PIL import Image
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    FilePayload,
    Locator,
    Page,
    Request,
    ViewportSize,
    expect,
    sync_playwright,
)

from deploy.launcher import Stack, stack
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from testkit.video import default_scene, make_video, portrait
from tests.client import b64, extract
from tests.faces import FACES_IN
from tests.localserver import LocalServer, Route

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "ui"
# Debian's chromium runs as root in CI containers (no sandbox there), with no GPU, and must not
# reach the network on its own (component updates, safe browsing).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # A fake camera (a moving test pattern) that needs no permission prompt, for the webcam test.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
TIMEOUT_MS = 30_000
IDEMPOTENCY_KEY = re.compile(r"^[0-9a-f]{32}$")
KEY = "ui-key-3f9a0c"
FLOWER_PORT = "5601"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "chromium is missing: make test installs it (scripts/install-system-deps.sh --browser)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page with what it logged and sent."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.requests.append(request)

    def posts(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.split("?")[0].endswith(path)]

    def readme_screenshot(self) -> Path:
        """The top of the page as the README shows it: scaled down, 128 colours (docs/ui.png)."""
        self.page.locator("header").scroll_into_view_if_needed()
        self.page.mouse.move(0, 0)  # no row highlighted
        shot = Image.open(io.BytesIO(self.page.screenshot()))
        size = (shot.width * 3 // 4, shot.height * 3 // 4)
        small = shot.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / "ui.png"
        small.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(target, optimize=True)
        return target

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / name
        self.page.screenshot(path=target, full_page=True)
        return target


@contextmanager
def _opened(browser: Browser, url: str) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.console_errors.append(f"uncaught: {error}"))
    page.on("request", watched.record)
    try:
        page.goto(f"{url}/ui")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        yield watched
    finally:
        context.close()


@pytest.fixture
def ui(browser: Browser, api: str) -> Iterator[Watched]:
    with _opened(browser, api) as watched:
        yield watched


def _api_faces(api: str, photo: bytes) -> list[dict[str, Any]]:
    """What the API answers for the photo with the page's default options."""
    answer = extract(api, [photo], api_ver="2", threshold=0.5, max_size=[640, 640], return_landmarks=True)
    assert answer.status_code == 200, answer.text
    faces: list[dict[str, Any]] = answer.json()["data"][0]["faces"]
    return faces


def _body(post: Request) -> dict[str, Any]:
    body = post.post_data_json
    assert isinstance(body, dict), post.post_data
    return body


def _drawn_boxes(page: Page) -> list[tuple[float, float, float, float]]:
    boxes = []
    rects = page.locator(".photo .overlay .face rect")
    for index in range(rects.count()):
        rect = rects.nth(index)
        x, y, w, h = (float(rect.get_attribute(name) or "nan") for name in ("x", "y", "width", "height"))
        boxes.append((x, y, x + w, y + h))
    return boxes


# Each face label's right and left ends, and those of the photo it is drawn on, in CSS pixels.
LABEL_EXTENTS = """() => [...document.querySelectorAll(".photo .overlay text")].map((text) => {
    const photo = text.closest("svg").getBoundingClientRect();
    const label = text.getBoundingClientRect();
    return [label.left, label.right, photo.left, photo.right];
})"""


def _labels_inside_their_photos(page: Page) -> None:
    """No face label runs past its photo's edges (over the faces table beside it)."""
    extents = page.evaluate(LABEL_EXTENTS)
    assert extents
    outside = [e for e in extents if e[0] < e[2] - 0.5 or e[1] > e[3] + 0.5]
    assert outside == [], outside


def test_page_draws_the_faces_the_api_finds_in_a_group_photo(ui: Watched, api: str) -> None:
    page = ui.page
    expect(page.locator("#worker-count")).to_have_text("1 worker online")
    photo = GROUP_PHOTOS["t1.jpg"]
    page.set_input_files("#files", str(photo))
    card = page.locator(".photo").first
    expect(card).to_have_attribute("data-faces", str(FACES_IN["t1.jpg"]))

    expected = _api_faces(api, photo.read_bytes())
    assert len(expected) == FACES_IN["t1.jpg"]
    drawn = _drawn_boxes(page)
    assert len(drawn) == len(expected)
    for box, face in zip(drawn, expected, strict=True):
        assert box == pytest.approx(face["bbox_float"], abs=0.01)
    # Five keypoints a face, one table row a face, and hover links row and box both ways.
    expect(page.locator(".photo .overlay .keypoint")).to_have_count(5 * len(expected))
    rows = card.locator(".faces tbody tr")
    expect(rows).to_have_count(len(expected))
    rows.nth(2).hover()
    expect(card.locator(".overlay .face").nth(2)).to_have_class(re.compile(r"\bhl\b"))
    card.locator(".overlay .face rect").nth(4).hover()
    expect(rows.nth(4)).to_have_class(re.compile(r"\bhl\b"))
    expect(rows.nth(2)).not_to_have_class(re.compile(r"\bhl\b"))
    _labels_inside_their_photos(page)

    # One synchronous /extract, api_ver 2, with an Idempotency-Key; flip only when checked.
    (post,) = ui.posts("/extract")
    body = _body(post)
    assert body["api_ver"] == "2" and "async" not in body and "flip" not in body
    assert IDEMPOTENCY_KEY.match(post.headers["idempotency-key"])
    ui.screenshot("group-photo.png")
    assert ui.console_errors == []


def test_options_reach_the_api_and_gender_age_and_106_landmarks_are_drawn(ui: Watched, api: str) -> None:
    page = ui.page
    page.select_option("select[name=landmarks]", "106")
    page.check("input[name=extract_ga]")
    page.check("input[name=flip]")
    page.fill("input[name=threshold]", "0.45")
    page.set_input_files("#files", str(GROUP_PHOTOS["yaoming.jpg"]))
    card = page.locator(".photo").first
    expect(card).to_have_attribute("data-faces", "1")
    expect(card.locator(".overlay .dense")).to_have_count(106)
    cells = card.locator(".faces tbody tr").first.locator("td")
    expect(cells.nth(4)).to_have_text(re.compile(r"^(female|male) \d\.\d\d$"))
    expect(cells.nth(3)).to_have_text(re.compile(r"^\d+$"))
    body = _body(ui.posts("/extract")[0])
    assert body["return_landmarks"] == "106" and body["extract_ga"] is True
    assert body["flip"] is True and body["threshold"] == 0.45
    assert ui.console_errors == []


def test_a_batch_goes_as_async_jobs_with_progress_and_long_polling(ui: Watched) -> None:
    page = ui.page
    names = ["gdp.jpg", "yaoming.jpg", "t1.jpg"]
    page.set_input_files("#files", [str(GROUP_PHOTOS[name]) for name in names])
    expect(page.locator("#progress-text")).to_have_text("3 of 3 done")
    for name in names:
        card = page.locator(".photo", has_text=name)
        expect(card).to_have_attribute("data-faces", str(FACES_IN[name]))
        expect(card.locator(".overlay .face")).to_have_count(FACES_IN[name])
    posts = ui.posts("/extract")
    assert len(posts) == 3
    assert all(_body(post)["async"] is True for post in posts)
    keys = {post.headers["idempotency-key"] for post in posts}
    assert len(keys) == 3 and all(IDEMPOTENCY_KEY.match(key) for key in keys)
    polls = [r.url for r in ui.requests if "/results/" in r.url]
    assert polls and all(re.search(r"/results/[0-9a-f]{32}\?wait=\d+$", url) for url in polls)
    ui.screenshot("batch.png")
    # At phone width nothing makes the page scroll sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ui.screenshot("phone.png")
    assert ui.console_errors == []


# Builds, in the page, a DataTransfer holding the photo (base64) as a file: what a drop or a paste carries.
TRANSFER = """([name, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
    return transfer;
}"""


def test_photos_can_be_dropped_pasted_and_taken_with_the_webcam(ui: Watched) -> None:
    page = ui.page
    photo = b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())
    dropped = page.evaluate_handle(TRANSFER, ["dropped.jpg", photo])
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    expect(page.locator(".photo", has_text="dropped.jpg")).to_have_attribute("data-faces", "1")
    pasted = page.evaluate_handle(TRANSFER, ["pasted.jpg", photo])
    page.evaluate(
        "(transfer) => document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: transfer}))", pasted
    )
    expect(page.locator(".photo", has_text="pasted.jpg")).to_have_attribute("data-faces", "1")
    # The fake camera shows a test pattern: a photo with no face, answered like any other.
    page.click("#webcam-open")
    expect(page.locator("#webcam-video")).to_have_js_property("readyState", 4)
    page.click("#webcam-snap")
    expect(page.locator("#webcam-dialog")).to_be_hidden()
    expect(page.locator(".photo", has_text="webcam")).to_have_attribute("data-faces", "0")
    assert ui.console_errors == []


def test_an_image_the_api_refuses_shows_its_error_next_to_it(ui: Watched, api: str) -> None:
    page = ui.page
    broken: FilePayload = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"this is not a photo"}
    photo: FilePayload = {
        "name": "yaoming.jpg",
        "mimeType": "image/jpeg",
        "buffer": GROUP_PHOTOS["yaoming.jpg"].read_bytes(),
    }
    expect(page.locator("#worker-count")).to_be_visible()  # /info, with the limits, has answered
    limit = requests.get(f"{api}/info", timeout=10).json()["limits"]["max_image_bytes"]
    huge: FilePayload = {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": bytes(limit + 1)}
    page.set_input_files("#files", [broken, photo, huge])
    failed = page.locator(".photo.failed")
    expect(failed).to_have_count(2)
    expect(failed.first).to_contain_text("broken.jpg")
    expect(failed.first.locator(".error")).to_have_text("not a recognised image format (invalid_image)")
    # Too large: said before sending it.
    most = f"the API takes at most {limit / 1e6:.1f} MB an image"
    expect(failed.last.locator(".error")).to_contain_text(most)
    assert not [post for post in ui.posts("/extract") if len(post.post_data_buffer or b"") > limit]
    expect(page.locator(".photo", has_text="yaoming.jpg")).to_have_attribute("data-faces", "1")
    # The browser itself may log the broken photo it could not show; nothing else.
    assert [e for e in ui.console_errors if "broken" not in e] == []


def _thumbnails_shown(page: Page) -> None:
    """Waits until every face of the "People found" grid shows its thumbnail (each is fetched
    after its group is drawn, and each one that arrives makes its group taller)."""
    expect(page.locator("#clusters .face:not(:has(img))")).to_have_count(0)


def _drag(page: Page, source: Locator, target: Locator) -> None:
    """Drags `source` onto the middle of `target` with a mouse that moves in steps.

    Playwright's `drag_to` moves once from the source to the target and releases, and in
    Chromium the drop is sometimes lost that way (CI saw a merge by dragging never happen).
    Moving in steps makes the browser send dragover events over the target before the release.
    """
    source.hover()
    page.mouse.down()
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    assert box is not None, "the drop target is not on the page"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()


def _mirrored(name: str, scale: float) -> bytes:
    """Another photo of the same people: the package photo mirrored left to right and rescaled."""
    image = np.ascontiguousarray(read_rgb(GROUP_PHOTOS[name])[:, ::-1])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return encode(np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)))


def _enroll_second_face(page: Page, card: Locator, collection: str, name: str) -> None:
    """Enroll the photo's second face (as the API orders them) into a new collection."""
    # A face is reachable from the keyboard too: Enter opens the dialog, Escape closes it.
    card.locator(".overlay .face").nth(1).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#enroll-dialog")).to_be_visible()
    expect(page.locator("#enroll-name")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#enroll-dialog")).to_be_hidden()
    # A new collection is chosen at once and created by its first face; until then photos are
    # only detected.
    page.fill("#new-collection", collection)
    page.click("#collection-form button[type=submit]")
    expect(page.locator("#collection")).to_have_value(collection)
    expect(page.locator("#subjects-state")).to_contain_text(f"{collection} is empty")
    expect(card).not_to_have_class(re.compile(r"\bfailed\b"))
    card.locator(".overlay .face rect").nth(1).click()
    expect(page.locator("#enroll-dialog")).to_be_visible()
    expect(page.locator("#enroll-collection")).to_have_value(collection)
    page.fill("#enroll-name", name)
    page.click("#enroll-submit")
    expect(page.locator("#enroll-dialog")).to_be_hidden()
    expect(page.locator("#collection")).to_have_value(collection)


def test_enroll_a_face_recognize_it_in_another_photo_verify_rename_and_delete(ui: Watched, api: str) -> None:
    page = ui.page
    expect(page.locator("#recognition")).to_be_visible()
    page.set_input_files("#files", str(GROUP_PHOTOS["t1.jpg"]))
    card = page.locator(".photo").first
    expect(card).to_have_attribute("data-faces", str(FACES_IN["t1.jpg"]))
    _enroll_second_face(page, card, "ui-friends", "person_b")
    # The photo is recognized again: that face, and only it, is now person_b.
    expect(card.locator(".identity.known")).to_have_count(1)
    expect(card.locator(".faces tbody tr").nth(1).locator(".identity")).to_have_text(
        re.compile(r"^person_b \(\d\.\d\d\)$")
    )
    ui.readme_screenshot()
    enrolled = requests.get(f"{api}/collections/ui-friends/subjects/person_b", timeout=10).json()
    assert len(enrolled["faces"]) == 1
    subject = page.locator(".subject[data-subject=person_b]")
    expect(subject.locator(".thumbs img")).to_have_count(1)

    # Another photo of the same people: person_b is found there, everyone else is unknown.
    mirrored: FilePayload = {
        "name": "t1-mirrored.jpg",
        "mimeType": "image/jpeg",
        "buffer": _mirrored("t1.jpg", 0.8),
    }
    page.set_input_files("#files", [mirrored])
    other = page.locator(".photo", has_text="t1-mirrored.jpg")
    expect(other).to_have_attribute("data-faces", str(FACES_IN["t1.jpg"]))
    expect(other.locator(".identity.known")).to_have_count(1)
    expect(other.locator(".identity.known")).to_have_text(re.compile(r"^person_b "))
    expect(other.locator(".identity.unknown")).to_have_count(FACES_IN["t1.jpg"] - 1)
    # The labels name people now (longer), on the photo and on its mirror image.
    _labels_inside_their_photos(page)
    ui.screenshot("recognized.png")

    # Verify: the photo of person_b's face against person_b.
    page.set_input_files("#verify-a", [mirrored])
    page.select_option("#verify-subject", "person_b")
    page.click("#verify-run")
    expect(page.locator("#verify-result")).to_have_text(re.compile(r"^Same person: similarity 0\.\d{3}"))
    expect(page.locator("#verify-a-svg rect")).to_have_count(1)

    # Rename (PATCH): the list and the API know the subject by its new name only.
    subject.get_by_role("button", name="Rename").click()
    page.get_by_label("New name for person_b").fill("person_c")
    subject.get_by_role("button", name="Save").click()
    subject = page.locator(".subject[data-subject=person_c]")
    expect(subject).to_have_count(1)
    expect(page.locator(".subject[data-subject=person_b]")).to_have_count(0)
    old_name = requests.get(f"{api}/collections/ui-friends/subjects/person_b", timeout=10)
    assert old_name.status_code == 404

    # Delete, after a confirmation; cancelling keeps the subject.
    subject.locator("button.danger").click()
    page.click("#confirm-cancel")
    expect(subject).to_have_count(1)
    subject.locator("button.danger").click()
    expect(page.locator("#confirm-text")).to_contain_text("person_c")
    page.click("#confirm-ok")
    expect(page.locator(".subject")).to_have_count(0)
    gone = requests.get(f"{api}/collections/ui-friends/subjects/person_c", timeout=10)
    assert gone.status_code == 404
    assert ui.console_errors == []


def test_people_found_groups_a_library_and_keeps_the_decisions_made_by_clicking_and_dragging(
    ui: Watched, api: str
) -> None:
    page = ui.page
    page.fill("#people-collection", "ui-library")
    photos: list[FilePayload] = [
        {"name": "t1.jpg", "mimeType": "image/jpeg", "buffer": GROUP_PHOTOS["t1.jpg"].read_bytes()},
        {"name": "t1 mirrored.jpg", "mimeType": "image/jpeg", "buffer": _mirrored("t1.jpg", 0.8)},
        {"name": "t1-small.jpg", "mimeType": "image/jpeg", "buffer": _mirrored("t1.jpg", 0.6)},
    ]
    page.set_input_files("#people-files", photos)
    clusters = page.locator("#clusters .cluster")
    expect(clusters).to_have_count(FACES_IN["t1.jpg"])  # one group per person, each in all 3 photos
    expect(page.locator("#clusters .face img")).to_have_count(3 * FACES_IN["t1.jpg"])
    ingested = ui.posts("/collections/ui-library/photos")
    assert len(ingested) == 1 and _body(ingested[0])["photo_ids"] == [
        "t1.jpg",
        "t1_mirrored.jpg",
        "t1-small.jpg",
    ]

    # Name a group, then click one of its faces and take it out.
    first = clusters.first
    cluster_id = first.get_attribute("data-cluster")
    named = page.locator(f'#clusters .cluster[data-cluster="{cluster_id}"]')
    named.get_by_label(f"Name for cluster {cluster_id}").fill("ann")
    named.get_by_role("button", name="Name", exact=True).click()
    expect(named.locator(".cluster-title strong")).to_have_text("ann (3 faces)")
    named.locator(".face").first.click()
    page.click("#people-take-out")
    expect(named.locator(".cluster-title strong")).to_have_text("ann (2 faces)")

    # Tick two other groups and merge them; mark another as not a person.
    others = page.locator("#clusters .cluster:not(.ignored)", has_text="Unnamed")
    others.nth(0).locator("input[type=checkbox]").check()
    others.nth(1).locator("input[type=checkbox]").check()
    page.click("#people-merge")
    expect(clusters).to_have_count(FACES_IN["t1.jpg"] - 1)
    others.first.get_by_role("button", name="Not a person").click()
    expect(page.locator("#clusters .cluster.ignored")).to_have_count(1)
    _thumbnails_shown(page)  # a thumbnail arriving mid-drag would move the groups under the mouse

    # Drag a group by its title onto another: merged into the one it was dropped on.
    dragged, onto = (others.nth(i).get_attribute("data-cluster") for i in (1, 2))
    group = page.locator(f'#clusters .cluster[data-cluster="{dragged}"]')
    _drag(page, group.locator(".cluster-title"), page.locator(f'#clusters .cluster[data-cluster="{onto}"]'))
    expect(clusters).to_have_count(FACES_IN["t1.jpg"] - 2)
    _thumbnails_shown(page)
    merges = ui.posts(f"/collections/ui-library/clusters/{onto}/merge")
    assert [_body(post) for post in merges] == [{"clusters": [int(cast(str, dragged))]}]
    # Drag a face onto another group: it moves there (that group's face of its photo leaves).
    source, target = (others.nth(i).get_attribute("data-cluster") for i in (0, 1))
    source_group = page.locator(f'#clusters .cluster[data-cluster="{source}"]')
    face = source_group.locator(".face").first
    face_id = face.get_attribute("data-face")
    _drag(page, face, page.locator(f'#clusters .cluster[data-cluster="{target}"]'))
    expect(source_group.locator(".cluster-title strong")).to_have_text("Unnamed (2 faces)")
    expect(
        page.locator(f'#clusters .cluster[data-cluster="{target}"] .face[data-face="{face_id}"]')
    ).to_have_count(1)

    listed = requests.get(f"{api}/collections/ui-library/clusters", timeout=10).json()
    assert [(c["subject"], c["size"]) for c in listed["clusters"] if c["subject"]] == [("ann", 2)]
    assert sum(c["ignored"] for c in listed["clusters"]) == 1
    assert ui.console_errors == []


PLAYER_TIME = "() => document.querySelector('#video-player').currentTime"
# Chromium reports a media element's currentTime in whole microseconds: a seek to 5.122244489
# reads back as 5.122244.
PLAYER_TICK = 1e-5
# How far the player may have played on from a seek when the test reads it (a loaded CI machine
# can take a second to answer), well short of any other moment the test clicks.
PLAYED_ON_S = 2.0


def test_a_video_s_tracks_show_on_a_timeline_and_a_click_plays_it_from_that_moment(
    ui: Watched, api: str, tmp_path: Path
) -> None:
    """The test scene (testkit/video.py: 7 tracks of 6 people), t1-5 enrolled: uploaded from the
    page, its tracks drawn with their thumbnails, t1-5's named, and clicks seek the player."""
    truth = make_video(tmp_path / "scene.mp4", default_scene())
    enrolled = requests.post(
        f"{api}/collections/ui-video/subjects/t1-5/faces",
        json={"images": {"data": [b64(portrait("t1-5"))]}},
        timeout=60,
    )
    assert enrolled.status_code == 201, enrolled.text
    page = ui.page
    page.set_input_files(
        "#video-file",
        {"name": "scene.mp4", "mimeType": "video/mp4", "buffer": (tmp_path / "scene.mp4").read_bytes()},
    )
    page.fill("#video-fps", "2")
    page.fill("#video-collection", "ui-video")
    page.click("#video-form button[type=submit]")
    timeline = page.locator("#video-timeline")
    expect(timeline).to_have_attribute("data-status", "done")
    rows = timeline.locator(".track")
    expect(rows).to_have_count(len(truth.tracks()))
    expect(timeline.locator(".track-face img")).to_have_count(len(truth.tracks()))
    known = timeline.locator(".track-who.known")
    expect(known).to_have_count(1)
    expect(known).to_contain_text("t1-5 (")
    (post,) = ui.posts("/videos")
    assert post.headers["content-type"].startswith("multipart/form-data")
    # The options reached the service (the browser's multipart body is not readable here).
    answer = post.response()
    assert answer is not None and answer.status == 202
    video = requests.get(f"{api}/videos/{answer.json()['id']}", timeout=10).json()
    assert video["collection"] == "ui-video" and video["progress"]["frames"] == 12  # 6 s at 2 fps

    # t1-5's face: the player jumps to its best frame, inside its shot (1.5 s to 2.5 s).
    timeline.locator(".track", has=page.locator(".track-who.known")).locator(".track-face").click()
    player = page.locator("#video-player")
    best = float(player.get_attribute("data-seeked-to") or "nan")
    assert 1.5 <= best < 2.5
    assert best - PLAYER_TICK <= page.evaluate(PLAYER_TIME) < best + PLAYED_ON_S  # it plays on from there
    # The last track's bar (4.0 s to 5.5 s at 2 fps), clicked at three quarters of its width.
    bar = rows.last.locator(".track-bar")
    box, lane = bar.bounding_box(), rows.last.locator(".track-lane").bounding_box()
    assert box is not None and lane is not None
    # The bar spans its track's share of the video's length: 4.0 s to 5.5 s of 6 s.
    assert box["x"] - lane["x"] == pytest.approx(lane["width"] * 4 / 6, abs=2)
    assert box["width"] == pytest.approx(lane["width"] * 1.5 / 6, abs=2)
    bar.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    moment = float(player.get_attribute("data-seeked-to") or "nan")
    assert 4.9 < moment < 5.3, moment
    assert moment - PLAYER_TICK <= page.evaluate(PLAYER_TIME) < moment + PLAYED_ON_S
    ui.screenshot("video.png")
    assert ui.console_errors == []


def _served(payload: bytes, content_type: str) -> Route:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return answer


def test_a_page_on_another_origin_cannot_enroll_through_the_browser(browser: Browser, api: str) -> None:
    """Issue 24: a no-cors multipart fetch goes without a preflight; the API must refuse it."""
    target = f"{api}/collections/ui-csrf/subjects/ceo/faces"
    script = f"""
      const photo = await (await fetch("/photo.jpg")).blob();
      const form = new FormData();
      form.append("file", photo, "ceo.jpg");
      await fetch("{target}", {{method: "POST", mode: "no-cors", body: form}});
    """
    page_html = f"<!doctype html><title>elsewhere</title><script type=module>{script}</script>"
    with LocalServer() as elsewhere:  # another port: another origin, the same site
        elsewhere.routes["/"] = _served(page_html.encode(), "text/html")
        elsewhere.routes["/photo.jpg"] = _served(GROUP_PHOTOS["yaoming.jpg"].read_bytes(), "image/jpeg")
        context = browser.new_context()
        try:
            page = context.new_page()
            with page.expect_response(target, timeout=TIMEOUT_MS) as answered:
                page.goto(elsewhere.url("/"))
            sent = answered.value
            # With keys off only the origin check answers 403 (an opaque answer's body cannot
            # be read, not even by the test driver).
            assert sent.status == 403, sent.status
        finally:
            context.close()
    listed = requests.get(f"{api}/collections/ui-csrf/subjects", timeout=10)
    assert listed.status_code == 404 and listed.json()["code"] == "collection_not_found"


def test_the_api_docs_render_and_try_it_out_works_under_their_csp(browser: Browser, api: str) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    console: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: console.append(f"uncaught: {error}"))
        answer = page.goto(f"{api}/docs")
        assert answer is not None and "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        expect(page.locator(".opblock-summary-path[data-path='/extract']")).to_be_visible()
        # A DELETE through Try it out: Swagger UI's fetch is same-origin, so it passes the origin
        # check and gets the API's own answer (no such collection).
        path = page.locator(".opblock-summary-path[data-path='/collections/{collection}']")
        block = page.locator(".opblock-delete", has=path)
        block.locator(".opblock-summary").click()
        block.get_by_role("button", name="Try it out").click()
        block.locator("input[placeholder='collection']").fill("docs-none")
        block.get_by_role("button", name="Execute").click()
        expect(block.locator(".live-responses-table tbody .response-col_status")).to_have_text("404")
        expect(block.locator(".live-responses-table")).to_contain_text("collection_not_found")
    finally:
        context.close()
    # Only the 404 asked for; a blocked script or style would be logged as a CSP violation.
    assert all("status of 404" in line for line in console), console


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API keys on and room for one queued job, no worker yet: the second job is refused (503
    with Retry-After) until a worker drains the queue. Flower is said to be on another port."""
    with stack(
        Path(tmp_path_factory.mktemp("ui-keys")),
        api_keys=KEY,
        max_queue_depth="1",
        retry_after_s="1",
        flower_port=FLOWER_PORT,
    ) as running:
        running.start_api()
        yield running


def test_api_key_is_sent_as_a_header_and_retry_after_is_honoured(browser: Browser, keyed: Stack) -> None:
    with _opened(browser, keyed.api_url) as ui:
        page = ui.page
        expect(page.locator("#status-body")).to_contain_text("This API needs a key")
        expect(page.locator("#flower-link")).to_be_hidden()  # where Flower is comes with /info
        page.fill("#api-key", KEY)
        page.click("#key-form button[type=submit]")
        expect(page.locator("#status-body")).to_contain_text("No worker is online")
        flower = f"http://127.0.0.1:{FLOWER_PORT}/"
        expect(page.locator("#flower-link")).to_have_attribute("href", flower)
        # A job of another client fills the queue: both photos wait out Retry-After, again and again.
        photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
        body = {"images": {"data": [b64(photo)]}, "async": True}
        queued = requests.post(f"{keyed.api_url}/extract", json=body, headers={"X-API-Key": KEY}, timeout=30)
        assert queued.status_code == 202, queued.text
        page.set_input_files("#files", [str(GROUP_PHOTOS["yaoming.jpg"]), str(GROUP_PHOTOS["gdp.jpg"])])
        expect(page.locator(".photo-status", has_text="retrying in 1 s")).to_have_count(2)
        keyed.start_worker(extra_env={"FACEREST_ATTRIBUTES": ""})
        expect(page.locator("#progress-text")).to_have_text("2 of 2 done", timeout=90_000)
        expect(page.locator(".photo", has_text="gdp.jpg")).to_have_attribute("data-faces", "5")
        # A refused try and its retry carry the same Idempotency-Key: the retry can never
        # queue the job twice.
        by_key: dict[str, int] = {}
        for post in ui.posts("/extract"):
            by_key[post.headers["idempotency-key"]] = by_key.get(post.headers["idempotency-key"], 0) + 1
        assert len(by_key) == 2 and min(by_key.values()) >= 2
        assert page.evaluate("sessionStorage.getItem('facerest.apiKey')") == KEY
        assert all(KEY not in r.url for r in ui.requests)
        assert all(r.headers.get("x-api-key") == KEY for r in ui.posts("/extract"))
        # Only the refusals the test set up: 401 before the key was typed, 503 while the queue was full.
        assert all(re.search(r"status of (401|503)", e) for e in ui.console_errors), ui.console_errors


def test_the_page_needs_no_key_runs_only_its_own_scripts_and_serves_only_its_folder(keyed: Stack) -> None:
    page = requests.get(f"{keyed.api_url}/ui", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    script = requests.get(f"{keyed.api_url}/ui/js/main.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    root = requests.get(f"{keyed.api_url}/", timeout=10, allow_redirects=False)
    assert root.status_code == 302 and root.headers["Location"].endswith("/ui")
    # The package's code next to the page's folder is not served, nor any data without a key.
    # (A client may resolve "..": then the path is no route at all, 401 with keys on.)
    for path in ("/ui/../routes/ui.py", "/ui/%2e%2e/routes/ui.py", "/ui/..%2froutes/ui.py", "/ui/nothing.js"):
        response = requests.get(f"{keyed.api_url}{path}", timeout=10)
        assert response.status_code in {401, 404} and "Blueprint" not in response.text, path
    assert requests.get(f"{keyed.api_url}/info", timeout=10).status_code == 401
