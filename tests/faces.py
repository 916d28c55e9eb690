"""How many faces each test photo holds, keyed by file name (the photos are listed with their
sources next to the code that reads them).

Each count is what the reference pipeline finds, insightface 0.7.3's SCRFD-500M
(``insightface.model_zoo.scrfd.SCRFD``, the file of ``worker.inference.registry.SCRFD_500M``) at a
640x640 input, the same at threshold 0.5 (the service's default) and at 0.6, and it agrees with a
visual count of the people in the photo:

- t1.jpg: 6, the group photo of six people (face widths 97-113 px).
- gdp.jpg: 5, three large faces and two small ones (24 and 28 px wide).
- yaoming.jpg: 1, a portrait.
- Tom_Hanks_54745.png: 1, an aligned 112x112 crop (detected once padded with a border).

players.jpg is not listed: its small background faces make the count depend on the threshold
(17 at 0.6, 22 at 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

FACES_IN: Mapping[str, int] = MappingProxyType(
    {
        "t1.jpg": 6,
        "gdp.jpg": 5,
        "yaoming.jpg": 1,
        "Tom_Hanks_54745.png": 1,
    }
)
