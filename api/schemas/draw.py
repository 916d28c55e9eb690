"""POST /draw_detections: the detection options and what to draw."""

from __future__ import annotations

from typing import Literal

import msgspec
from pydantic import (
    Field,
)

from api.schemas.images import DetectionRequest
from shared.contract import AnalysisOptions


class DrawRequest(DetectionRequest):
    """POST /draw_detections (and the form fields of /multipart/draw_detections): the first image
    with its faces drawn, InsightFace-REST's options plus the 106 landmarks and gender/age."""

    draw_landmarks: bool | Literal["106"] = Field(
        True, description='Draw the 5 keypoints; "106": the 106 dense landmarks instead.'
    )
    draw_scores: bool = Field(True, description="Write each face's detection score.")
    draw_sizes: bool = Field(True, description="Write each face's box width in pixels.")
    draw_ga: bool = Field(False, description="Write each face's gender and age.")

    def options(self, max_faces: int) -> AnalysisOptions:
        return msgspec.structs.replace(
            super().options(max_faces),
            extract_embedding=False,
            return_landmarks=True,
            return_landmarks106=self.draw_landmarks == "106",
            extract_ga=self.draw_ga,
        )
