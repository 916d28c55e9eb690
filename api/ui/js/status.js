// The status panel, from GET /info: workers with device and models, licenses, queue depth; and
// where Flower is.

import { element } from "./helpers.js";

function table(caption, headers, rows) {
  const out = element("table", { class: "status-table" });
  out.append(element("caption", {}, caption));
  const head = element("tr");
  for (const title of headers) head.append(element("th", { scope: "col" }, title));
  out.createTHead().append(head);
  const body = out.createTBody();
  for (const cells of rows) {
    const row = element("tr");
    for (const cell of cells) row.append(element("td", {}, String(cell)));
    body.append(row);
  }
  return out;
}

// How long ago a time (epoch seconds) was, in a unit that reads well.
export const ago = (epochS, nowS = Date.now() / 1000) => {
  const s = Math.max(0, nowS - epochS);
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
};

// Flower's address on the page's host, at the port /info names (flower_port); "" when there is
// none (0, or an API that does not say).
export function flowerUrl(info, { protocol, hostname }) {
  const port = info?.flower_port;
  return port ? `${protocol}//${hostname}:${port}/` : "";
}

export function renderStatus(container, info) {
  const limits = info.limits || {};
  const summary = element("p", { class: "summary" });
  const workers = info.workers || [];
  summary.append(
    element("strong", { id: "worker-count" }, `${workers.length} worker${workers.length === 1 ? "" : "s"} online`),
    ` · queue: `,
    element("strong", { id: "queue-depth" }, String(info.queue_depth ?? "?")),
    ` of at most ${limits.max_queue_depth ?? "?"} jobs waiting · facerest ${info.version}` +
      ` · API keys ${info.api_keys ? "on" : "off"}`,
  );
  const workerRows = workers.map((worker) => [
    worker.name,
    worker.device,
    worker.profile,
    worker.concurrency,
    (worker.detectors || []).join(", "),
    worker.recognizer ? `${worker.recognizer.name} (${worker.recognizer.dimension}-d)` : "–",
    (worker.attributes || []).join(", ") || "–",
    ago(worker.started),
  ]);
  // models: InsightFace-REST's summary object, every loaded model under models.loaded.
  const loaded = Array.isArray(info.models) ? info.models : info.models?.loaded || [];
  const modelRows = loaded.map((model) => [
    model.name,
    model.kind,
    model.version,
    model.license,
    model.commercial_use ? "yes" : "no",
  ]);
  const parts = [summary];
  parts.push(
    workers.length
      ? table("Workers", ["name", "device", "profile", "jobs at once", "detectors", "recognizer", "attributes", "up"], workerRows)
      : element("p", { class: "error" }, "No worker is online: requests wait in the queue until one starts."),
  );
  if (modelRows.length) parts.push(table("Models", ["model", "kind", "package", "license", "commercial use"], modelRows));
  const limitText = `Limits: ${limits.max_images} images a request, ${Math.round((limits.max_image_bytes || 0) / 1e6)} MB` +
    ` and ${Math.round((limits.max_image_pixels || 0) / 1e6)} MP an image, ${limits.max_faces} faces an image,` +
    ` ${limits.sync_timeout_s} s for a synchronous answer.`;
  parts.push(element("p", { class: "muted" }, limitText));
  container.replaceChildren(...parts);
}
