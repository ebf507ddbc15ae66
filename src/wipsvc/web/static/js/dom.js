// Small DOM and formatting helpers shared by the views. No framework: elements are built with h().

/**
 * Build an element. attrs: class, text, html is deliberately not supported (no innerHTML of data);
 * on<event> functions become listeners, booleans toggle attributes, null/undefined/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// -- status vocabulary --------------------------------------------------------------------------

export const JOB_STATUSES = ["scheduled", "queued", "running", "completed", "failed", "cancelled"];
export const WIP_STATUSES = ["pending", "extracting", "generating", "cleaning", "ready", "error"];
export const STEPS = [
  ["sheet_row", "Sheet row"],
  ["extract", "Extract"],
  ["describe", "Describe"],
  ["clean", "Clean"],
  ["complete", "Complete"],
];

const TONES = {
  scheduled: "idle", queued: "idle", running: "info", completed: "ok", failed: "bad", cancelled: "warn",
  pending: "idle", extracting: "info", generating: "info", cleaning: "info", ready: "ok", error: "bad",
  succeeded: "ok", skipped: "warn", waiting: "idle", started: "info", processing: "info",
  // States that are not API statuses but read like one: a running job asked to stop, a paused schedule.
  cancelling: "warn", paused: "warn",
};

export function tone(status) {
  return TONES[status] || "idle";
}

export function badge(status, label = status, count = null) {
  return h("span", { class: "badge", dataset: { tone: tone(status), status } }, label,
    count === null ? null : h("span", { class: "count" }, ` ${count}`));
}

/** A two-colour progress bar (succeeded, failed) with the ARIA progressbar role. */
export function progressBar({ total, successful, failed, active, big = false, label = "Progress" }) {
  const done = successful + failed;
  const pct = total > 0 ? Math.round((done / total) * 100) : 0;
  const ok = h("span", { class: "ok" });
  const bad = h("span", { class: "bad" });
  ok.style.width = total > 0 ? `${(successful / total) * 100}%` : "0%";
  bad.style.width = total > 0 ? `${(failed / total) * 100}%` : "0%";
  return h("div", {
    class: big ? "progress progress-big" : "progress",
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": 0,
    "aria-valuemax": 100,
    "aria-valuenow": pct,
    "aria-valuetext": `${pct}% — ${done} of ${total} processed`,
    dataset: { active: String(Boolean(active)), percent: String(pct) },
  }, ok, bad);
}

// -- formatting ---------------------------------------------------------------------------------

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${Number.isInteger(seconds) || seconds >= 10 ? Math.round(seconds) : seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

export function fmtEta(seconds) {
  if (seconds === null || seconds === undefined) return "estimating…";
  if (seconds <= 0.5) return "any moment";
  return `about ${fmtDuration(Math.max(1, Math.round(seconds)))}`;
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
const ABSOLUTE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export function fmtRelative(iso) {
  if (!iso) return "—";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return RELATIVE.format(Math.round(seconds), "second");
  if (abs < 3600) return RELATIVE.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return RELATIVE.format(Math.round(seconds / 3600), "hour");
  return RELATIVE.format(Math.round(seconds / 86400), "day");
}

export function timeEl(iso, { clock = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: ABSOLUTE.format(date) }, clock ? CLOCK.format(date) : fmtRelative(iso));
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// -- behaviour ----------------------------------------------------------------------------------

/** Call fn at most once per `ms`, always running the last call (trailing edge). */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  const wrapped = () => {
    const wait = last + ms - Date.now();
    if (wait > 0) {
      if (!timer) timer = setTimeout(() => { timer = null; wrapped(); }, wait);
      return;
    }
    last = Date.now();
    fn();
  };
  wrapped.cancel = () => { clearTimeout(timer); timer = null; };
  return wrapped;
}

export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Screen-reader announcement through the page's polite live region. */
export function announce(message) {
  const el = document.getElementById("announcer");
  if (!el) return;
  el.textContent = "";
  // A fresh text node after a tick makes screen readers repeat identical messages too.
  setTimeout(() => { el.textContent = message; }, 50);
}

/**
 * What a section shows when it could not load. A 401 is said once, by the API-key dialog (or the
 * banner once the dialog is dismissed): here it is only a quiet placeholder.
 */
export function loadFailed(what, error) {
  if (error && error.status === 401) return h("p", { class: "muted", dataset: { loadError: "401" } }, "Needs an API key.");
  return h("p", { class: "muted", role: "alert", dataset: { loadError: String(error && error.status) } },
    `Could not load ${what} — ${(error && (error.friendly || error.message)) || "unknown error"}`);
}

/** A notice (inline message) for a form or section; kind: ok | bad | info. */
export function notice(kind, message, items = []) {
  return h("div", { class: "notice", dataset: { kind }, role: kind === "bad" ? "alert" : "status" },
    message, items.length ? h("ul", {}, items.map((item) => h("li", {}, item))) : null);
}

export function section(title, id, ...children) {
  return h("section", { class: "card", "aria-labelledby": id },
    h("div", { class: "card-head" }, h("h2", { id }, title)), ...children);
}

export function tableWrap(label, table, { stack = true } = {}) {
  // Focusable so keyboard users can scroll a wide table sideways.
  return h("div", { class: stack ? "table-wrap stack" : "table-wrap", role: "region", "aria-label": label, tabindex: 0 },
    table);
}

export function td(label, attrs = {}, ...children) {
  return h("td", { ...attrs, "data-label": label }, ...children);
}
