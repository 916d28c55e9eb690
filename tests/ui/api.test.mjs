// The page's way to the API (api/ui/js/api.js): its pure parts, without a browser.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, longPollS, path, retryAfterS } from "../../api/ui/js/api.js";

test("Retry-After in seconds, as an HTTP date, or missing", () => {
  assert.equal(retryAfterS("5"), 5);
  assert.equal(retryAfterS("0"), 0);
  assert.equal(retryAfterS("-3"), 0);
  const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
  assert.equal(retryAfterS("Wed, 21 Oct 2015 07:28:07 GMT", now), 7);
  assert.equal(retryAfterS("Wed, 21 Oct 2015 07:27:00 GMT", now), 0); // a date already past
  assert.equal(retryAfterS(null), 1);
  assert.equal(retryAfterS(""), 1);
  assert.equal(retryAfterS("soon"), 1);
});

test("a long poll waits at most 20 s and never longer than the API's sync timeout", () => {
  assert.equal(longPollS({ sync_timeout_s: 30 }), 20);
  assert.equal(longPollS({ sync_timeout_s: 5 }), 5);
  assert.equal(longPollS(undefined), 10); // before /info has answered
});

test("errors read as the API's message and code; 401 and 403 point at the key field", () => {
  assert.equal(new ApiError(400, "invalid_image", "not a recognised image format").readable,
    "not a recognised image format (400 invalid_image)");
  assert.equal(new ApiError(0, "", "The API did not answer (reset).").readable, "The API did not answer (reset).");
  assert.match(new ApiError(401, "unauthorized", "no key").readable, /needs a key/);
  assert.match(new ApiError(403, "forbidden", "bad key").readable, /was refused/);
});

test("paths escape each part", () => {
  assert.equal(path("collections", "a b", "subjects", "x/y"), "/collections/a%20b/subjects/x%2Fy");
});
