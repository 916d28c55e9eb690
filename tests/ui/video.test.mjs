// The video view (api/ui/js/video.js): its pure parts, without a browser.
import assert from "node:assert/strict";
import { test } from "node:test";

import { clock, finished, progressText, timeInTrack, timelineRows, trackLabel, videoForm } from "../../api/ui/js/video.js";

const track = (number, start, end, subject = null, similarity = null) => ({
  track: number,
  start_s: start,
  end_s: end,
  frames: 3,
  best: { time_s: start, bbox: [0, 0, 10, 10], prob: 0.9, quality: 0.5, thumbnail_url: `/videos/v/tracks/${number}/thumbnail` },
  subject,
  similarity,
});

test("the upload carries the file and only the options that were set", async () => {
  const file = new File([new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112])], "door.mp4", { type: "video/mp4" });
  const form = videoForm(file, { fps: " 0.5 ", collection: "staff" });
  assert.deepEqual([...form.keys()], ["file", "fps", "collection"]);
  assert.equal(form.get("file").name, "door.mp4");
  assert.deepEqual(new Uint8Array(await form.get("file").arrayBuffer()), new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112]));
  assert.equal(form.get("fps"), "0.5");
  assert.deepEqual([...videoForm(file, { fps: "", collection: " " }).keys()], ["file"]);
  assert.equal(videoForm(file, { fps: 0 }).get("fps"), "0"); // 0: every frame, not the default
});

test("times read as a player shows them", () => {
  assert.deepEqual([0, 9.96, 59.97, 75.25, 3725].map(clock), ["0:00.0", "0:10.0", "1:00.0", "1:15.3", "1:02:05.0"]);
  assert.equal(clock(-1), "0:00.0");
});

test("progress counts segments, frames and tracks", () => {
  const video = { progress: { segments_done: 2, segments: 6, frames_done: 40, frames: 120 }, tracks: [track(0, 0, 1)] };
  assert.equal(progressText(video), "2 of 6 segments, 40 of 120 frames analysed, 1 track");
  assert.equal(progressText({ status: "queued" }), "0 of 0 segments, 0 of 0 frames analysed, 0 tracks");
});

test("a track is its subject with the similarity, or unknown", () => {
  assert.equal(trackLabel(track(0, 0, 1, "ann", 0.613)), "ann (0.61)");
  assert.equal(trackLabel(track(0, 0, 1)), "unknown");
});

test("the timeline places each track's bar over the video's length, in order of appearance", () => {
  const rows = timelineRows([track(1, 5, 7.5, "ann", 0.7), track(0, 0, 2.5), track(2, 9.99, 9.99)], 10);
  assert.deepEqual(rows.map((row) => row.track.track), [0, 1, 2]);
  assert.deepEqual(rows.map((row) => [row.left, row.width]), [[0, 25], [50, 25], [99.5, 0.5]]);
  assert.equal(rows[1].title, "0:05.0 – 0:07.5 (2.5 s)");
  assert.equal(rows[1].label, "ann (0.70)");
  // A partial result may know no duration yet: the tracks' own end is the scale then.
  assert.deepEqual(timelineRows([track(0, 1, 4)], null).map((row) => [row.left, row.width]), [[25, 75]]);
});

test("a click on a bar jumps to the time under the pointer, within the track", () => {
  const t = track(0, 4, 6);
  assert.equal(timeInTrack(t, 0), 4);
  assert.equal(timeInTrack(t, 0.5), 5);
  assert.equal(timeInTrack(t, 1.7), 6);
  assert.equal(timeInTrack(t, Number.NaN), 4);
});

test("a video is finished once done or failed", () => {
  assert.deepEqual(["queued", "running", "done", "failed"].map((status) => finished({ status })), [false, false, true, true]);
});
