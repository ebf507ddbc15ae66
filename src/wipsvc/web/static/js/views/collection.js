// A collection: its WIP products (filter, search, select, start a job), the add form, its jobs.

import { endpoints, enc } from "../api.js";
import {
  h, clear, badge, notice, throttle, debounce, plural, shortId, timeEl, td, tableWrap, announce, tone, loadFailed,
  WIP_STATUSES,
} from "../dom.js";
import { live } from "../live.js";
import { addProductsForm } from "./addform.js";
import { jobsTable } from "./jobs.js";
import { productDetail } from "./product.js";
import { schedulesCard } from "./schedules.js";

const PAGE_SIZE = 50;
const IN_FLIGHT = new Set(["extracting", "generating", "cleaning"]);

export function collectionPage(main, { name, query }) {
  const state = {
    status: WIP_STATUSES.includes(query.get("status")) ? query.get("status") : "",
    search: query.get("search") || "",
    offset: 0,
    products: [],
    total: 0,
    selected: new Set(),
    open: new Set(), // wip_ids whose detail row is expanded
    exists: true,
  };

  const counts = h("ul", { class: "chips", "aria-label": "Products by status", id: "status-counts" });
  const tableBox = h("div", { id: "products" }, h("p", { class: "muted" }, "Loading products…"));
  const footer = h("div", { class: "table-foot" });
  const feedback = h("div", { id: "start-feedback" });
  const selectedText = h("span", { id: "selected-count", class: "muted", "aria-live": "polite" });
  const startButton = h("button", { class: "btn btn-primary", type: "button", id: "start-job", disabled: true }, "Start job");
  const jobs = jobsTable({ collection: name, limit: 10, label: `Jobs of ${name}` });
  const schedules = schedulesCard(name);

  const statusSelect = h("select", { id: "filter-status" },
    h("option", { value: "" }, "Any status"),
    WIP_STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s)));
  const searchInput = h("input", {
    id: "filter-search", type: "search", value: state.search, placeholder: "SKU or part of the URL", autocomplete: "off",
  });

  async function loadProducts() {
    try {
      const body = await endpoints.products(name, {
        status: state.status, search: state.search, limit: PAGE_SIZE, offset: state.offset,
      });
      state.exists = true;
      state.products = body.products;
      state.total = body.total;
      renderProducts();
    } catch (error) {
      if (error.status === 404) {
        state.exists = false;
        clear(tableBox).append(h("p", { class: "empty" },
          `Collection “${name}” has no products yet. Add some with the form: the collection is created with them.`));
        clear(footer);
        return;
      }
      clear(tableBox).append(loadFailed("products", error));
    }
  }

  async function loadCounts() {
    try {
      const { collection } = await endpoints.collection(name);
      const c = collection.product_counts || {};
      clear(counts).append(...WIP_STATUSES.filter((s) => c[s]).map((s) => h("li", {},
        h("button", {
          class: "badge", type: "button", dataset: { tone: tone(s) }, "aria-pressed": String(state.status === s),
          title: state.status === s ? "Show every status" : `Show only ${s} products`,
          onclick: () => setFilter(state.status === s ? "" : s),
        }, s, h("span", { class: "count" }, ` ${c[s]}`)))));
    } catch {
      clear(counts);
    }
  }

  function setFilter(status) {
    state.status = status;
    statusSelect.value = status;
    state.offset = 0;
    loadProducts();
    loadCounts();
  }

  function renderProducts() {
    if (!state.products.length) {
      clear(tableBox).append(h("p", { class: "empty" },
        state.status || state.search ? "No products match these filters." : "No products yet: add some with the form."));
      clear(footer);
      updateSelection();
      return;
    }
    const selectable = state.products.filter((p) => !p.active_job_id);
    const all = h("input", { type: "checkbox", id: "select-page", "aria-label": "Select every product on this page" });
    const onPage = selectable.filter((p) => state.selected.has(p.wip_id)).length;
    all.checked = selectable.length > 0 && onPage === selectable.length;
    all.indeterminate = onPage > 0 && onPage < selectable.length;
    all.disabled = selectable.length === 0;
    all.addEventListener("change", () => {
      for (const p of selectable) {
        if (all.checked) state.selected.add(p.wip_id);
        else state.selected.delete(p.wip_id);
      }
      renderProducts();
    });
    const rows = state.products.flatMap((p) => productRows(p));
    const restoreFocus = rememberFocus(tableBox);
    clear(tableBox).append(tableWrap(`Products of ${name}`, h("table", {},
      h("caption", { class: "visually-hidden" }, `Products of ${name}`),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", class: "check" }, all),
        h("th", { scope: "col" }, "SKU"),
        h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col", class: "num" }, "Row"),
        h("th", { scope: "col" }, "URL"),
        h("th", { scope: "col" }, "Job or error"),
        h("th", { scope: "col" }, "Updated"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rows))));
    const first = state.offset + 1;
    const last = state.offset + state.products.length;
    clear(footer).append(
      h("span", {}, `Showing ${first}–${last} of ${state.total}`),
      h("span", { class: "actions" },
        h("button", { class: "btn btn-small", type: "button", disabled: state.offset === 0,
          onclick: () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadProducts(); } }, "← Previous"),
        h("button", { class: "btn btn-small", type: "button", disabled: last >= state.total,
          onclick: () => { state.offset += PAGE_SIZE; loadProducts(); } }, "Next →")));
    restoreFocus();
    updateSelection();
  }

  function productRows(p) {
    const selected = state.selected.has(p.wip_id);
    const box = h("input", {
      type: "checkbox", "aria-label": `Select ${p.sku}`, checked: selected, disabled: Boolean(p.active_job_id),
      title: p.active_job_id ? "Already in an active job" : null, dataset: { wipId: p.wip_id },
    });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(p.wip_id);
      else state.selected.delete(p.wip_id);
      box.closest("tr").classList.toggle("is-selected", box.checked);
      updateSelection();
    });
    const detailId = `detail-${p.wip_id}`;
    const open = state.open.has(p.wip_id);
    const toggle = h("button", {
      class: "btn-link mono", type: "button", "aria-expanded": String(open), "aria-controls": detailId,
      title: "Show extracted data",
    }, p.sku);
    toggle.addEventListener("click", () => {
      if (state.open.has(p.wip_id)) state.open.delete(p.wip_id);
      else state.open.add(p.wip_id);
      renderProducts();
    });
    const canReset = p.status === "error" || (IN_FLIGHT.has(p.status) && !p.active_job_id);
    const canDelete = !p.active_job_id;
    const note = p.active_job_id
      ? h("span", {}, "in job ", h("a", { href: `#/c/${enc(name)}/jobs/${enc(p.active_job_id)}`, class: "mono" }, shortId(p.active_job_id)))
      : p.error ? h("span", { title: p.error }, p.error.length > 140 ? `${p.error.slice(0, 140)}…` : p.error) : null;
    const row = h("tr", { class: selected ? "is-selected" : null, dataset: { wipId: p.wip_id, sku: p.sku } },
      td("", { class: "check" }, box),
      td("SKU", { class: "nowrap" }, toggle),
      td("Status", {}, badge(p.status)),
      td("Row", { class: "num" }, p.row_num ?? "—"),
      td("URL", { class: "url" }, h("a", { href: p.url, target: "_blank", rel: "noopener noreferrer", title: p.url }, p.url)),
      td("Job or error", { class: p.error && !p.active_job_id ? "error" : null }, note ?? h("span", { class: "muted" }, "—")),
      td("Updated", { class: "nowrap" }, timeEl(p.updated_at)),
      td("", { class: "nowrap" }, canReset ? h("button", {
        class: "btn btn-small", type: "button", "aria-label": `Reset ${p.sku} to pending`, onclick: () => reset(p),
      }, "Reset") : null, canDelete ? h("button", {
        class: "btn btn-small btn-ghost", type: "button", "aria-label": `Delete ${p.sku}`, onclick: () => removeProduct(p),
      }, "Delete") : null));
    if (!open) return [row];
    return [row, h("tr", { class: "detail-row", id: detailId }, h("td", { colspan: 8 }, productDetail(p)))];
  }

  async function reset(p) {
    clear(feedback);
    try {
      await endpoints.resetProduct(name, p.wip_id);
      announce(`${p.sku} is pending again.`);
      loadProducts();
      loadCounts();
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  async function removeProduct(p) {
    clear(feedback);
    if (!window.confirm(`Delete product ${p.sku}? Its row in the sheet stays.`)) return;
    try {
      await endpoints.deleteProduct(name, p.wip_id);
      state.selected.delete(p.wip_id);
      announce(`${p.sku} deleted.`);
      loadProducts();
      loadCounts();
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  function updateSelection() {
    const n = state.selected.size;
    selectedText.textContent = n ? `${plural(n, "product")} selected` : "Nothing selected";
    startButton.disabled = n === 0;
    startButton.textContent = n ? `Start job with ${plural(n, "product")}` : "Start job";
  }

  startButton.addEventListener("click", async () => {
    clear(feedback);
    const ids = [...state.selected].sort((a, b) => a - b);
    startButton.disabled = true;
    try {
      const body = await endpoints.startJob(name, ids);
      state.selected.clear();
      announce(`Job started for ${plural(body.total_products, "product")}.`);
      location.hash = `#/c/${enc(name)}/jobs/${enc(body.job_id)}`;
    } catch (error) {
      const busy = error.details && error.details.busy;
      const items = busy ? Object.entries(busy).map(([id, job]) => `product ${id} is in job ${String(job).slice(0, 8)}`) : [];
      feedback.append(notice("bad", error.friendly || error.message, items));
      updateSelection();
    }
  });

  statusSelect.addEventListener("change", () => setFilter(statusSelect.value));
  searchInput.addEventListener("input", debounce(() => {
    state.search = searchInput.value.trim();
    state.offset = 0;
    loadProducts();
  }, 300));

  const downloadButton = h("button", { class: "btn", type: "button", id: "download-sheet" }, "Download sheet (CSV)");
  downloadButton.addEventListener("click", async () => {
    clear(feedback);
    try {
      await endpoints.downloadSheet(name);
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  });

  const deleteButton = h("button", { class: "btn btn-danger", type: "button", id: "delete-collection" }, "Delete collection");
  deleteButton.addEventListener("click", async () => {
    clear(feedback);
    const question = `Delete collection “${name}” with all its products and jobs? A Google sheet is not touched.`;
    if (!window.confirm(question)) return;
    try {
      const body = await endpoints.deleteCollection(name);
      announce(body.message);
      location.hash = "#/";
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  });

  const onAdded = (ids) => {
    for (const id of ids) state.selected.add(id);
    updateSelection();
    state.status = "";
    statusSelect.value = "";
    state.search = "";
    searchInput.value = "";
    // New products are the newest; the list is oldest first, so show the page holding them.
    state.offset = 0;
    loadProducts().then(() => {
      if (state.total > PAGE_SIZE) {
        state.offset = Math.floor((state.total - 1) / PAGE_SIZE) * PAGE_SIZE;
        loadProducts();
      }
    });
    loadCounts();
  };

  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("ol", {},
      h("li", {}, h("a", { href: "#/" }, "Overview")),
      h("li", {}, h("span", { "aria-current": "page" }, name)))),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", { tabindex: -1 }, name), counts),
      h("div", { class: "actions" }, downloadButton, deleteButton)),
    h("div", { class: "split split-wide" },
      h("section", { class: "card", "aria-labelledby": "products-title" },
        h("div", { class: "card-head" }, h("h2", { id: "products-title" }, "WIP products")),
        h("div", { class: "toolbar", role: "search", "aria-label": "Filter products" },
          h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), statusSelect),
          h("div", { class: "field grow" }, h("label", { for: "filter-search" }, "Search"), searchInput)),
        h("div", { class: "toolbar" }, startButton, selectedText,
          h("button", { class: "btn btn-ghost btn-small", type: "button",
            onclick: () => { state.selected.clear(); renderProducts(); } }, "Clear selection")),
        feedback,
        tableBox,
        footer),
      addProductsForm(name, onAdded)),
    h("section", { class: "card", "aria-labelledby": "collection-jobs-title" },
      h("div", { class: "card-head" }, h("h2", { id: "collection-jobs-title" }, "Jobs")),
      jobs.el),
    schedules.el);

  // Statuses change as jobs run; refresh at most once a second while events flow.
  const refresh = throttle(() => { loadProducts(); loadCounts(); }, 1000);
  const offProgress = live.on("progress", ({ event }) => { if (event.collection_name === name) refresh(); });
  const offReconnect = live.on("reconnected", () => { loadProducts(); loadCounts(); });
  updateSelection();
  loadProducts();
  loadCounts();
  return () => { jobs.destroy(); refresh.cancel(); offProgress(); offReconnect(); };
}

/** Live refreshes rebuild the table; keep keyboard focus on the same control of the same product. */
function rememberFocus(container) {
  const active = document.activeElement;
  if (!active || !container.contains(active)) return () => {};
  const row = active.closest("tr");
  const wipId = row && row.dataset.wipId;
  const selector = active.id ? `#${CSS.escape(active.id)}` : active.matches("input") ? "input" : "button";
  return () => {
    const scope = wipId ? container.querySelector(`tr[data-wip-id="${CSS.escape(wipId)}"]`) : container;
    const target = scope && scope.querySelector(selector);
    if (target) target.focus();
  };
}
