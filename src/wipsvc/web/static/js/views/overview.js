// Overview: health, collections with product counts by status, and recent jobs.

import { endpoints, enc } from "../api.js";
import { h, clear, throttle, plural, tone, loadFailed, WIP_STATUSES } from "../dom.js";
import { live } from "../live.js";
import { healthPanel } from "./health.js";
import { jobsTable } from "./jobs.js";

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function overviewPage(main) {
  const health = healthPanel();
  const jobs = jobsTable({ limit: 8, label: "Recent jobs" });
  const grid = h("div", { class: "grid", id: "collections" }, h("p", { class: "muted" }, "Loading collections…"));

  const loadCollections = async () => {
    try {
      const { collections } = await endpoints.collections();
      clear(grid);
      if (!collections.length) {
        grid.append(h("p", { class: "empty" }, "No collections yet. Name one below and add products to it."));
        return;
      }
      grid.append(...collections.map(collectionCard));
    } catch (error) {
      clear(grid).append(loadFailed("collections", error));
    }
  };
  // Product statuses move as jobs run; a few reads per second at most.
  const soon = throttle(loadCollections, 2000);
  const offProgress = live.on("progress", soon);
  const offReconnect = live.on("reconnected", loadCollections);

  main.append(
    h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Overview")),
    h("div", { class: "split" },
      h("div", {},
        h("section", { class: "card", "aria-labelledby": "collections-title" },
          h("div", { class: "card-head" }, h("h2", { id: "collections-title" }, "Collections")),
          grid,
          openForm()),
        h("section", { class: "card", "aria-labelledby": "recent-jobs-title" },
          h("div", { class: "card-head" }, h("h2", { id: "recent-jobs-title" }, "Recent jobs"),
            h("a", { href: "#/jobs" }, "All jobs →")),
          jobs.el)),
      health.el));
  loadCollections();
  return () => {
    health.destroy();
    jobs.destroy();
    soon.cancel();
    offProgress();
    offReconnect();
  };
}

function collectionCard(collection) {
  const counts = collection.product_counts || {};
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const href = `#/c/${enc(collection.name)}`;
  const bar = h("div", { class: "stackbar", "aria-hidden": "true" });
  for (const status of WIP_STATUSES) {
    if (!counts[status]) continue;
    const part = h("span", { dataset: { tone: tone(status) }, title: `${status}: ${counts[status]}` });
    part.style.width = `${(counts[status] / total) * 100}%`;
    bar.append(part);
  }
  const chips = WIP_STATUSES.filter((s) => counts[s]).map((status) =>
    h("li", {}, h("a", {
      class: "badge", href: `${href}?status=${status}`, dataset: { tone: tone(status) },
      "aria-label": `${counts[status]} ${status} in ${collection.name}`,
    }, status, h("span", { class: "count" }, ` ${counts[status]}`))));
  return h("article", { class: "card collection-card", "aria-labelledby": `col-${collection.name}`, dataset: { collection: collection.name } },
    h("h3", { id: `col-${collection.name}` }, h("a", { href }, collection.name)),
    h("span", { class: "total" }, total ? plural(total, "product") : "No products yet"),
    total ? bar : null,
    chips.length ? h("ul", { class: "chips", "aria-label": "Products by status" }, chips) : null);
}

function openForm() {
  const input = h("input", {
    id: "open-collection", type: "text", name: "collection", required: true, autocomplete: "off",
    pattern: NAME.source, "aria-describedby": "open-collection-hint", placeholder: "e.g. sinks",
  });
  const form = h("form", { "aria-label": "Open or create a collection" },
    h("div", { class: "inline-form" },
      h("div", { class: "field" }, h("label", { for: "open-collection" }, "Open or create a collection"), input),
      h("button", { class: "btn", type: "submit" }, "Open")),
    h("p", { class: "hint", id: "open-collection-hint" },
      "Lower-case letters, digits, - and _. A new collection is created when you add its first products."));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = input.value.trim().toLowerCase();
    if (!NAME.test(name)) {
      input.setCustomValidity("Use lower-case letters, digits, - and _ (max 64).");
      input.reportValidity();
      return;
    }
    location.hash = `#/c/${enc(name)}`;
  });
  input.addEventListener("input", () => input.setCustomValidity(""));
  return h("div", { class: "actions" }, form);
}

