// Faces drawn over a photo as SVG, in the photo's own pixels (the API's boxes are in original
// image pixels, EXIF-upright, as the browser shows the photo): the viewBox does the scaling.

import { svgElement } from "./helpers.js";

export function faceLabel(face) {
  const parts = [];
  if (face.subject) parts.push(face.subject);
  else if (face.recognized) parts.push("unknown");
  parts.push(face.prob.toFixed(2));
  if (face.gender) parts.push(face.gender === "female" ? "F" : "M");
  if (face.age !== undefined) parts.push(String(Math.round(face.age)));
  return parts.join(" · ");
}

export function faceKind(face) {
  if (face.subject) return "known";
  return face.recognized ? "unknown" : "detected";
}

// Where a face's label starts (x, the baseline's y): above its box from the box's left edge; a
// label that would run past the photo's right edge (and over the table beside it) ends at the
// box's right edge instead, and one still too wide ends at the photo's edge, never starting
// left of the photo.
export function labelPlacement(bbox, labelWidth, fontSize, photoWidth, unit) {
  const [x1, y1, x2] = bbox;
  const y = Math.max(fontSize, y1 - unit * 3);
  const x = x1 + labelWidth <= photoWidth ? x1 : Math.min(x2, photoWidth) - labelWidth;
  return { x: Math.max(0, Math.min(x, photoWidth - labelWidth)), y };
}

// Draws every face; onFace(index, group) lets the caller wire hover and clicks.
export function drawFaces(svg, width, height, faces, onFace) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  // Sizes relative to the photo so the marks read the same on small and large photos.
  const unit = Math.max(width, height) / 600;
  const size = Math.max(10, unit * 11);
  const labels = faces.map((face, index) => {
    const [x1, y1, x2, y2] = face.bbox;
    const group = svgElement("g", { class: `face ${faceKind(face)}`, "data-face": index }, svg);
    svgElement("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, rx: unit }, group);
    for (const [x, y] of face.landmarks106 || []) {
      svgElement("circle", { cx: x, cy: y, r: Math.max(0.6, unit * 0.6), class: "dense" }, group);
    }
    for (const [x, y] of face.landmarks || []) {
      svgElement("circle", { cx: x, cy: y, r: Math.max(1, unit * 1.6), class: "keypoint" }, group);
    }
    const text = svgElement("text", { "font-size": size }, group);
    text.textContent = `${index + 1}: ${faceLabel(face)}`;
    onFace(index, group);
    return text;
  });
  // Measured once all are drawn (one layout, not one a face), then placed; the outline (CSS
  // stroke) reaches past the glyphs. A photo not shown yet measures 0: estimate its labels.
  const widths = labels.map((text) => text.getComputedTextLength() || text.textContent.length * size * 0.6);
  labels.forEach((text, index) => {
    const { x, y } = labelPlacement(faces[index].bbox, widths[index] + 2 * unit, size, width, unit);
    text.setAttribute("x", String(x));
    text.setAttribute("y", String(y));
  });
}
