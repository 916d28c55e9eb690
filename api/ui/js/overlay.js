// Faces drawn over a photo as SVG, in the photo's own pixels (the API's boxes are in original
// image pixels, EXIF-upright, as the browser shows the photo): the viewBox does the scaling.

const SVG = "http://www.w3.org/2000/svg";

function node(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.append(element);
  return element;
}

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

// Draws every face; onFace(index, group) lets the caller wire hover and clicks.
export function drawFaces(svg, width, height, faces, onFace) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  // Sizes relative to the photo so the marks read the same on small and large photos.
  const unit = Math.max(width, height) / 600;
  faces.forEach((face, index) => {
    const [x1, y1, x2, y2] = face.bbox;
    const group = node("g", { class: `face ${faceKind(face)}`, "data-face": index }, svg);
    node("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, rx: unit }, group);
    for (const [x, y] of face.landmarks106 || []) {
      node("circle", { cx: x, cy: y, r: Math.max(0.6, unit * 0.6), class: "dense" }, group);
    }
    for (const [x, y] of face.landmarks || []) {
      node("circle", { cx: x, cy: y, r: Math.max(1, unit * 1.6), class: "keypoint" }, group);
    }
    const size = Math.max(10, unit * 11);
    const text = node("text", { x: x1, y: Math.max(size, y1 - unit * 3), "font-size": size }, group);
    text.textContent = `${index + 1}: ${faceLabel(face)}`;
    onFace(index, group);
  });
}
