// The small helpers every view uses: building HTML and SVG elements, formatting numbers.
// Nothing here touches the page at import, so node's tests import the modules that use them.

const SVG = "http://www.w3.org/2000/svg";

export function element(name, attributes = {}, text = "") {
  const created = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) created.setAttribute(key, String(value));
  if (text) created.textContent = text;
  return created;
}

export function svgElement(name, attributes = {}, parent = null) {
  const created = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) created.setAttribute(key, String(value));
  if (parent) parent.append(created);
  return created;
}

// A number with `digits` decimals, or a dash where the API gave none.
export const fixed = (value, digits) => (value === undefined || value === null ? "–" : Number(value).toFixed(digits));
