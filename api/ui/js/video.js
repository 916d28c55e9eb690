// "Video": who appears in a video, when and for how long (docs/video.md). The chosen file is
// uploaded to POST /videos and followed with GET /videos/{id}?wait=N; while the workers analyse
// its segments, a bar shows the progress and the timeline shows the tracks found so far. Each
// track is a row: its best face's thumbnail, who it is, and a bar over the video's length; a
// click on the bar or the thumbnail jumps the player to that moment. The player plays the file
// the user chose, from a blob: URL: the video never comes back from the API.

import { ApiError, blobUrl, call, path } from "./api.js";
import { element } from "./helpers.js";

// Each GET waits this long at most for the video to finish: the progress shown is at most this old.
export const POLL_S = 1;

// The upload: the file and the options the user set (an empty one is the service's default).
export function videoForm(file, { fps = "", collection = "" } = {}) {
  const form = new FormData();
  form.append("file", file, file.name || "video");
  if (String(fps).trim() !== "") form.append("fps", String(fps).trim());
  if (String(collection).trim() !== "") form.append("collection", String(collection).trim());
  return form;
}

// A time in the video as a player shows it: m:ss.s (h:mm:ss.s past an hour).
export function clock(seconds) {
  const tenths = Math.round(Math.max(0, Number(seconds) || 0) * 10);
  const hours = Math.floor(tenths / 36000);
  const minutes = Math.floor((tenths % 36000) / 600);
  const rest = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

// The progress line: segments and frames done, tracks so far.
export function progressText(video) {
  const p = video.progress || {};
  const tracks = (video.tracks || []).length;
  return `${p.segments_done ?? 0} of ${p.segments ?? 0} segments, ${p.frames_done ?? 0} of ${p.frames ?? 0} frames analysed, ${tracks} track${tracks === 1 ? "" : "s"}`;
}

// Who a track is: its subject and similarity, or unknown.
export function trackLabel(track) {
  if (track.subject === null || track.subject === undefined) return "unknown";
  const similarity = track.similarity === null || track.similarity === undefined ? "" : ` (${Number(track.similarity).toFixed(2)})`;
  return `${track.subject}${similarity}`;
}

// The timeline's rows, in order of appearance: where each track's bar starts and how wide it is,
// as percentages of the video's length (a track of one frame still gets a visible sliver).
export function timelineRows(tracks, durationS) {
  const duration = Math.max(Number(durationS) || 0, ...tracks.map((t) => t.end_s), 1e-9);
  return [...tracks]
    .sort((a, b) => a.start_s - b.start_s || a.track - b.track)
    .map((track) => {
      const left = (100 * track.start_s) / duration;
      const width = Math.max(0.5, (100 * (track.end_s - track.start_s)) / duration);
      return {
        track,
        left: Math.min(left, 99.5),
        width: Math.min(width, 100 - Math.min(left, 99.5)),
        label: trackLabel(track),
        title: `${clock(track.start_s)} – ${clock(track.end_s)} (${(track.end_s - track.start_s).toFixed(1)} s)`,
      };
    });
}

// Where a click on a track's bar jumps: the time under the pointer (fraction 0-1 across the
// bar), within the track.
export function timeInTrack(track, fraction) {
  const f = Math.min(1, Math.max(0, Number(fraction) || 0));
  return track.start_s + f * (track.end_s - track.start_s);
}

export const finished = (video) => video.status === "done" || video.status === "failed";

export class VideoView {
  // elements (main.js finds them): {form, file: <input type=file>, fps, collection: <input>s,
  // cancel: <button>, state, progress: <progress>, player: <video>, timeline: <ol>}.
  constructor(elements) {
    this.el = elements;
    this.videoId = null;
    this.playerUrl = null;
    this.thumbnails = new Map(); // thumbnail_url + best time -> a promise of its blob: URL
    this.shown = ""; // the tracks drawn last, as JSON: the timeline is rebuilt only when they change
    this.run = 0; // a new upload or a cancel ends the previous run's polling
    this.wire();
  }

  wire() {
    this.el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = this.el.file.files[0];
      if (file) this.analyse(file);
    });
    this.el.cancel.addEventListener("click", () => this.cancel());
  }

  say(text) {
    this.el.state.textContent = text;
  }

  seek(seconds) {
    this.el.player.currentTime = seconds;
    this.el.player.dataset.seekedTo = String(seconds); // what the browser test reads
    this.el.player.play().catch(() => {}); // autoplay rules may refuse: the jump stays
  }

  reset() {
    this.run += 1;
    for (const pending of this.thumbnails.values()) pending.then((url) => url && URL.revokeObjectURL(url));
    this.thumbnails.clear();
    this.shown = "";
    this.el.timeline.replaceChildren();
    this.el.progress.value = 0;
    this.videoId = null;
    this.el.cancel.hidden = true;
  }

  async analyse(file) {
    this.reset();
    const run = this.run;
    if (this.playerUrl) URL.revokeObjectURL(this.playerUrl);
    this.playerUrl = URL.createObjectURL(file);
    this.el.player.src = this.playerUrl;
    this.el.player.hidden = false;
    this.say(`Uploading ${file.name}…`);
    let video;
    try {
      const form = videoForm(file, { fps: this.el.fps.value, collection: this.el.collection.value });
      ({ data: video } = await call("POST", "/videos", form));
      this.videoId = video.id;
      this.el.cancel.hidden = false;
      for (;;) {
        ({ data: video } = await call("GET", `${path("videos", video.id)}?wait=${POLL_S}`));
        if (run !== this.run) return; // cancelled, or another video chosen
        this.show(video);
        if (finished(video)) break;
      }
    } catch (error) {
      if (run === this.run) this.say(error.readable || String(error));
      return;
    }
    this.el.cancel.hidden = true;
    if (video.status === "failed") {
      const problem = new ApiError(0, video.error?.code || "failed", video.error?.message || "the video failed");
      this.say(problem.readable);
    }
  }

  show(video) {
    const p = video.progress || {};
    this.el.progress.max = Math.max(1, p.segments || 0);
    this.el.progress.value = p.segments_done || 0;
    this.say(`${video.status === "done" ? "Done" : "Analysing"}: ${progressText(video)}`);
    const shown = JSON.stringify([video.tracks, video.duration_s]);
    if (shown !== this.shown) {
      this.shown = shown;
      const rows = timelineRows(video.tracks || [], video.duration_s);
      this.el.timeline.replaceChildren(...rows.map((row) => this.row(row)));
      this.el.timeline.dataset.count = String(rows.length);
    }
    this.el.timeline.dataset.status = video.status;
  }

  row({ track, left, width, label, title }) {
    const li = element("li", { class: "track", "data-track": track.track });
    const face = element("button", {
      type: "button",
      class: "track-face",
      title: `Play from the best frame, ${clock(track.best.time_s)}`,
      "aria-label": `Play ${label} from ${clock(track.best.time_s)}`,
    });
    face.addEventListener("click", () => this.seek(track.best.time_s));
    this.thumbnail(track).then((url) => {
      if (url) face.append(element("img", { src: url, alt: "", width: 48, height: 48 }));
    });
    const who = element("span", { class: `track-who ${track.subject ? "known" : "unknown"}` }, label);
    const lane = element("div", { class: "track-lane" });
    const bar = element("button", {
      type: "button",
      class: "track-bar",
      title,
      "aria-label": `${label}, ${title}: play from here`,
    });
    // Through the CSSOM: the page's policy (style-src 'self') refuses style attributes.
    bar.style.left = `${left.toFixed(3)}%`;
    bar.style.width = `${width.toFixed(3)}%`;
    bar.addEventListener("click", (event) => {
      const box = bar.getBoundingClientRect();
      // A click from the keyboard has no pointer position: the track's start.
      const fraction = event.detail && box.width ? (event.clientX - box.left) / box.width : 0;
      this.seek(timeInTrack(track, fraction));
    });
    lane.append(bar);
    li.append(face, who, lane, element("span", { class: "track-when muted" }, title));
    return li;
  }

  // The thumbnail comes with the API key (an <img> cannot send it), fetched once per best frame.
  thumbnail(track) {
    const key = `${track.best.thumbnail_url}@${track.best.time_s}`;
    if (!this.thumbnails.has(key)) {
      this.thumbnails.set(key, blobUrl(track.best.thumbnail_url).catch(() => null));
    }
    return this.thumbnails.get(key);
  }

  async cancel() {
    const id = this.videoId;
    this.reset();
    if (!id) return;
    try {
      await call("DELETE", path("videos", id));
      this.say("Cancelled: the upload and its results are erased.");
    } catch (error) {
      this.say(error.readable || String(error));
    }
  }
}
