// Jobs: a live table (used on the overview, the collection page and the Jobs page) and the Jobs page.

import { endpoints, enc } from "../api.js";
import {
  h, clear, badge, progressBar, shortId, fmtDuration, fmtEta, timeEl, throttle, td, tableWrap, loadFailed, JOB_STATUSES,
} from "../dom.js";
import { live } from "../live.js";

const ACTIVE = new Set(["scheduled", "queued", "running"]);
const EVENT_TO_JOB_STATUS = { started: "running", processing: "running", completed: "completed", failed: "failed", cancelled: "cancelled" };

export function jobHref(job) {
  return `#/c/${enc(job.collection_name)}/jobs/${enc(job.job_id)}`;
}

/** Fold a progress event into a job object (REST shape). */
export function applyEvent(job, event) {
  job.total_products = event.total;
  job.processed_products = event.processed;
  job.successful_products = event.successful;
  job.failed_products = event.failed;
  job.status = event.job_status || EVENT_TO_JOB_STATUS[event.status] || job.status;
  if ("eta_seconds" in event) {
    job.eta_seconds = event.eta_seconds;
    job.etaAt = Date.now();
  }
}

/** Seconds left now, counting down from the last estimate between events. */
export function etaNow(job) {
  if (job.eta_seconds === null || job.eta_seconds === undefined) return null;
  const elapsed = job.etaAt ? (Date.now() - job.etaAt) / 1000 : 0;
  return Math.max(0, job.eta_seconds - elapsed);
}

export function timing(job) {
  if (job.status === "scheduled") return `runs at ${fmtTime(job.run_at)}`;
  if (job.status === "queued") return "waiting to start";
  if (job.status === "running") return job.cancel_requested ? "cancelling…" : `${fmtEta(etaNow(job))} left`;
  if (job.started_at && job.completed_at) {
    return `took ${fmtDuration((Date.parse(job.completed_at) - Date.parse(job.started_at)) / 1000)}`;
  }
  return "—";
}

export function jobStatusBadge(job) {
  // Still running until its products in flight finish: `cancelled` only once the job has ended.
  if (job.cancel_requested && ACTIVE.has(job.status)) return badge("cancelling");
  return badge(job.status);
}

/**
 * A live jobs table. options: collection (null = every collection), status, limit, caption, and
 * paged (show older pages). Returns {el, reload, setStatus, destroy}.
 */
export function jobsTable({ collection = null, status = "", limit = 10, label = "Jobs", paged = false } = {}) {
  const state = { status, offset: 0, total: 0, jobs: new Map(), rows: new Map() };
  const body = h("div", {}, h("p", { class: "muted" }, "Loading jobs…"));
  const pager = h("div", { class: "table-foot", id: paged ? "jobs-pager" : null });
  const el = h("div", { class: "jobs-table" }, body, pager);

  async function load() {
    try {
      // One request, however many collections: the API lists the key's jobs across them.
      const page = await endpoints.allJobs({ collection, status: state.status, limit, offset: state.offset });
      if (!page.jobs.length && state.offset > 0) {
        state.offset = Math.max(0, state.offset - limit); // the page emptied (jobs deleted): step back
        load();
        return;
      }
      state.total = page.total;
      state.jobs = new Map(page.jobs.map((job) => [job.job_id, { ...job, etaAt: Date.now() }]));
      render();
    } catch (error) {
      clear(pager);
      clear(body).append(loadFailed("jobs", error));
    }
  }

  function renderPager() {
    clear(pager);
    if (!paged || state.total <= limit) return;
    const first = state.offset + 1;
    const last = state.offset + state.jobs.size;
    const go = (offset) => { state.offset = offset; load(); };
    pager.append(
      h("span", { class: "muted" }, `${first}–${last} of ${state.total}`),
      h("button", { class: "btn btn-small", type: "button", disabled: state.offset === 0,
        onclick: () => go(Math.max(0, state.offset - limit)) }, "Newer"),
      h("button", { class: "btn btn-small", type: "button", disabled: last >= state.total,
        onclick: () => go(state.offset + limit) }, "Older"));
  }

  function render() {
    state.rows.clear();
    renderPager();
    if (!state.jobs.size) {
      clear(body).append(h("p", { class: "empty" }, state.status ? `No ${state.status} jobs.` : "No jobs yet."));
      return;
    }
    const rows = [...state.jobs.values()].map((job) => {
      const row = renderRow(job, !collection);
      state.rows.set(job.job_id, row);
      return row;
    });
    const head = h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Job"),
      collection ? null : h("th", { scope: "col" }, "Collection"),
      h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col" }, "Progress"),
      h("th", { scope: "col" }, "Time"),
      h("th", { scope: "col" }, "Created")));
    clear(body).append(tableWrap(label, h("table", {}, h("caption", { class: "visually-hidden" }, label), head, h("tbody", {}, rows))));
  }

  const reloadSoon = throttle(load, 1500);

  const offProgress = live.on("progress", ({ event, newest }) => {
    if (collection && event.collection_name !== collection) return;
    const job = state.jobs.get(event.job_id);
    if (!job) {
      // A job we do not list yet (started elsewhere or just now): re-read the list.
      reloadSoon();
      return;
    }
    if (!newest) return;
    applyEvent(job, event);
    if (state.status && job.status !== state.status) {
      reloadSoon();
      return;
    }
    const old = state.rows.get(job.job_id);
    const row = renderRow(job, !collection);
    state.rows.set(job.job_id, row);
    if (old) old.replaceWith(row);
  });
  const offScheduled = live.on("scheduled", ({ event }) => {
    if (!collection || event.collection_name === collection) reloadSoon();
  });
  const offReconnect = live.on("reconnected", load);
  // Count ETAs down between events; poll instead while the live connection is down.
  let tick = 0;
  const ticker = setInterval(() => {
    tick += 1;
    const active = [...state.jobs.values()].some((job) => ACTIVE.has(job.status));
    if (active && live.state !== "connected" && tick % 5 === 0) load();
    for (const job of state.jobs.values()) {
      if (job.status !== "running") continue;
      const cell = state.rows.get(job.job_id)?.querySelector(".timing");
      if (cell) cell.textContent = timing(job);
    }
  }, 1000);

  load();
  return {
    el,
    reload: load,
    setStatus(value) { state.status = value; state.offset = 0; load(); },
    destroy() { offProgress(); offScheduled(); offReconnect(); clearInterval(ticker); reloadSoon.cancel(); },
  };
}

function renderRow(job, showCollection) {
  const done = job.processed_products;
  return h("tr", { dataset: { jobId: job.job_id, status: job.status } },
    td("Job", {}, h("a", { href: jobHref(job), class: "mono", title: job.job_id }, shortId(job.job_id)),
      job.retry_of ? h("span", { class: "muted hint" }, " retry") : null,
      job.priority && job.priority !== "normal" ? h("span", { class: `priority priority-${job.priority}` }, ` ${job.priority}`) : null,
      job.schedule_id ? h("span", { class: "muted hint", title: `Made by schedule ${job.schedule_id}` }, " scheduled") : null),
    showCollection ? td("Collection", {}, h("a", { href: `#/c/${enc(job.collection_name)}` }, job.collection_name)) : null,
    td("Status", {}, jobStatusBadge(job)),
    td("Progress", {}, h("div", { class: "progress-line" },
      progressBar({
        total: job.total_products, successful: job.successful_products, failed: job.failed_products,
        active: job.status === "running", label: `Progress of job ${shortId(job.job_id)}`,
      }),
      h("span", { class: "progress-text", title: `${job.successful_products} succeeded, ${job.failed_products} failed` },
        `${done}/${job.total_products}`,
        job.failed_products ? h("span", { class: "failed" }, ` · ${job.failed_products} failed`) : null))),
    td("Time", { class: "timing nowrap" }, timing(job)),
    td("Created", { class: "nowrap" }, timeEl(job.created_at)));
}

/** The Jobs page: every collection's jobs, newest first, filterable by status, page by page. */
export function jobsPage(main) {
  const table = jobsTable({ limit: 50, label: "Recent jobs of every collection", paged: true });
  const select = h("select", { id: "jobs-status" },
    h("option", { value: "" }, "Any status"),
    JOB_STATUSES.map((s) => h("option", { value: s }, s)));
  select.addEventListener("change", () => table.setStatus(select.value));
  main.append(
    h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Jobs")),
    h("section", { class: "card", "aria-labelledby": "jobs-title" },
      h("div", { class: "card-head" }, h("h2", { id: "jobs-title" }, "Recent jobs"),
        h("div", { class: "toolbar" }, h("div", { class: "field" }, h("label", { for: "jobs-status" }, "Status"), select))),
      table.el));
  return () => table.destroy();
}

/** A time in the viewer's locale, with its date: when a scheduled job runs. */
export function fmtTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
