// The request bodies the page sends and how it reads an answer (api/ui/js/photos.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { imageOf, precise, recognitionBody, recognizeBody, requestBody } from "../../api/ui/js/photos.js";

const DEFAULTS = { detector: "", threshold: "0.5", max_size: "640", landmarks: "5", extract_ga: false, flip: false };

test("/extract's body from the options form as it comes", () => {
  assert.deepEqual(requestBody(DEFAULTS, "QUJD"), {
    images: { data: ["QUJD"] },
    api_ver: "2",
    threshold: 0.5,
    max_size: [640, 640],
    return_landmarks: true,
    extract_ga: false,
  });
});

test("/extract's body: a detector, 106 landmarks, no size limit, flip only when checked", () => {
  const options = { ...DEFAULTS, detector: "scrfd", max_size: "0", landmarks: "106", extract_ga: true, flip: true };
  const body = requestBody(options, "QUJD");
  assert.equal(body.detector, "scrfd");
  assert.equal(body.max_size, 0);
  assert.equal(body.return_landmarks, "106");
  assert.equal(body.extract_ga, true);
  assert.equal(body.flip, true);
  assert.equal(requestBody({ ...DEFAULTS, landmarks: "none" }, "QUJD").return_landmarks, false);
  assert.equal("flip" in requestBody(DEFAULTS, "QUJD"), false);
  assert.equal("detector" in requestBody(DEFAULTS, "QUJD"), false);
});

test("recognition bodies name the detection threshold det_threshold and leave the match threshold to the API", () => {
  const body = recognitionBody({ ...DEFAULTS, threshold: "0.45", detector: "retinaface" }, ["QQ==", "Qg=="]);
  assert.deepEqual(body, {
    images: { data: ["QQ==", "Qg=="] },
    det_threshold: 0.45,
    max_size: [640, 640],
    detector: "retinaface",
  });
  const recognize = recognizeBody({ ...DEFAULTS, landmarks: "106", extract_ga: true }, "QQ==");
  assert.deepEqual(recognize, {
    images: { data: ["QQ=="] },
    det_threshold: 0.5,
    max_size: [640, 640],
    return_landmarks: "106",
    extract_ga: true,
  });
  assert.equal("threshold" in recognize, false);
});

test("an answer's one image, or its error without the images.data[0] prefix", () => {
  const image = { status: "ok", faces: [] };
  assert.equal(imageOf({ data: [image] }), image);
  const failed = { data: [{ status: "error", error: { code: "invalid_image", message: "images.data[0]: not an image" } }] };
  assert.throws(() => imageOf(failed), { code: "invalid_image", message: "not an image" });
});

test("faces are drawn from the float copies of their boxes and landmarks where there are some", () => {
  const face = { bbox: [1, 2, 3, 4], bbox_float: [1.2, 2.4, 3.6, 4.8], landmarks: [[1, 1]], landmarks_float: [[1.5, 1.5]] };
  assert.deepEqual(precise(face).bbox, [1.2, 2.4, 3.6, 4.8]);
  assert.deepEqual(precise(face).landmarks, [[1.5, 1.5]]);
  assert.deepEqual(precise({ bbox: [1, 2, 3, 4] }).bbox, [1, 2, 3, 4]);
});
