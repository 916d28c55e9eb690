// Wires the page: the API key, the options, photos from files, drops, pastes and the webcam,
// the status panel, the recognition panels and the video view. The one module that finds
// elements by id: it gives each view its own.

import { apiKey, call } from "./api.js";
import { PeopleFound } from "./people.js";
import { PhotoList } from "./photos.js";
import { Recognition } from "./recognition.js";
import { flowerUrl, renderStatus } from "./status.js";
import { VideoView } from "./video.js";

const $ = (id) => document.getElementById(id);
const STATUS_EVERY_MS = 10_000;

const page = { info: null };

function options() {
  const form = $("options");
  return {
    detector: form.detector.value,
    threshold: form.threshold.value,
    max_size: form.max_size.value,
    landmarks: form.landmarks.value,
    extract_ga: form.extract_ga.checked,
    flip: form.flip.checked,
  };
}

function notice(text) {
  $("notice").textContent = text;
}

function progress(done, total) {
  $("progress").hidden = total <= 1;
  $("progress-bar").max = Math.max(1, total);
  $("progress-bar").value = done;
  $("progress-text").textContent = total ? `${done} of ${total} done` : "";
}

const verifySide = (side) => ({ input: $(`verify-${side}`), img: $(`verify-${side}-img`), svg: $(`verify-${side}-svg`) });

const recognition = new Recognition(
  {
    collection: $("collection"),
    collectionForm: $("collection-form"),
    newCollection: $("new-collection"),
    collectionNames: $("collection-names"),
    subjects: $("subjects"),
    subjectsState: $("subjects-state"),
    subjectNames: $("subject-names"),
    enroll: {
      dialog: $("enroll-dialog"),
      form: $("enroll-form"),
      crop: $("enroll-crop"),
      name: $("enroll-name"),
      collection: $("enroll-collection"),
      error: $("enroll-error"),
      submit: $("enroll-submit"),
      cancel: $("enroll-cancel"),
    },
    confirm: { dialog: $("confirm-dialog"), text: $("confirm-text"), ok: $("confirm-ok"), cancel: $("confirm-cancel") },
    verify: {
      a: verifySide("a"),
      b: verifySide("b"),
      subject: $("verify-subject"),
      run: $("verify-run"),
      result: $("verify-result"),
    },
  },
  {
    options,
    notice,
    rerun: (photo) => photos.analyse(photo, false),
    rerunAll: () => photos.rerun(),
  },
);

const photos = new PhotoList($("photo-list"), {
  options,
  collection: () => recognition.collection,
  limits: () => page.info?.limits,
  onEnroll: (photo, index) => recognition.openEnroll(photo, index),
  progress,
});

async function refreshStatus() {
  try {
    const { data } = await call("GET", "/info");
    const first = page.info === null;
    page.info = data;
    renderStatus($("status-body"), data);
    const flower = flowerUrl(data, location);
    $("flower-link").href = flower || "#";
    $("flower-link").hidden = !flower;
    if (first) fillDetectors(data.detectors || []);
    $("key-state").textContent = data.api_keys ? (apiKey.get() ? "key accepted" : "") : "keys are off";
  } catch (error) {
    $("status-body").replaceChildren(Object.assign(document.createElement("p"), {
      className: "error",
      textContent: error.readable || String(error),
    }));
    if (error.status === 401 || error.status === 403) $("api-key").focus();
  }
}

function fillDetectors(detectors) {
  const select = $("options").detector;
  for (const name of detectors) {
    if (![...select.options].some((option) => option.value === name)) {
      select.append(new Option(name, name));
    }
  }
}

function wireKey() {
  $("api-key").value = apiKey.get();
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    apiKey.set($("api-key").value.trim());
    await refreshStatus();
    await recognition.refresh();
  });
  $("key-forget").addEventListener("click", () => {
    apiKey.set("");
    $("api-key").value = "";
    $("key-state").textContent = "forgotten";
  });
}

function wireInputs() {
  $("files").addEventListener("change", (event) => {
    photos.add(event.target.files);
    event.target.value = ""; // choosing the same file again adds it again
  });
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    photos.add(event.dataTransfer.files);
  });
  // A photo dropped beside the zone must not make the browser leave the page to show it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length && !(event.target instanceof HTMLInputElement)) photos.add(files);
  });
  $("clear").addEventListener("click", () => photos.clear());
  $("rerun").addEventListener("click", () => photos.rerun());
}

// A webcam snapshot, where the browser allows one (secure contexts: https or localhost).
function wireWebcam() {
  if (!navigator.mediaDevices?.getUserMedia) return;
  const dialog = $("webcam-dialog");
  const video = $("webcam-video");
  let stream = null;
  const stop = () => {
    for (const track of stream?.getTracks() || []) track.stop();
    stream = null;
  };
  $("webcam-open").hidden = false;
  $("webcam-open").addEventListener("click", async () => {
    $("webcam-error").textContent = "";
    dialog.showModal();
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
      video.srcObject = stream;
    } catch (error) {
      $("webcam-error").textContent = `No webcam: ${error.message}`;
    }
  });
  $("webcam-snap").addEventListener("click", () => {
    if (!stream || !video.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      if (blob) photos.add([new File([blob], `webcam ${new Date().toLocaleTimeString()}.jpg`, { type: "image/jpeg" })]);
    }, "image/jpeg", 0.92);
    dialog.close();
  });
  $("webcam-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", stop);
}

const peopleFound = new PeopleFound({
  collection: $("people-collection"),
  files: $("people-files"),
  refresh: $("people-refresh"),
  merge: $("people-merge"),
  takeOut: $("people-take-out"),
  state: $("people-state"),
  clusters: $("clusters"),
});

new VideoView({
  form: $("video-form"),
  file: $("video-file"),
  fps: $("video-fps"),
  collection: $("video-collection"),
  cancel: $("video-cancel"),
  state: $("video-state"),
  progress: $("video-progress"),
  player: $("video-player"),
  timeline: $("video-timeline"),
});

function start() {
  wireKey();
  wireInputs();
  wireWebcam();
  refreshStatus();
  recognition.refresh();
  $("people-form").addEventListener("submit", (event) => {
    event.preventDefault();
    peopleFound.refresh();
  });
  setInterval(() => {
    if (document.visibilityState === "visible") refreshStatus();
  }, STATUS_EVERY_MS);
  document.body.dataset.ready = "true"; // the page's scripts are wired (the browser test waits for it)
}

start();
