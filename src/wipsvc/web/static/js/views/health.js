// Health panel: throughput over the last 15 minutes, running/queued jobs, quotas (GET /api/stats).

import { endpoints } from "../api.js";
import { h, clear, throttle, plural, loadFailed } from "../dom.js";
import { live } from "../live.js";

const REFRESH_MS = 30000;

export function healthPanel() {
  const body = h("div", { class: "health-body" }, h("p", { class: "muted" }, "Loading…"));
  const updated = h("span", { class: "muted hint" });
  const root = h("section", { class: "card", "aria-labelledby": "health-title", id: "health" },
    h("div", { class: "card-head" }, h("h2", { id: "health-title" }, "Health"), updated),
    body);

  let stopped = false;
  const refresh = async () => {
    if (stopped) return;
    try {
      const stats = await endpoints.stats();
      render(body, stats);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      clear(body).append(loadFailed("stats", error));
    }
  };
  // Products finishing change the figures: re-read soon after events, without hammering the API.
  const soon = throttle(refresh, 3000);
  const offProgress = live.on("progress", ({ event }) => {
    if (event.status !== "started") soon();
  });
  const offReconnect = live.on("reconnected", refresh);
  const timer = setInterval(refresh, REFRESH_MS);
  refresh();

  return {
    el: root,
    destroy() {
      stopped = true;
      clearInterval(timer);
      soon.cancel();
      offProgress();
      offReconnect();
    },
  };
}

function render(body, stats) {
  const finished = stats.products_finished_last_15m || [];
  const failed = stats.products_failed_last_15m || finished.map(() => 0);
  const total = finished.reduce((a, b) => a + b, 0);
  const totalFailed = failed.reduce((a, b) => a + b, 0);
  const thisMinute = finished.length ? finished[finished.length - 1] : 0;
  const busyMinutes = finished.filter((n) => n > 0).length;
  const average = busyMinutes ? total / busyMinutes : 0;

  clear(body).append(
    h("div", { class: "tiles" },
      tile(stats.running_jobs, "Running jobs", "stat-running"),
      tile(stats.queued_jobs, "Queued jobs", "stat-queued"),
      tile(total, "Finished · 15 min", "stat-finished", totalFailed ? `${totalFailed} failed` : null),
      tile(thisMinute, "This minute", "stat-rate"),
    ),
    chart(finished, failed, average),
    quotas(stats.quotas || {}),
  );
}

function tile(value, label, id, sub = null) {
  return h("div", { class: "tile" },
    h("div", { class: "value", id }, String(value ?? "—")),
    h("div", { class: "label" }, label),
    sub ? h("div", { class: "sub" }, sub) : null);
}

function chart(finished, failed, average) {
  const max = Math.max(1, ...finished);
  const minutes = finished.length;
  const bars = finished.map((n, i) => {
    const ago = minutes - 1 - i;
    const when = ago === 0 ? "this minute" : `${ago} min ago`;
    const bar = h("div", { class: "bar", title: `${when}: ${n} finished, ${failed[i] || 0} failed` });
    const bad = h("span", { class: "bad" });
    const ok = h("span", { class: "ok" });
    bad.style.height = `${((failed[i] || 0) / max) * 100}%`;
    ok.style.height = `${((n - (failed[i] || 0)) / max) * 100}%`;
    bar.append(bad, ok);
    return bar;
  });
  const summary = finished.some((n) => n > 0)
    ? `${plural(finished.reduce((a, b) => a + b, 0), "product")} finished in the last ${minutes} minutes, ` +
      `about ${average.toFixed(1)} per busy minute; most in one minute: ${Math.max(...finished)}.`
    : `No products finished in the last ${minutes} minutes.`;
  return h("figure", { class: "throughput", "aria-labelledby": "throughput-caption" },
    h("div", { class: "chart", role: "img", "aria-label": summary }, bars),
    h("div", { class: "chart-axis", "aria-hidden": "true" }, h("span", {}, `${minutes} min ago`), h("span", {}, "now")),
    h("figcaption", { id: "throughput-caption", class: "legend" },
      h("span", {}, h("i", { "aria-hidden": "true" }), "Products finished per minute"),
      h("span", {}, h("i", { class: "bad", "aria-hidden": "true" }), "failed")),
  );
}

/**
 * Quotas are filled by the rate-limiting layer; their keys are open. One compact row per service:
 * a bar of the bucket's use (tokens taken of its burst), calls in flight, callers waiting, 429s and
 * any pause; every other field it reports is in the row's tooltip.
 */
function quotas(data) {
  const entries = Object.entries(data);
  const head = h("h3", { class: "quota-title" }, "External services");
  if (!entries.length) {
    return h("div", { class: "quotas" }, head, h("p", { class: "muted", id: "quota-empty" }, "No quota data reported yet."));
  }
  return h("div", { class: "quotas" }, head,
    h("table", { class: "quota-table", id: "quota-table" },
      h("caption", { class: "visually-hidden" }, "Quota use per external service"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Service"),
        h("th", { scope: "col" }, "Use"),
        h("th", { scope: "col", class: "num", title: "Calls in flight" }, "Busy"),
        h("th", { scope: "col", class: "num", title: "Callers waiting for a token" }, "Wait"),
        h("th", { scope: "col", class: "num", title: "429 answers" }, "429s"))),
      h("tbody", {}, entries.map(([service, value]) => quotaRow(service, value)))));
}

function quotaRow(service, value) {
  const label = service.replaceAll("_", " ");
  if (value === null || typeof value !== "object") {
    return h("tr", { dataset: { service } }, h("th", { scope: "row" }, label), h("td", { colspan: 4 }, fmt(value)));
  }
  const burst = Number(value.burst ?? value.limit);
  const available = Number(value.available);
  const hasBar = Number.isFinite(burst) && burst > 0 && Number.isFinite(available);
  const used = hasBar ? Math.min(1, Math.max(0, (burst - available) / burst)) : 0;
  const paused = Number(value.paused_for) > 0;
  const limit = value.limit === null || value.limit === undefined
    ? "no limit"
    : `${fmt(value.limit)} per ${fmt(value.period_seconds ?? 60)} s${Number(value.shared_by) > 1 ? `, shared by ${value.shared_by}` : ""}`;
  const bar = h("div", { class: "meter", role: "img",
    "aria-label": hasBar ? `${Math.round(used * 100)}% of the burst in use` : "no bucket" },
  h("span", { class: paused ? "paused" : used > 0.85 ? "high" : "" }));
  bar.firstChild.style.width = `${Math.round(used * 100)}%`;
  const details = Object.entries(value).map(([k, v]) => `${k.replaceAll("_", " ")}: ${fmt(v)}`).join("\n");
  return h("tr", { dataset: { service }, title: details },
    h("th", { scope: "row" }, label, h("div", { class: "hint muted" }, limit)),
    h("td", { class: "use" }, bar, paused ? h("span", { class: "hint error" }, ` paused ${fmt(value.paused_for)} s`) : null),
    h("td", { class: "num" }, value.max_concurrent ? `${fmt(value.in_flight ?? 0)}/${fmt(value.max_concurrent)}` : fmt(value.in_flight)),
    h("td", { class: "num" }, fmt(value.waiting)),
    h("td", { class: "num" }, fmt(value.throttled)));
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
