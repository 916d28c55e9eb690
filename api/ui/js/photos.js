// The photos: each one sent to /extract (or to a collection's /recognize), its faces drawn over
// it and listed in a table; hovering or focusing a row highlights its box, and the reverse.

import { ApiError, fileBase64, longPollS, path, run } from "./api.js";
import { element, fixed, svgElement } from "./helpers.js";
import { drawFaces, faceKind } from "./overlay.js";

// More photos than this at once go as async jobs, followed by long polling.
const SYNC_PHOTOS = 1;
// Requests in flight at once: enough to keep two workers busy, few enough to show progress.
const IN_FLIGHT = 3;

// The request body for one photo from the options form's values.
export function requestBody(options, base64) {
  const maxSize = Number(options.max_size) || 0;
  const body = {
    images: { data: [base64] },
    api_ver: "2",
    threshold: Number(options.threshold),
    max_size: maxSize ? [maxSize, maxSize] : 0,
    return_landmarks: options.landmarks === "106" ? "106" : options.landmarks === "5",
    extract_ga: options.extract_ga,
  };
  if (options.detector) body.detector = options.detector;
  // Sent only when asked: an API without the option must not see the field change anything.
  if (options.flip) body.flip = true;
  return body;
}

// The body of a recognition request (enroll, recognize, verify): detection options only, under
// their names there (the similarity threshold is the API's calibrated one).
export function recognitionBody(options, images) {
  const maxSize = Number(options.max_size) || 0;
  const body = { images: { data: images }, det_threshold: Number(options.threshold), max_size: maxSize ? [maxSize, maxSize] : 0 };
  if (options.detector) body.detector = options.detector;
  return body;
}

// A collection's /recognize for one photo: names the faces and tells what /extract would of
// them (landmarks, gender and age as the options ask; norms), so one call draws and names them.
export function recognizeBody(options, base64) {
  return {
    ...recognitionBody(options, [base64]),
    return_landmarks: options.landmarks === "106" ? "106" : options.landmarks === "5",
    extract_ga: options.extract_ga,
  };
}

// The envelope's bbox and landmarks are whole pixels (InsightFace-REST's clients read them so);
// the page draws from the float copies next to them.
export const precise = (face) => ({
  ...face,
  bbox: face.bbox_float || face.bbox,
  landmarks: face.landmarks_float || face.landmarks,
});

// The one image of an answer, or its error (the photo went alone, so "images.data[0]: " would
// say nothing next to it).
export function imageOf(answer) {
  const image = answer.data[0];
  if (image.status === "ok") return image;
  const message = (image.error?.message || "the image failed").replace(/^images\.data\[\d+\]: /, "");
  throw new ApiError(0, image.error?.code || "error", message);
}

class Photo {
  constructor(file, id) {
    this.id = id;
    this.file = file;
    this.name = file.name || `photo ${this.id}`;
    this.url = URL.createObjectURL(file);
    this.faces = [];
    this.card = this.render();
  }

  render() {
    const card = element("li", { class: "photo", "data-photo": this.id });
    const figure = element("figure");
    const frame = element("div", { class: "frame" });
    this.img = element("img", { src: this.url, alt: `Photo ${this.name}` });
    this.svg = svgElement("svg", { class: "overlay", preserveAspectRatio: "none" });
    frame.append(this.img, this.svg);
    const caption = element("figcaption");
    caption.append(element("strong", {}, this.name), " ");
    this.status = element("span", { class: "photo-status", "aria-live": "polite" }, "waiting");
    caption.append(this.status);
    figure.append(frame, caption);
    this.error = element("p", { class: "error", role: "alert" });
    this.table = element("table", { class: "faces" });
    this.table.append(element("caption", { class: "visually-hidden" }, `Faces in ${this.name}`));
    const head = element("tr");
    for (const title of ["#", "score", "size", "age", "gender", "identity", "norm"]) {
      head.append(element("th", { scope: "col" }, title));
    }
    this.table.createTHead().append(head);
    this.tbody = element("tbody");
    this.table.append(this.tbody);
    this.table.hidden = true;
    card.append(figure, this.error, this.table);
    return card;
  }

  loaded() {
    // complete is also true for a photo the browser could not show (its error event is past).
    return this.img.complete
      ? Promise.resolve()
      : new Promise((resolve) => {
          this.img.addEventListener("load", resolve, { once: true });
          this.img.addEventListener("error", resolve, { once: true });
        });
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  fail(error) {
    this.faces = [];
    this.svg.replaceChildren();
    this.tbody.replaceChildren();
    this.table.hidden = true;
    this.card.classList.add("failed");
    this.error.textContent = error instanceof ApiError ? error.readable : String(error.message || error);
    this.setStatus("error");
  }

  show(faces, recognized, onEnroll) {
    this.card.classList.remove("failed");
    this.error.textContent = "";
    this.faces = faces.map((face) => ({ ...face, recognized }));
    const rows = [];
    const groups = [];
    const highlight = (index, on) => {
      rows[index]?.classList.toggle("hl", on);
      groups[index]?.classList.toggle("hl", on);
    };
    const enrollable = (face) => faceKind(face) !== "known";
    drawFaces(this.svg, this.img.naturalWidth, this.img.naturalHeight, this.faces, (index, group) => {
      groups[index] = group;
      const face = this.faces[index];
      group.addEventListener("mouseenter", () => highlight(index, true));
      group.addEventListener("mouseleave", () => highlight(index, false));
      if (enrollable(face)) {
        group.setAttribute("tabindex", "0");
        group.setAttribute("role", "button");
        group.setAttribute("aria-label", `Face ${index + 1}: enroll`);
        group.classList.add("clickable");
        group.addEventListener("click", () => onEnroll(this, index));
        group.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            onEnroll(this, index);
          }
        });
        group.addEventListener("focus", () => highlight(index, true));
        group.addEventListener("blur", () => highlight(index, false));
      }
    });
    this.tbody.replaceChildren();
    this.faces.forEach((face, index) => {
      const row = element("tr", { tabindex: "0", "data-face": index });
      const [width, height] = face.size_wh || [face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]];
      row.append(
        element("td", {}, String(index + 1)),
        element("td", {}, fixed(face.prob, 3)),
        element("td", {}, `${Math.round(width)}×${Math.round(height)}`),
        element("td", {}, face.age === undefined ? "–" : String(Math.round(face.age))),
        element("td", {}, face.gender ? `${face.gender} ${fixed(face.gender_score, 2)}` : "–"),
      );
      const identity = element("td", { class: `identity ${faceKind(face)}` });
      if (face.subject) identity.textContent = `${face.subject} (${fixed(face.similarity, 2)})`;
      else if (recognized) {
        identity.textContent = "unknown";
        const best = face.matches?.[0];
        if (best) identity.title = `closest: ${best.subject}, similarity ${fixed(best.similarity, 2)}`;
      } else identity.textContent = "–";
      if (enrollable(face)) {
        const button = element("button", { type: "button", class: "small" }, "Enroll…");
        button.addEventListener("click", () => onEnroll(this, index));
        identity.append(" ", button);
      }
      row.append(identity, element("td", {}, fixed(face.norm, 2)));
      row.addEventListener("mouseenter", () => highlight(index, true));
      row.addEventListener("mouseleave", () => highlight(index, false));
      row.addEventListener("focus", () => highlight(index, true));
      row.addEventListener("blur", () => highlight(index, false));
      rows[index] = row;
      this.tbody.append(row);
    });
    this.table.hidden = this.faces.length === 0;
    const count = this.faces.length;
    // From sending the photo to its faces drawn: what a person waits (bench/ui_latency.py reads it).
    const ms = performance.now() - this.sent;
    this.setStatus(`${count} face${count === 1 ? "" : "s"} in ${(ms / 1000).toFixed(2)} s`);
    this.card.dataset.ms = ms.toFixed(1);
    this.card.dataset.faces = String(count);
  }

  dispose() {
    URL.revokeObjectURL(this.url);
    this.card.remove();
  }
}

// The list of photos and the runs over them: list is the <ol> they go in; ui: {options(),
// collection(), limits() (/info's), onEnroll(photo, index), progress(done, total)}.
export class PhotoList {
  constructor(list, ui) {
    this.list = list;
    this.ui = ui;
    this.photos = [];
    this.generation = 0;
    this.added = 0; // numbers the photos, for photos without a name
  }

  add(files) {
    const added = [...files]
      .filter((file) => file.type.startsWith("image/"))
      .map((file) => new Photo(file, (this.added += 1)));
    for (const photo of added) {
      this.photos.push(photo);
      this.list.append(photo.card);
    }
    if (added.length) this.process(added);
    return added;
  }

  clear() {
    this.generation += 1; // answers of earlier runs are dropped
    for (const photo of this.photos) photo.dispose();
    this.photos = [];
    this.ui.progress(0, 0);
  }

  rerun() {
    if (this.photos.length) this.process(this.photos);
  }

  async process(photos) {
    const generation = this.generation;
    const asJobs = photos.length > SYNC_PHOTOS;
    let done = 0;
    this.ui.progress(0, photos.length);
    const queue = [...photos];
    const worker = async () => {
      while (queue.length && generation === this.generation) {
        await this.analyse(queue.shift(), asJobs, generation);
        done += 1;
        if (generation === this.generation) this.ui.progress(done, photos.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, photos.length) }, worker));
  }

  async analyse(photo, asJob, generation = this.generation) {
    const options = this.ui.options();
    const collection = this.ui.collection();
    photo.sent = performance.now();
    photo.setStatus(asJob ? "queued" : "working…");
    const most = this.ui.limits()?.max_image_bytes;
    if (most && photo.file.size > most) {
      // Said here rather than after uploading it all for a 413.
      const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
      photo.fail(new ApiError(0, "limit_exceeded", `${mb(photo.file.size)}: the API takes at most ${mb(most)} an image`));
      return;
    }
    try {
      const base64 = await fileBase64(photo.file);
      const how = {
        async: asJob,
        waitS: longPollS(this.ui.limits()),
        onWait: (s) => photo.setStatus(`API busy: retrying in ${Math.round(s)} s`),
        onState: (state) => photo.setStatus(state === "running" ? "working…" : state),
      };
      const answer = collection
        ? await run(path("collections", collection, "recognize"), recognizeBody(options, base64), how)
        : await run("/extract", requestBody(options, base64), how);
      await photo.loaded();
      if (generation !== this.generation) return;
      const faces = (imageOf(answer).faces || []).map(precise);
      photo.show(faces, Boolean(collection), this.ui.onEnroll);
    } catch (error) {
      if (generation === this.generation) photo.fail(error);
    }
  }
}

// A face of a photo cut out with a margin, as a JPEG blob: what enrolling that one face sends
// (the API enrolls the largest face of an image, which in this crop is this face).
export async function faceCrop(photo, index, canvas = null) {
  const [x1, y1, x2, y2] = photo.faces[index].bbox;
  const margin = Math.max(x2 - x1, y2 - y1) * 0.6;
  const left = Math.max(0, Math.floor(x1 - margin));
  const top = Math.max(0, Math.floor(y1 - margin));
  const right = Math.min(photo.img.naturalWidth, Math.ceil(x2 + margin));
  const bottom = Math.min(photo.img.naturalHeight, Math.ceil(y2 + margin));
  const out = document.createElement("canvas");
  out.width = right - left;
  out.height = bottom - top;
  out.getContext("2d").drawImage(photo.img, left, top, out.width, out.height, 0, 0, out.width, out.height);
  if (canvas) {
    const context = canvas.getContext("2d");
    const scale = Math.min(canvas.width / out.width, canvas.height / out.height);
    context.clearRect(0, 0, canvas.width, canvas.height);
    const w = out.width * scale;
    const h = out.height * scale;
    context.drawImage(out, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  }
  return new Promise((resolve) => out.toBlob(resolve, "image/jpeg", 0.92));
}
