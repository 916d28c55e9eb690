// "People found" (api/ui/js/people.js): its pure parts, without a browser.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DRAGGED_CLUSTER,
  DRAGGED_FACE,
  clusterTitle,
  dragData,
  dropPlan,
  ingestBody,
  mergePlan,
  moveBody,
  photoId,
} from "../../api/ui/js/people.js";

test("an ingest sends the photos with their file names as photo ids", () => {
  assert.deepEqual(ingestBody(["AAA", "BBB"], ["a.jpg", "holiday 2024/b.JPG"]), {
    images: { data: ["AAA", "BBB"] },
    photo_ids: ["a.jpg", "holiday_2024/b.JPG"],
  });
});

test("a file name becomes a photo id the API takes", () => {
  assert.equal(photoId("été.png"), "t_.png"); // leading non-alphanumerics dropped
  assert.equal(photoId("..."), "photo");
  assert.equal(photoId("x".repeat(300)).length, 256);
  assert.match(photoId("IMG 0001 (copy).jpg"), /^[A-Za-z0-9][A-Za-z0-9_.:/-]*$/);
});

test("a cluster is titled by its name, or as unnamed, or as not a person", () => {
  assert.equal(clusterTitle({ size: 3, subject: "ann", ignored: false }), "ann (3 faces)");
  assert.equal(clusterTitle({ size: 1, subject: null, ignored: false }), "Unnamed (1 face)");
  assert.equal(clusterTitle({ size: 2, subject: null, ignored: true }), "Not a person (2 faces)");
});

test("a move goes to a cluster, a subject, or out of any cluster", () => {
  assert.deepEqual(moveBody(7), { cluster: 7 });
  assert.deepEqual(moveBody("ann"), { subject: "ann" });
  assert.deepEqual(moveBody(null), {});
});

test("a merge needs two clusters and goes into the first", () => {
  assert.equal(mergePlan([4]), null);
  assert.deepEqual(mergePlan([4, 9, 2]), { into: 4, body: { clusters: [9, 2] } });
});

test("a group dropped on another merges into the one it was dropped on; on itself, nothing", () => {
  assert.deepEqual(dropPlan({ cluster: 9 }, 4), { kind: "merge", into: 4, body: { clusters: [9] } });
  assert.equal(dropPlan({ cluster: 4 }, 4), null);
  assert.equal(dropPlan(null, 4), null);
});

test("a face dropped on a group moves into it", () => {
  assert.deepEqual(dropPlan({ face: "f1" }, 4), { kind: "move", face: "f1", body: { cluster: 4 } });
});

test("a drop carries a group id or a face id, and nothing else of another page's", () => {
  const carrying = (data) => (type) => data[type] ?? "";
  assert.deepEqual(dragData(carrying({ [DRAGGED_CLUSTER]: "12" })), { cluster: 12 });
  assert.deepEqual(dragData(carrying({ [DRAGGED_FACE]: "abc" })), { face: "abc" });
  assert.equal(dragData(carrying({ [DRAGGED_CLUSTER]: "12; DROP" })), null);
  assert.equal(dragData(carrying({ "text/plain": "12" })), null);
});
