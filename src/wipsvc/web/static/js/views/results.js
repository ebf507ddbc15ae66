// One row of a job's per-product results: outcome, steps reached, sheet row, timings, fields, error.

import { h, badge, fmtDuration, td, STEPS } from "../dom.js";

const STEP_INDEX = new Map(STEPS.map(([key], i) => [key, i]));
const STEP_LABEL = new Map(STEPS);

/**
 * `result` is the REST result, a partial one built from a live event (`live: true`), or null for a
 * product not finished yet. `jobStatus` decides how unfinished products read ("waiting" or "—").
 */
export function resultRow(wipId, result, sku, jobStatus) {
  const outcome = result ? result.status : jobStatus === "running" || jobStatus === "queued" ? "waiting" : "skipped";
  const fields = result && result.extracted_fields ? result.extracted_fields : [];
  const partial = result && result.live;
  return h("tr", { dataset: { wipId, outcome } },
    td("SKU", { class: "mono nowrap" }, sku || `#${wipId}`),
    td("Outcome", {}, badge(outcome)),
    td("Steps", {}, steps(result, outcome)),
    td("Sheet row", { class: "num" }, result && result.row_num ? String(result.row_num) : "—"),
    td("Duration", { class: "num nowrap" }, partial ? "…" : fmtDuration(result ? result.duration : null)),
    td("Extracted fields", { class: "fields" }, fields.length
      ? h("span", { title: fields.join(", ") }, fields.length > 6 ? `${fields.slice(0, 6).join(", ")} +${fields.length - 6}` : fields.join(", "))
      : h("span", { class: "muted" }, partial ? "…" : "—")),
    td("Descriptions", {}, result && result.generator ? result.generator : h("span", { class: "muted" }, "—")),
    td("Attempts", { class: "num" }, result && !partial ? String(result.attempts ?? "—") : "—"),
    td("Error", { class: result && result.error ? "error" : null },
      result && result.error ? `${result.error_step ? `${STEP_LABEL.get(result.error_step) || result.error_step}: ` : ""}${result.error}` : ""));
}

function steps(result, outcome) {
  const failedAt = result && result.error_step ? STEP_INDEX.get(result.error_step) ?? -1 : -1;
  // A failed product completed every step before the one it failed at: a live event names only
  // that step, REST also the last one completed; both read the same.
  const reached = Math.max(result && result.step ? STEP_INDEX.get(result.step) ?? -1 : -1, failedAt - 1);
  const items = STEPS.map(([key, label], i) => {
    let state = "todo";
    if (outcome === "succeeded" && (result.live || i <= reached)) state = "done";
    else if (i <= reached) state = "done";
    else if (i === failedAt) state = "failed";
    else if (outcome === "skipped") state = "skipped";
    return h("li", { dataset: { state, step: key }, title: `${label}: ${state}` });
  });
  let text;
  if (outcome === "succeeded") text = "all steps done";
  else if (outcome === "failed") text = failedAt >= 0 ? `failed at ${STEP_LABEL.get(STEPS[failedAt][0]).toLowerCase()}` : "failed";
  else if (outcome === "skipped") text = reached >= 0 ? `stopped after ${STEP_LABEL.get(STEPS[reached][0]).toLowerCase()}` : "not started";
  else text = "waiting";
  return h("div", {},
    h("ul", { class: "steps", "aria-hidden": "true" }, items),
    h("div", { class: "steps-label" }, text));
}
