// A job: live progress, per-product results, activity log, Make urgent, Cancel and Retry failed.

import { endpoints, enc } from "../api.js";
import {
  h, clear, badge, notice, progressBar, shortId, timeEl, throttle, tableWrap, announce, plural, loadFailed, STEPS,
} from "../dom.js";
import { live } from "../live.js";
import { applyEvent, jobHref, jobStatusBadge, timing } from "./jobs.js";
import { resultRow } from "./results.js";
import { deliveriesCard } from "./deliveries.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const LOG_LIMIT = 200;

export function jobPage(main, { name, id }) {
  const state = { job: null, skus: new Map(), liveItems: new Map(), log: [], catchUp: "" };
  const title = h("h1", { tabindex: -1 }, `Job ${shortId(id)}`);
  const headActions = h("div", { class: "actions", id: "job-actions" });
  const feedback = h("div", { id: "job-feedback" });
  // Kept apart from `feedback` (answers to Cancel, Retry…): cleared by the next load that works.
  const loadProblem = h("div", { id: "job-load-problem" });
  const summary = h("div", { id: "job-summary" }, h("p", { class: "muted" }, "Loading job…"));
  const results = h("div", { id: "job-results" });
  const logList = h("ol", { class: "log", id: "job-log", reversed: true, "aria-label": "Progress events, newest first" });
  const catchUp = h("p", { class: "hint", id: "job-catchup" });
  let destroyed = false;

  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("ol", {},
      h("li", {}, h("a", { href: "#/" }, "Overview")),
      h("li", {}, h("a", { href: `#/c/${enc(name)}` }, name)),
      h("li", {}, h("span", { "aria-current": "page" }, `Job ${shortId(id)}`)))),
    h("div", { class: "page-head" }, title, headActions),
    loadProblem,
    feedback,
    h("div", { class: "split" },
      h("section", { class: "card", "aria-labelledby": "summary-title" },
        h("div", { class: "card-head" }, h("h2", { id: "summary-title" }, "Progress")), summary),
      h("section", { class: "card", "aria-labelledby": "log-title" },
        h("div", { class: "card-head" }, h("h2", { id: "log-title" }, "Activity")), catchUp, logList)),
    h("section", { class: "card", "aria-labelledby": "results-title" },
      h("div", { class: "card-head" }, h("h2", { id: "results-title" }, "Products")), results));
  const notifications = deliveriesCard(name, id);
  main.append(notifications.element);

  async function load() {
    try {
      const { job } = await endpoints.job(name, id);
      if (destroyed) return;
      clear(loadProblem);
      const wasActive = state.job && !TERMINAL.has(state.job.status);
      state.job = { ...job, etaAt: Date.now() };
      for (const r of job.results) state.skus.set(r.wip_id, r.sku);
      render();
      if (TERMINAL.has(job.status)) notifications.refresh();
      if (wasActive && TERMINAL.has(job.status)) announce(`Job ${job.status}: ${job.successful_products} succeeded, ${job.failed_products} failed.`);
    } catch (error) {
      if (destroyed) return;
      if (error.status === 404) {
        clear(summary).append(notice("bad", error.friendly), h("p", {}, h("a", { href: `#/c/${enc(name)}` }, `Back to ${name}`)));
        clear(headActions);
        return;
      }
      clear(loadProblem).append(loadFailed("the job", error));
    }
  }

  async function loadSkus() {
    // Products not finished yet are not in `results`; their SKUs come from the product list.
    try {
      const body = await endpoints.products(name, { limit: 500 });
      for (const p of body.products) if (!state.skus.has(p.wip_id)) state.skus.set(p.wip_id, p.sku);
      if (state.job) renderResults();
    } catch {
      /* rows fall back to the product id */
    }
  }

  function render() {
    const job = state.job;
    clear(title).append(`Job ${shortId(job.job_id)} `, jobStatusBadge(job));
    document.title = `Job ${shortId(job.job_id)} (${job.status}) · wipsvc`;
    renderActions();
    renderSummary();
    renderResults();
  }

  function renderActions() {
    const job = state.job;
    clear(headActions);
    if (job.status === "queued" && job.priority !== "urgent") {
      // Only a queued job's priority can change: once it runs it keeps its own.
      headActions.append(h("button", { class: "btn", type: "button", id: "make-urgent", onclick: () => prioritise("urgent") },
        "Make urgent"));
    }
    if (!TERMINAL.has(job.status)) {
      headActions.append(h("button", {
        class: "btn btn-danger", type: "button", id: "cancel-job", disabled: job.cancel_requested, onclick: cancel,
      }, job.cancel_requested ? "Cancelling…" : "Cancel job"));
    } else {
      headActions.append(h("button", {
        class: "btn btn-primary", type: "button", id: "retry-job", disabled: job.failed_products === 0, onclick: () => retry("failed"),
        title: job.failed_products === 0 ? "No product failed" : null,
      }, job.failed_products ? `Retry ${plural(job.failed_products, "failed product")}` : "Retry failed"));
      const skipped = job.results.filter((r) => r.status === "skipped").length;
      if (skipped) {
        headActions.append(h("button", { class: "btn", type: "button", id: "run-skipped", onclick: () => retry("skipped") },
          `Run ${plural(skipped, "skipped product")}`));
      }
      headActions.append(h("button", { class: "btn btn-danger", type: "button", id: "delete-job", onclick: remove },
        "Delete job"));
    }
  }

  function renderSummary() {
    const job = state.job;
    const done = job.processed_products;
    const pct = job.total_products ? Math.round((done / job.total_products) * 100) : 0;
    clear(summary).append(
      h("div", { class: "progress-line" },
        progressBar({
          total: job.total_products, successful: job.successful_products, failed: job.failed_products,
          active: job.status === "running", big: true, label: "Job progress",
        }),
        h("strong", { class: "progress-text", id: "job-percent" }, `${pct}%`)),
      h("p", { id: "job-progress-text", role: "status", class: "muted" },
        `${done} of ${job.total_products} processed — ${job.successful_products} succeeded, ${job.failed_products} failed`),
      h("dl", { class: "kv" },
        h("dt", {}, "Collection"), h("dd", {}, h("a", { href: `#/c/${enc(job.collection_name)}` }, job.collection_name)),
        h("dt", {}, "Job id"), h("dd", { class: "mono" }, job.job_id),
        h("dt", {}, "Priority"), h("dd", { id: "job-priority", dataset: { priority: job.priority } }, job.priority),
        h("dt", {}, "Time"), h("dd", { id: "job-timing" }, timing(job)),
        h("dt", {}, "Created"), h("dd", {}, timeEl(job.created_at)),
        job.run_at ? [h("dt", {}, "Runs at"), h("dd", { id: "job-run-at" }, timeEl(job.run_at))] : null,
        job.schedule_id ? [h("dt", {}, "Schedule"), h("dd", {}, `made by schedule ${job.schedule_id}`)] : null,
        h("dt", {}, "Started"), h("dd", {}, timeEl(job.started_at)),
        h("dt", {}, "Finished"), h("dd", {}, timeEl(job.completed_at)),
        job.retry_of ? [h("dt", {}, "Retry of"), h("dd", {},
          h("a", { href: jobHref({ collection_name: job.collection_name, job_id: job.retry_of }), class: "mono" }, shortId(job.retry_of)))] : null,
        hasTokens(job.token_usage) ? [h("dt", {}, "LLM tokens"), h("dd", {}, Object.entries(job.token_usage).map(([k, v]) => `${k} ${v}`).join(" · "))] : null,
        job.error ? [h("dt", {}, "Error"), h("dd", { class: "error" }, job.error)] : null),
    );
  }

  function renderResults() {
    const job = state.job;
    const byId = new Map(job.results.map((r) => [r.wip_id, r]));
    const rows = job.wip_ids.map((wipId) => {
      const result = byId.get(wipId) || state.liveItems.get(wipId) || null;
      return resultRow(wipId, result, state.skus.get(wipId), job.status);
    });
    clear(results).append(h("p", { class: "hint" }, `Steps: ${STEPS.map(([, label]) => label.toLowerCase()).join(" → ")}.`), tableWrap("Per-product results", h("table", {},
      h("caption", { class: "visually-hidden" }, "Per-product results"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "SKU"),
        h("th", { scope: "col" }, "Outcome"),
        h("th", { scope: "col" }, "Steps"),
        h("th", { scope: "col", class: "num" }, "Sheet row"),
        h("th", { scope: "col", class: "num" }, "Duration"),
        h("th", { scope: "col" }, "Extracted fields"),
        h("th", { scope: "col" }, "Descriptions"),
        h("th", { scope: "col", class: "num" }, "Attempts"),
        h("th", { scope: "col" }, "Error"))),
      h("tbody", {}, rows))));
  }

  function addLog(event) {
    state.log.push(event);
    state.log.sort((a, b) => b.seq - a.seq);
    state.log.length = Math.min(state.log.length, LOG_LIMIT);
    clear(logList).append(...state.log.map(logItem));
  }

  async function cancel() {
    clear(feedback);
    try {
      const body = await endpoints.cancelJob(name, id);
      state.job = { ...body.job, etaAt: Date.now() };
      feedback.append(notice("info", body.message));
      announce(body.message);
      render();
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  async function prioritise(priority) {
    clear(feedback);
    try {
      const body = await endpoints.changePriority(name, id, priority);
      state.job = { ...state.job, ...body.job };
      const message = `Priority set to ${body.job.priority}.`;
      feedback.append(notice("info", message));
      announce(message);
      render();
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  async function retry(products) {
    clear(feedback);
    try {
      const body = await endpoints.retryJob(name, id, products);
      announce(`Retry started for ${plural(body.total_products, "product")}.`);
      location.hash = `#/c/${enc(name)}/jobs/${enc(body.job_id)}`;
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  async function remove() {
    clear(feedback);
    if (!window.confirm(`Delete job ${shortId(id)} and its history? Its products and sheet rows stay.`)) return;
    try {
      const body = await endpoints.deleteJob(name, id);
      announce(body.message);
      location.hash = `#/c/${enc(name)}`;
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  // Events say which product finished; REST then fills in steps, durations and fields.
  const refetch = throttle(load, 1000);
  function remember(event) {
    const p = event.current_product;
    if (!p || p.wip_id === undefined) return;
    state.skus.set(p.wip_id, p.sku);
    state.liveItems.set(p.wip_id, {
      wip_id: p.wip_id, sku: p.sku, success: p.success, row_num: p.row_num, error: p.error || null,
      error_step: p.error_step || null, status: p.success ? "succeeded" : "failed", live: true,
    });
  }

  const offProgress = live.on("progress", ({ event, newest }) => {
    if (event.job_id !== id) return;
    addLog(event);
    remember(event);
    if (!state.job) return;
    if (newest) applyEvent(state.job, event);
    render();
    if (TERMINAL.has(event.status)) load();
    else refetch();
  });
  const offSubscribed = live.on("subscribed", ({ jobId, afterSeq, reason, ack }) => {
    if (jobId !== id) return;
    catchUp.textContent = ack && ack.ok
      ? (reason === "reconnect"
        ? `Caught up after reconnecting: ${plural(ack.replayed, "missed event")} replayed (after #${afterSeq}).`
        : `Following live · ${plural(state.log.length, "event")} so far.`)
      : `Live catch-up unavailable${ack && ack.error ? `: ${ack.error}` : ""}.`;
  });
  const offReconnect = live.on("reconnected", load);
  let tick = 0;
  const ticker = setInterval(() => {
    tick += 1;
    if (!state.job || TERMINAL.has(state.job.status)) return;
    // Without a live connection (blocked WebSocket, server restarting) fall back to polling.
    if (live.state !== "connected" && tick % 3 === 0) load();
    const cell = document.getElementById("job-timing");
    if (cell && state.job.status === "running") cell.textContent = timing(state.job);
  }, 1000);

  // Events this page already received elsewhere (e.g. on the overview) are not replayed again.
  for (const event of live.history(id)) {
    addLog(event);
    remember(event);
  }
  load().then(() => live.watch(id));
  loadSkus();
  return () => {
    destroyed = true;
    live.unwatch(id);
    refetch.cancel();
    clearInterval(ticker);
    offProgress();
    offSubscribed();
    offReconnect();
  };
}

function stepLabel(step) {
  const found = STEPS.find(([key]) => key === step);
  return (found ? found[1] : step).toLowerCase();
}

function hasTokens(usage) {
  return Boolean(usage) && Object.values(usage).some((n) => n > 0);
}

function logItem(event) {
  const p = event.current_product;
  let text;
  if (event.status === "processing" && p) {
    const outcome = p.success ? "succeeded" : p.error_step ? `failed at ${stepLabel(p.error_step)}` : "failed";
    text = [`${p.sku} ${outcome}`, p.row_num ? ` → row ${p.row_num}` : "", p.error ? `: ${p.error}` : ""].join("");
  } else if (event.status === "started") {
    text = `Job started (${plural(event.total, "product")})`;
  } else if (event.phase === "paused") {
    text = "Job paused: its server is shutting down; the next one resumes it";
  } else if (event.phase === "resumed") {
    text = `Job resumed (${event.processed} of ${plural(event.total, "product")} done)`;
  } else {
    text = `Job ${event.status}: ${event.successful} succeeded, ${event.failed} failed`;
  }
  return h("li", { dataset: { seq: event.seq, status: event.status } },
    h("span", { class: "seq" }, `#${event.seq}`),
    event.timestamp ? timeEl(event.timestamp, { clock: true }) : h("span", {}),
    h("span", {}, event.status === "processing" ? null : badge(event.status), " ", text));
}

