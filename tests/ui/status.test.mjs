// The status panel's pure parts and the Flower link (api/ui/js/status.js, recognition.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { listOf, nameOf } from "../../api/ui/js/recognition.js";
import { ago, flowerUrl } from "../../api/ui/js/status.js";

const PAGE = { protocol: "http:", hostname: "example.lan" };

test("the Flower link follows /info's flower_port (FLOWER_PORT), on the page's host", () => {
  assert.equal(flowerUrl({ flower_port: 5601 }, PAGE), "http://example.lan:5601/");
  assert.equal(flowerUrl({ flower_port: 5555 }, { protocol: "https:", hostname: "[::1]" }), "https://[::1]:5555/");
  assert.equal(flowerUrl({ flower_port: 0 }, PAGE), ""); // no Flower: no link
  assert.equal(flowerUrl({}, PAGE), "");
  assert.equal(flowerUrl(null, PAGE), "");
});

test("how long a worker has been up reads in s, min or h", () => {
  assert.equal(ago(1000, 1042), "42 s");
  assert.equal(ago(1000, 1000 + 30 * 60), "30 min");
  assert.equal(ago(1000, 1000 + 5 * 3600), "5 h");
  assert.equal(ago(2000, 1000), "0 s"); // a clock a little behind the worker's
});

test("lists and names come as the API gives them: wrapped or bare, strings or objects", () => {
  assert.deepEqual(listOf({ collections: ["a"] }, "collections"), ["a"]);
  assert.deepEqual(listOf(["a"], "collections"), ["a"]);
  assert.deepEqual(listOf(null, "subjects"), []);
  assert.equal(nameOf("ann", "subject"), "ann");
  assert.equal(nameOf({ name: "ann" }, "subject", "name"), "ann");
});
