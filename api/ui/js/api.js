// The page's one way to the API: the API key header, an Idempotency-Key on every POST (kept
// across retries, so a retry never queues a second job), Retry-After on 503 and 429, readable
// errors, and async jobs followed by long polling.

const KEY_STORAGE = "facerest.apiKey";
// A network failure is tried again a few times; a 503 or 429 as long as the API asks to wait,
// up to a few minutes in all (a queue that stays full that long needs a person to look).
const NETWORK_ATTEMPTS = 5;
const MAX_RETRY_WAIT_S = 30;
const MAX_BUSY_S = 300;

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }

  // What a person reads next to the photo.
  get readable() {
    if (this.status === 401) return "This API needs a key: type it in the API key field above.";
    if (this.status === 403) return "The API key was refused: check it in the API key field above.";
    const where = [this.status || "", this.code].filter(Boolean).join(" ");
    return where ? `${this.message} (${where})` : this.message;
  }
}

// Kept for the tab's life only (sessionStorage), sent as a header, never put in a URL.
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE) || "",
  set: (value) => (value ? sessionStorage.setItem(KEY_STORAGE, value) : sessionStorage.removeItem(KEY_STORAGE)),
};

// crypto.randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Retry-After is seconds or an HTTP date; without one (or unreadable), a second.
export function retryAfterS(header, nowMs = Date.now()) {
  if (!header) return 1;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(header);
  return Number.isNaN(date) ? 1 : Math.max(0, (date - nowMs) / 1000);
}

// How long one long poll (GET /results/<id>?wait=N) may last: the API refuses a wait longer
// than its sync timeout (/info's limits), and 20 s keeps a lost connection noticed.
export const longPollS = (limits) => Math.min(20, limits?.sync_timeout_s ?? 10);

async function readBody(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return null;
}

// One call: {status, data}; throws ApiError. onWait(seconds) hears about each Retry-After wait.
// body: a JSON value, or FormData (a file upload).
export async function call(method, path, body = undefined, { onWait = null } = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey.get();
  if (key) headers["X-API-Key"] = key;
  const init = { method, headers, cache: "no-store" };
  if (body instanceof FormData) {
    init.body = body; // multipart: the browser sets the boundary and streams the files
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method === "POST") headers["Idempotency-Key"] = newKey();
  const started = Date.now();
  for (let failures = 0; ; ) {
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      failures += 1;
      if (failures >= NETWORK_ATTEMPTS) throw new ApiError(0, "", `The API did not answer (${error.message}).`);
      await sleep(500 * 2 ** failures);
      continue;
    }
    const busy = response.status === 503 || response.status === 429;
    if (busy && (Date.now() - started) / 1000 < MAX_BUSY_S) {
      const wait = Math.min(retryAfterS(response.headers.get("Retry-After")), MAX_RETRY_WAIT_S);
      if (onWait) onWait(wait);
      await sleep(wait * 1000);
      continue;
    }
    const data = await readBody(response);
    if (!response.ok) {
      throw new ApiError(
        response.status,
        data?.code || `http_${response.status}`,
        data?.message || response.statusText || "request failed",
        data,
      );
    }
    return { status: response.status, data };
  }
}

// A binary resource (a face thumbnail) as an object URL, with the key header an <img> cannot send.
export async function blobUrl(path) {
  const headers = {};
  const key = apiKey.get();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { headers });
  if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, response.statusText);
  return URL.createObjectURL(await response.blob());
}

// POST a body; with async, follow the 202's job by long polling until it is done.
// onState(status) hears "queued", "running", "done".
export async function run(path, body, { async = false, waitS = 20, onWait = null, onState = null } = {}) {
  const { status, data } = await call("POST", path, async ? { ...body, async: true } : body, { onWait });
  if (status !== 202) return data;
  const url = `${data.status_url}?wait=${waitS}`;
  let state = data;
  for (;;) {
    if (onState) onState(state.status);
    if (state.status === "done") return state.result;
    if (state.status === "failed") {
      const error = state.error || {};
      throw new ApiError(500, error.code || "failed", error.message || "the job failed", error);
    }
    ({ data: state } = await call("GET", url, undefined, { onWait }));
  }
}

// A file as base64 (no data: prefix), the way the API takes images.
export function fileBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

export const path = (...parts) => "/" + parts.map(encodeURIComponent).join("/");
