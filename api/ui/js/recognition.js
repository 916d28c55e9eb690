// Collections of people: enroll a face, browse, rename and delete subjects, verify two photos.
// The API serves these endpoints with the page, so the panels are always there.

import { blobUrl, call, fileBase64, path, run } from "./api.js";
import { element, fixed } from "./helpers.js";
import { drawFaces } from "./overlay.js";
import { faceCrop, recognitionBody } from "./photos.js";

// Lists come as {"collections": [...]} / {"subjects": [...]}, items as names or objects.
export const listOf = (data, key) => (Array.isArray(data) ? data : data?.[key] || []);
export const nameOf = (item, ...keys) => (typeof item === "string" ? item : keys.map((key) => item[key]).find(Boolean));

// A dialog that answers true (confirmed) or false; its elements: {dialog, text, ok, cancel}.
function confirmDialog({ dialog, text, ok, cancel }, question, action = "Delete") {
  text.textContent = question;
  ok.textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  cancel.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export class Recognition {
  // elements (main.js finds them): {collection: the options form's <select>, collectionForm,
  // newCollection, collectionNames: <datalist>, subjects: <ul>, subjectsState, subjectNames:
  // <datalist>, enroll: {dialog, form, crop: <canvas>, name, collection, error, submit, cancel},
  // confirm: {dialog, text, ok, cancel}, verify: {a and b: {input, img, svg}, subject, run, result}}.
  // ui: {options(), notice(text), rerun(photo), rerunAll()}.
  constructor(elements, ui) {
    this.el = elements;
    this.ui = ui;
    this.collections = [];
    this.thumbnails = [];
    this.enrolling = null;
    this.wire();
  }

  // The collection chosen in the options, once it exists (a new one is created by its first
  // enrolled face; until then photos are only detected, and /recognize would answer 404).
  get chosen() {
    return this.el.collection.value;
  }

  get collection() {
    return this.collections.includes(this.chosen) ? this.chosen : "";
  }

  async refresh(choose = null) {
    try {
      const { data } = await call("GET", "/collections");
      this.collections = listOf(data, "collections")
        .map((item) => nameOf(item, "collection", "name"))
        .filter(Boolean);
    } catch (error) {
      this.el.subjectsState.textContent = error.readable || String(error);
      return;
    }
    const select = this.el.collection;
    const wanted = choose ?? select.value;
    select.replaceChildren(element("option", { value: "" }, "(none: detect only)"));
    for (const name of this.collections) select.append(element("option", { value: name }, name));
    if (wanted && !this.collections.includes(wanted)) select.append(element("option", { value: wanted }, wanted));
    select.value = wanted || "";
    this.el.collectionNames.replaceChildren(...this.collections.map((name) => element("option", { value: name })));
    await this.refreshSubjects();
  }

  async refreshSubjects() {
    const list = this.el.subjects;
    const state = this.el.subjectsState;
    for (const url of this.thumbnails) URL.revokeObjectURL(url);
    this.thumbnails = [];
    list.replaceChildren();
    const verifySubject = this.el.verify.subject;
    verifySubject.replaceChildren(element("option", { value: "" }, "(use the second photo)"));
    const collection = this.chosen;
    if (!collection) {
      state.textContent = "Choose a collection in the options to see its people.";
      return;
    }
    if (!this.collections.includes(collection)) {
      state.textContent = `Collection ${collection} is empty: enroll a face to create it.`;
      return;
    }
    let subjects = [];
    try {
      let url = `${path("collections", collection, "subjects")}`;
      // Paged: follow "next" while the API gives one.
      for (let page = 0; url && page < 50; page += 1) {
        const { data } = await call("GET", url);
        subjects = subjects.concat(listOf(data, "subjects"));
        url = typeof data?.next === "string" ? data.next : null;
      }
    } catch (error) {
      state.textContent = error.readable || String(error);
      return;
    }
    state.textContent = `${subjects.length} ${subjects.length === 1 ? "person" : "people"} in ${collection}`;
    this.el.subjectNames.replaceChildren(
      ...subjects.map((item) => element("option", { value: nameOf(item, "subject", "name") })),
    );
    for (const item of subjects) {
      const name = nameOf(item, "subject", "name");
      verifySubject.append(element("option", { value: name }, name));
      list.append(this.subjectItem(collection, name, item));
    }
  }

  subjectItem(collection, name, item) {
    const li = element("li", { class: "subject", "data-subject": name });
    const title = element("div", { class: "subject-title" });
    title.append(element("strong", {}, name));
    if (typeof item === "object" && item.faces !== undefined) {
      title.append(element("span", { class: "muted" }, ` ${item.faces} face${item.faces === 1 ? "" : "s"}`));
    }
    const thumbs = element("div", { class: "thumbs" });
    const actions = element("div", { class: "actions" });
    const rename = element("button", { type: "button", class: "small" }, "Rename…");
    rename.addEventListener("click", () => this.rename(collection, name, li));
    actions.append(rename);
    const remove = element("button", { type: "button", class: "small danger" }, "Delete…");
    remove.setAttribute("aria-label", `Delete ${name}`);
    remove.addEventListener("click", () => this.remove(collection, name));
    actions.append(remove);
    li.append(title, thumbs, actions);
    this.loadThumbnails(collection, name, thumbs);
    return li;
  }

  async loadThumbnails(collection, name, container) {
    try {
      const { data } = await call("GET", path("collections", collection, "subjects", name));
      for (const face of (data.faces || []).slice(0, 8)) {
        const source = face.thumbnail_url || face.thumbnail || face.crop_url || face.url;
        if (!source) continue;
        const url = await blobUrl(source);
        this.thumbnails.push(url);
        container.append(element("img", { src: url, alt: `${name}, face ${face.id}`, width: 56, height: 56 }));
      }
    } catch (error) {
      container.append(element("span", { class: "error" }, error.readable || String(error)));
    }
  }

  async rename(collection, name, li) {
    const form = element("form", { class: "inline" });
    const input = element("input", { "aria-label": `New name for ${name}`, required: "", maxlength: 128 });
    input.value = name;
    form.append(input, element("button", { type: "submit" }, "Save"));
    li.append(form);
    input.focus();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await call("PATCH", path("collections", collection, "subjects", name), { subject: input.value.trim() });
        await this.refreshSubjects();
      } catch (error) {
        form.append(element("span", { class: "error", role: "alert" }, error.readable || String(error)));
      }
    });
  }

  async remove(collection, name) {
    if (!(await confirmDialog(this.el.confirm, `Delete ${name} and all their enrolled faces from ${collection}? This cannot be undone.`))) {
      return;
    }
    try {
      await call("DELETE", path("collections", collection, "subjects", name));
      this.ui.notice(`Deleted ${name} from ${collection}.`);
      await this.refresh();
    } catch (error) {
      this.ui.notice(error.readable || String(error));
    }
  }

  // Enroll one face of a photo: the dialog shows the crop that will be sent.
  async openEnroll(photo, index) {
    const view = this.el.enroll;
    this.enrolling = { photo, index };
    view.error.textContent = "";
    view.name.value = "";
    view.collection.value = this.chosen || this.collections[0] || "people";
    await faceCrop(photo, index, view.crop);
    view.dialog.showModal();
    view.name.focus();
  }

  async enroll() {
    const view = this.el.enroll;
    const { photo, index } = this.enrolling;
    const name = view.name.value.trim();
    const collection = view.collection.value.trim();
    const submit = view.submit;
    submit.disabled = true;
    try {
      const crop = await faceCrop(photo, index);
      const body = recognitionBody(this.ui.options(), [await fileBase64(crop)]);
      await run(path("collections", collection, "subjects", name, "faces"), body);
      view.dialog.close();
      this.ui.notice(`Enrolled ${name} in ${collection}.`);
      await this.refresh(collection);
      await this.ui.rerun(photo);
    } catch (error) {
      view.error.textContent = error.readable || String(error);
    } finally {
      submit.disabled = false;
    }
  }

  async verify() {
    const { a: sideA, b: sideB, result } = this.el.verify;
    const a = sideA.input.files[0];
    const b = sideB.input.files[0];
    const subject = this.el.verify.subject.value;
    if (!a || (!b && !subject)) {
      result.textContent = "Choose two photos, or a photo and a person.";
      return;
    }
    result.textContent = "Comparing…";
    try {
      const images = subject ? [await fileBase64(a)] : [await fileBase64(a), await fileBase64(b)];
      const body = recognitionBody(this.ui.options(), images);
      if (subject) Object.assign(body, { subject, collection: this.collection });
      const answer = await run("/verify", body);
      // The face each photo was compared by.
      (answer.faces || []).forEach((bbox, i) => markFace([sideA, sideB][i], bbox));
      result.className = `verdict ${answer.same ? "same" : "different"}`;
      result.textContent = `${answer.same ? "Same person" : "Different people"}: similarity ${fixed(answer.similarity, 3)}` +
        ` (threshold ${fixed(answer.threshold, 3)})`;
    } catch (error) {
      result.className = "verdict error";
      result.textContent = error.readable || String(error);
    }
  }

  wire() {
    const { enroll, verify } = this.el;
    enroll.form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (event.target.reportValidity()) this.enroll();
    });
    enroll.cancel.addEventListener("click", () => enroll.dialog.close());
    this.el.collectionForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = this.el.newCollection.value.trim();
      if (name) await this.refresh(name);
    });
    // Another collection names the faces differently: ask again for the photos on the page.
    this.el.collection.addEventListener("change", () => {
      this.refreshSubjects();
      this.ui.rerunAll();
    });
    for (const side of [verify.a, verify.b]) {
      side.input.addEventListener("change", (event) => {
        const file = event.target.files[0];
        if (side.img.src) URL.revokeObjectURL(side.img.src);
        side.svg.replaceChildren();
        verify.result.textContent = "";
        side.img.parentElement.hidden = !file;
        if (file) {
          side.img.src = URL.createObjectURL(file);
          side.img.alt = `Photo ${file.name}`;
        }
      });
    }
    verify.run.addEventListener("click", () => this.verify());
  }
}

// The face a photo of Verify was compared by, marked on it (a box, no label).
function markFace({ img, svg }, bbox) {
  if (!img.naturalWidth) return;
  drawFaces(svg, img.naturalWidth, img.naturalHeight, [{ bbox, prob: 1 }], () => {});
  svg.querySelector("text")?.remove();
}
