// A WIP product's stored data (extracted fields, their sources, descriptions), shown inline.

import { h } from "../dom.js";

function value(v) {
  if (v === null || v === undefined || v === "") return h("span", { class: "muted" }, "—");
  const text = typeof v === "string" ? v : JSON.stringify(v);
  const shown = text.length > 300 ? `${text.slice(0, 300)}…` : text;
  return typeof v === "string" ? h("span", { title: text.length > 300 ? text : null }, shown) : h("code", {}, shown);
}

function list(title, data, sources = {}) {
  const entries = Object.entries(data || {});
  if (!entries.length) return null;
  return h("div", {},
    h("h3", {}, title),
    h("dl", { class: "kv" }, entries.flatMap(([key, v]) => [
      h("dt", {}, key),
      // Descriptions are HTML written by a generator: shown as text, never rendered.
      h("dd", {}, value(v), sources[key] ? h("span", { class: "muted hint" }, ` (${sources[key]})`) : null),
    ])));
}

export function productDetail(p) {
  const parts = [
    list("Extracted", p.extracted, p.sources || {}),
    list("Descriptions", p.descriptions),
    p.error ? h("div", {}, h("h3", {}, "Last error"), h("p", { class: "error" }, p.error)) : null,
  ].filter(Boolean);
  if (!parts.length) return h("p", { class: "muted" }, "Nothing extracted yet.");
  return h("div", { class: "detail" }, parts);
}
