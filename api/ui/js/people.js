// "People found": a collection's photos grouped into people by the service (docs/people.md).
// Ingest photos, see each cluster as a grid of faces, and decide: name a cluster, merge the
// selected clusters (or drag one group's title onto another), move the selected faces into a
// cluster or out of any (or drag a face onto a group), mark a cluster as not a person. Every
// decision is one request; the grid is then read again from the API.

import { blobUrl, call, fileBase64, path, run } from "./api.js";
import { element } from "./helpers.js";

// The ingest request: the photos as base64, each file's name as its photo id.
export function ingestBody(images, names) {
  return { images: { data: images }, photo_ids: names.map((name) => photoId(name)) };
}

// A file name as a photo id the API takes (letters, digits and _ . : / -, up to 256).
export function photoId(name) {
  const cleaned = String(name).replace(/[^A-Za-z0-9_.:/-]/g, "_").replace(/^[^A-Za-z0-9]+/, "");
  return (cleaned || "photo").slice(0, 256);
}

// A cluster's heading: its subject's name, or how many faces an unnamed one holds.
export function clusterTitle(cluster) {
  const faces = `${cluster.size} face${cluster.size === 1 ? "" : "s"}`;
  if (cluster.ignored) return `Not a person (${faces})`;
  return cluster.subject ? `${cluster.subject} (${faces})` : `Unnamed (${faces})`;
}

// Where a move sends a face: a cluster id, a subject name, or (neither) out of any cluster.
export function moveBody(target) {
  if (target === null || target === undefined || target === "") return {};
  return typeof target === "number" ? { cluster: target } : { subject: String(target) };
}

// The merge of the selected clusters: into the first (the largest: the listing is largest first).
export function mergePlan(selected) {
  const ids = [...selected];
  return ids.length < 2 ? null : { into: ids[0], body: { clusters: ids.slice(1) } };
}

// What is dragged: a cluster (by its title) or one face; the drop target is a cluster.
export const DRAGGED_CLUSTER = "application/x-facerest-cluster";
export const DRAGGED_FACE = "application/x-facerest-face";

// A drop onto cluster `onto`: the request it makes, or null (a cluster dropped on itself, or
// nothing of ours dragged). `dragged`: {cluster: id} or {face: id}, as dragData read it.
export function dropPlan(dragged, onto) {
  if (dragged && Number.isInteger(dragged.cluster)) {
    return dragged.cluster === onto ? null : { kind: "merge", ...mergePlan([onto, dragged.cluster]) };
  }
  if (dragged && dragged.face) return { kind: "move", face: dragged.face, body: moveBody(onto) };
  return null;
}

// What a drop carries, read from its DataTransfer (getData: type -> string, "" when absent).
export function dragData(getData) {
  const cluster = getData(DRAGGED_CLUSTER);
  if (cluster !== "" && /^\d+$/.test(cluster)) return { cluster: Number(cluster) };
  const face = getData(DRAGGED_FACE);
  return face ? { face } : null;
}

export class PeopleFound {
  // elements (main.js finds them): {collection: <input>, files: <input type=file>, refresh,
  // merge, takeOut: <button>s, state, clusters: <ul>}. collection(): the options' collection.
  constructor(elements, options = {}) {
    this.el = elements;
    this.options = options;
    this.thumbnails = [];
    this.selectedFaces = new Set();
    this.selectedClusters = [];
    this.wire();
  }

  get collection() {
    return this.el.collection.value.trim();
  }

  wire() {
    this.el.files.addEventListener("change", () => this.ingest([...this.el.files.files]));
    this.el.refresh.addEventListener("click", () => this.refresh());
    this.el.merge.addEventListener("click", () => this.merge());
    this.el.takeOut.addEventListener("click", () => this.moveSelected(null));
  }

  say(text) {
    this.el.state.textContent = text;
  }

  async ingest(files) {
    const collection = this.collection;
    if (!collection || !files.length) return;
    this.say(`Sending ${files.length} photo${files.length === 1 ? "" : "s"}…`);
    try {
      const images = await Promise.all(files.map((file) => fileBase64(file)));
      const body = ingestBody(images, files.map((file) => file.name));
      await run(path("collections", collection, "photos"), body, { async: true });
    } catch (error) {
      this.say(error.readable || String(error));
      return;
    }
    this.el.files.value = "";
    await this.refresh();
  }

  async refresh() {
    const collection = this.collection;
    for (const url of this.thumbnails) URL.revokeObjectURL(url);
    this.thumbnails = [];
    this.selectedFaces.clear();
    this.selectedClusters = [];
    this.el.clusters.replaceChildren();
    if (!collection) {
      this.say("Type a collection name to see the people found in it.");
      return;
    }
    let data;
    try {
      ({ data } = await call("GET", path("collections", collection, "clusters")));
    } catch (error) {
      this.say(error.status === 404 ? `No photos in ${collection} yet: add some.` : error.readable || String(error));
      return;
    }
    const people = data.clusters.filter((cluster) => !cluster.ignored).length;
    this.say(`${people} ${people === 1 ? "person" : "people"} found, ${data.unclustered} faces alone`);
    for (const cluster of data.clusters) this.el.clusters.append(this.clusterItem(collection, cluster));
    this.el.clusters.dataset.count = String(data.clusters.length);
  }

  clusterItem(collection, cluster) {
    const li = element("li", { class: `cluster${cluster.ignored ? " ignored" : ""}`, "data-cluster": cluster.id });
    // Only the title drags (the name field inside the group must stay selectable with the mouse).
    const head = element("div", { class: "cluster-title", draggable: "true", title: "Drag onto another group to merge" });
    head.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(DRAGGED_CLUSTER, String(cluster.id));
      event.dataTransfer.effectAllowed = "move";
    });
    this.dropTarget(collection, li, cluster.id);
    const pick = element("input", { type: "checkbox", "aria-label": `Select cluster ${cluster.id}` });
    pick.addEventListener("change", () => {
      this.selectedClusters = pick.checked
        ? [...this.selectedClusters, cluster.id]
        : this.selectedClusters.filter((id) => id !== cluster.id);
    });
    head.append(pick, element("strong", {}, clusterTitle(cluster)));
    const grid = element("div", { class: "thumbs" });
    for (const face of cluster.faces) grid.append(this.faceButton(face));
    const actions = element("form", { class: "actions inline" });
    const name = element("input", { name: "subject", placeholder: "Name", "aria-label": `Name for cluster ${cluster.id}` });
    if (cluster.subject) name.value = cluster.subject;
    const save = element("button", { type: "submit", class: "small" }, "Name");
    actions.addEventListener("submit", (event) => {
      event.preventDefault();
      this.decide(path("collections", collection, "clusters", cluster.id, "name"), { subject: name.value.trim() });
    });
    const moveHere = element("button", { type: "button", class: "small" }, "Move selected faces here");
    moveHere.addEventListener("click", () => this.moveSelected(cluster.id));
    const ignore = element("button", { type: "button", class: "small" }, cluster.ignored ? "A person" : "Not a person");
    ignore.addEventListener("click", () =>
      this.decide(path("collections", collection, "clusters", cluster.id, "ignore"), { ignored: !cluster.ignored }),
    );
    actions.append(name, save, moveHere, ignore);
    li.append(head, grid, actions);
    return li;
  }

  // A group takes a dragged group (merged into it) or face (moved into it).
  dropTarget(collection, li, clusterId) {
    const ours = (event) => [DRAGGED_CLUSTER, DRAGGED_FACE].some((type) => event.dataTransfer.types.includes(type));
    li.addEventListener("dragover", (event) => {
      if (!ours(event)) return;
      event.preventDefault(); // this element takes the drop
      li.classList.add("drop");
    });
    li.addEventListener("dragleave", (event) => {
      if (!li.contains(event.relatedTarget)) li.classList.remove("drop");
    });
    li.addEventListener("drop", (event) => {
      li.classList.remove("drop");
      if (!ours(event)) return;
      event.preventDefault();
      const plan = dropPlan(dragData((type) => event.dataTransfer.getData(type)), clusterId);
      if (plan?.kind === "merge") {
        this.decide(path("collections", collection, "clusters", plan.into, "merge"), plan.body);
      } else if (plan?.kind === "move") {
        this.decide(path("collections", collection, "photos", "faces", plan.face, "move"), plan.body);
      }
    });
  }

  faceButton(face) {
    const button = element("button", {
      type: "button",
      class: "face",
      draggable: "true",
      "data-face": face.face_id,
      "aria-pressed": "false",
      title: `${face.photo_id} (quality ${Number(face.quality).toFixed(2)})`,
    });
    button.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(DRAGGED_FACE, face.face_id);
      event.dataTransfer.effectAllowed = "move";
    });
    button.addEventListener("click", () => {
      const on = !this.selectedFaces.has(face.face_id);
      if (on) this.selectedFaces.add(face.face_id);
      else this.selectedFaces.delete(face.face_id);
      button.setAttribute("aria-pressed", String(on));
    });
    blobUrl(face.thumbnail_url)
      .then((url) => {
        this.thumbnails.push(url);
        button.append(element("img", { src: url, alt: `face in ${face.photo_id}`, width: 56, height: 56 }));
      })
      .catch(() => button.append(element("span", { class: "muted" }, "?")));
    return button;
  }

  async decide(url, body) {
    try {
      await call("POST", url, body);
    } catch (error) {
      this.say(error.readable || String(error));
      return;
    }
    await this.refresh();
  }

  async merge() {
    const plan = mergePlan(this.selectedClusters);
    if (!plan) {
      this.say("Select two clusters or more to merge.");
      return;
    }
    await this.decide(path("collections", this.collection, "clusters", plan.into, "merge"), plan.body);
  }

  async moveSelected(target) {
    const faces = [...this.selectedFaces];
    if (!faces.length) {
      this.say("Select faces first: click them.");
      return;
    }
    try {
      for (const face of faces) {
        await call("POST", path("collections", this.collection, "photos", "faces", face, "move"), moveBody(target));
      }
    } catch (error) {
      this.say(error.readable || String(error));
      return;
    }
    await this.refresh();
  }
}
