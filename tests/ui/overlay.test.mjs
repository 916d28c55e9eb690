// Labels stay inside the photo (api/ui/js/overlay.js): one near the right edge must not run over
// the faces table beside the photo.
import assert from "node:assert/strict";
import { test } from "node:test";

import { faceKind, faceLabel, labelPlacement } from "../../api/ui/js/overlay.js";

const WIDTH = 600;
const SIZE = 11;
const UNIT = 1;

test("a label starts at its box's left edge, above the box, when it fits", () => {
  assert.deepEqual(labelPlacement([100, 200, 160, 280], 90, SIZE, WIDTH, UNIT), { x: 100, y: 197 });
});

test("a label that would run past the right edge ends at its box's right edge instead", () => {
  const { x } = labelPlacement([540, 200, 590, 260], 90, SIZE, WIDTH, UNIT);
  assert.equal(x, 500);
  assert.ok(x + 90 <= WIDTH);
});

test("a label wider than its box at the very edge ends at the photo's edge", () => {
  assert.equal(labelPlacement([560, 200, 600.4, 260], 120, SIZE, WIDTH, UNIT).x, 480);
});

test("a label wider than the photo starts at its left edge, never left of the photo", () => {
  assert.equal(labelPlacement([10, 200, 50, 260], 700, SIZE, WIDTH, UNIT).x, 0);
  assert.equal(labelPlacement([-4, 200, 50, 260], 90, SIZE, WIDTH, UNIT).x, 0);
});

test("a box at the top keeps its label's baseline inside the photo", () => {
  assert.equal(labelPlacement([100, 2, 160, 80], 90, SIZE, WIDTH, UNIT).y, SIZE);
});

test("labels say who, the score, gender and age", () => {
  assert.equal(faceLabel({ prob: 0.987, gender: "female", age: 31.6 }), "0.99 · F · 32");
  assert.equal(faceLabel({ prob: 0.9, subject: "ann", recognized: true }), "ann · 0.90");
  assert.equal(faceLabel({ prob: 0.9, recognized: true }), "unknown · 0.90");
  assert.equal(faceKind({ subject: "ann", recognized: true }), "known");
  assert.equal(faceKind({ recognized: true }), "unknown");
  assert.equal(faceKind({}), "detected");
});
