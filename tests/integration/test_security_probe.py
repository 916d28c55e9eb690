"""The probes of bench/security_probe.py (issue 12's findings 6 to 8 and hostile images; the script
printed a table, at commit b87d7da) that no other test sent: a bare PNG header claiming 30000x30000
pixels. Its other cases are asserted where their concern lives: test_hygiene.py
(``<id>:done``, media types, CORS, 405, 414, 431, 413, opaque worker names), test_urls.py
(a loopback URL) and test_errors.py (a truncated PNG, in both answer formats).
"""

from __future__ import annotations

import requests

from testkit.photos import GROUP_PHOTOS
from tests import hostile
from tests.client import b64
from tests.faces import FACES_IN

SIDE = 30000  # 900 Mpx declared, against the default max_image_pixels of 40 Mpx


def test_a_png_claiming_900_mpx_in_its_header_is_refused_without_decoding(api: str) -> None:
    bomb, good = b64(hostile.png_header_only(SIDE, SIDE)), b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())
    alone = requests.post(f"{api}/extract", json={"images": {"data": [bomb]}}, timeout=30)
    assert alone.status_code == 413, alone.text
    error = alone.json()
    assert error["code"] == "limit_exceeded", error
    assert "images.data[0]" in error["message"] and "max_image_pixels" in error["message"], error
    # In API v2 it fails alone: the photo next to it is answered.
    both = requests.post(
        f"{api}/extract", json={"images": {"data": [bomb, good]}, "api_ver": "2"}, timeout=60
    )
    assert both.status_code == 200, both.text
    refused, answered = both.json()["data"]
    assert refused["status"] == "error" and refused["error"]["code"] == "limit_exceeded", refused
    assert answered["status"] == "ok" and len(answered["faces"]) == FACES_IN["yaoming.jpg"]


def test_query_numbers_in_other_scripts_are_validation_errors_not_500s(api: str) -> None:
    # "²" and "①" pass str.isdigit() and fail int(); "٣" (Arabic-Indic) was read as 3.
    for query in ("limit=%C2%B2", "offset=%E2%91%A0", "limit=%D9%A3"):
        reply = requests.get(f"{api}/collections/probe/subjects?{query}", timeout=10)
        assert (reply.status_code, reply.json()["code"]) == (422, "validation_error"), query
    waited = requests.get(f"{api}/results/{'0' * 32}?wait=%D9%A3", timeout=10)
    assert (waited.status_code, waited.json()["code"]) == (422, "validation_error")
