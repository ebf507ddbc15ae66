// A job's notifications: each email or webhook its end owed, every attempt, and Send again.

import { api, enc } from "../api.js";
import { h, clear, badge, notice, timeEl, tableWrap, td, loadFailed } from "../dom.js";

const TONE = { delivered: "completed", pending: "queued", failed: "failed" };

export function deliveriesCard(name, jobId) {
  const body = h("div", { id: "job-deliveries" }, h("p", { class: "muted" }, "No notifications yet."));
  const feedback = h("div", { id: "deliveries-feedback" });
  const element = h("section", { class: "card", "aria-labelledby": "deliveries-title" },
    h("div", { class: "card-head" }, h("h2", { id: "deliveries-title" }, "Notifications")), feedback, body);

  async function refresh() {
    try {
      const { deliveries } = await api(`collections/${enc(name)}/deliveries`, { query: { job_id: jobId } });
      render(deliveries);
    } catch (error) {
      clear(body).append(loadFailed("the notifications", error));
    }
  }

  function statusBadge(status) {
    const el = badge(TONE[status] || status, status);
    el.dataset.status = status; // the delivery's own status, not the job status lending its colour
    return el;
  }

  function render(deliveries) {
    if (!deliveries.length) {
      clear(body).append(h("p", { class: "muted" }, "No notifications for this job (no target set, or none due)."));
      return;
    }
    const rows = deliveries.map((d) => {
      const last = d.attempts[d.attempts.length - 1];
      return h("tr", { dataset: { deliveryId: String(d.id) } },
        td("Event", {}, d.event),
        td("Target", {}, `#${d.target_id}`),
        td("Status", {}, statusBadge(d.status)),
        td("Attempts", {}, String(d.attempts.length)),
        td("Last attempt", {}, last ? [timeEl(last.at), " ", last.detail] : "—"),
        td("", {}, h("button", { class: "btn", type: "button", onclick: () => sendAgain(d.id) }, "Send again")));
    });
    const table = h("table", {},
      h("thead", {}, h("tr", {}, ["Event", "Target", "Status", "Attempts", "Last attempt", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows));
    clear(body).append(tableWrap("Notifications of this job", table));
  }

  async function sendAgain(id) {
    try {
      await api(`collections/${enc(name)}/deliveries/${id}/send-again`, { method: "POST" });
      clear(feedback).append(notice("ok", "The notification will be sent again."));
      await refresh();
    } catch (error) {
      clear(feedback).append(notice("bad", error.friendly || error.message));
    }
  }

  return { element, refresh };
}
