// A collection's recurring schedules: when each fires next, what its last fire did; pause,
// resume, delete. (Creating one is the API's or the CLI's: `wipsvc schedules create`.)

import { endpoints } from "../api.js";
import { h, clear, badge, notice, timeEl, td, tableWrap, announce, loadFailed } from "../dom.js";

export function schedulesCard(name) {
  const body = h("div", { id: "schedules" }, h("p", { class: "muted" }, "Loading schedules…"));
  const feedback = h("div", {});

  async function load() {
    try {
      const { schedules } = await endpoints.schedules(name);
      const lastFires = await Promise.all(schedules.map((s) => endpoints.scheduleFires(name, s.id)
        .then((answer) => answer.fires[0] || null).catch(() => null)));
      render(schedules, lastFires);
    } catch (error) {
      if (error.status === 404) {
        clear(body).append(h("p", { class: "empty" }, "No schedules."));
        return;
      }
      clear(body).append(loadFailed("schedules", error));
    }
  }

  function render(schedules, lastFires) {
    if (!schedules.length) {
      clear(body).append(h("p", { class: "empty" },
        "No schedules. Create one with POST /api/{collection}/schedules or `wipsvc schedules create`."));
      return;
    }
    const rows = schedules.map((s, index) => {
      const fire = lastFires[index];
      const action = s.paused ? "resume" : "pause";
      return h("tr", { dataset: { scheduleId: s.id } },
        td("Id", { class: "num" }, String(s.id)),
        td("Cron", { class: "mono nowrap" }, s.cron),
        td("Time zone", { class: "nowrap" }, s.timezone),
        td("Takes", {}, s.selector.statuses.join(", ")),
        td("Next", { class: "nowrap" }, s.paused ? badge("paused") : timeEl(s.next_fire_at)),
        td("Last fire", { class: "nowrap" }, fire
          ? h("span", {}, badge(fire.outcome === "fired" ? "completed" : "skipped", fire.outcome), " ", timeEl(fire.due_at),
            fire.job_ids.length ? h("span", { class: "muted" }, ` · ${fire.job_ids.length} job(s)`) : null)
          : h("span", { class: "muted" }, "—")),
        td("", { class: "nowrap" },
          h("button", { class: "btn btn-small", type: "button", "aria-label": `${action} schedule ${s.id}`,
            onclick: () => change(s, action) }, s.paused ? "Resume" : "Pause"),
          h("button", { class: "btn btn-small btn-ghost", type: "button", "aria-label": `Delete schedule ${s.id}`,
            onclick: () => remove(s) }, "Delete")));
    });
    const label = `Schedules of ${name}`;
    clear(body).append(tableWrap(label, h("table", {},
      h("caption", { class: "visually-hidden" }, label),
      h("thead", {}, h("tr", {},
        ["Id", "Cron", "Time zone", "Takes", "Next", "Last fire"].map((title) => h("th", { scope: "col" }, title)),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rows))));
  }

  async function change(schedule, action) {
    clear(feedback);
    try {
      await endpoints.scheduleAction(name, schedule.id, action);
      announce(`Schedule ${schedule.id} ${action === "pause" ? "paused" : "resumed"}.`);
      load();
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  async function remove(schedule) {
    clear(feedback);
    if (!window.confirm(`Delete schedule ${schedule.id} (${schedule.cron})? The jobs it made stay.`)) return;
    try {
      const answer = await endpoints.deleteSchedule(name, schedule.id);
      announce(answer.message);
      load();
    } catch (error) {
      feedback.append(notice("bad", error.friendly || error.message));
    }
  }

  load();
  const el = h("section", { class: "card", "aria-labelledby": "schedules-title" },
    h("div", { class: "card-head" }, h("h2", { id: "schedules-title" }, "Schedules")),
    feedback, body);
  return { el, reload: load };
}
