// Live progress over Socket.IO, with catch-up after a reconnect.
//
// The server sends every `wip_job_progress` event of the collections we may see. Each event
// carries a per-job `seq`. We remember the seqs seen per job, so that an event delivered twice
// (live and replayed) is applied once; and on every (re)connect we `subscribe` to the job that
// is open with the last seq up to which we have seen everything, so the server replays exactly
// what we missed (any gap included). Events are also kept per job, so a job page opened later
// shows the events already received.

import { getApiKey } from "./api.js";

const EVENT = "wip_job_progress";
const MAX_JOBS_TRACKED = 200;
const MAX_EVENTS_KEPT = 2000; // per job; a job of the default maximum size has ~100

export class Live extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.state = "connecting";
    // job_id -> {seen: Set of seqs, contiguous: every seq up to it seen, last: highest seq, events}
    this.jobs = new Map();
    this.watched = null; // job_id of the open job page
    this.connectedOnce = false;
    this._sentKey = ""; // the key the latest connection attempt carried
  }

  connect() {
    if (typeof window.io !== "function") {
      this._setState("offline", "Live updates unavailable");
      return;
    }
    const path = new URL("socket.io", document.baseURI).pathname;
    this.socket = window.io({
      path,
      // WebSocket first (no sticky sessions needed behind several instances), polling as fallback.
      transports: ["websocket", "polling"],
      // A function, so each reconnection sends the key stored now, not the one at page load.
      auth: (cb) => {
        this._sentKey = getApiKey();
        cb({ api_key: this._sentKey || undefined });
      },
      reconnectionDelayMax: 10000,
    });
    this.socket.on("connect", () => this._onConnect());
    this.socket.on("disconnect", (reason) => {
      // "io server disconnect" means the server refused us: socket.io does not retry by itself.
      if (reason === "io server disconnect") setTimeout(() => this.socket.connect(), 2000);
      this._setState("reconnecting", "Reconnecting…");
    });
    this.socket.on("connect_error", (error) => {
      const message = String((error && error.message) || "");
      const unauthorized = /unauthori[sz]ed|401|api key|forbidden/i.test(message);
      this._setState("offline", unauthorized ? "Live updates need an API key" : "Offline — retrying");
      if (!unauthorized) return; // socket.io retries network errors by itself
      if (this._sentKey === getApiKey()) {
        this.dispatchEvent(new CustomEvent("unauthorized", { detail: { message } }));
      } else {
        // A refusal of a key that has since been replaced (here or in another tab) is stale.
        // socket.io does not retry a refusal: try again shortly, with the key stored now.
        setTimeout(() => {
          if (!this.socket.connected && !this.socket.active) this.socket.connect();
        }, 1000);
      }
    });
    this.socket.on(EVENT, (event) => this._onEvent(event));
    // A job given a `run_at`: not a progress event (it has no seq); lists re-read REST.
    this.socket.on("wip_job_scheduled", (event) => this.dispatchEvent(new CustomEvent("scheduled", { detail: { event } })));
  }

  /** Reconnect now (after the API key changed). */
  reconnect() {
    if (!this.socket) return;
    this.socket.disconnect();
    this.socket.connect();
  }

  /** Follow one job closely: replay its missed events now and after every reconnect. */
  watch(jobId) {
    this.watched = jobId;
    return this._subscribe("watch");
  }

  /** The events of a job received so far, oldest first. */
  history(jobId) {
    const job = this.jobs.get(jobId);
    return job ? [...job.events].sort((a, b) => a.seq - b.seq) : [];
  }

  /** The highest seq of a job seen (0 if none). */
  lastSeq(jobId) {
    const job = this.jobs.get(jobId);
    return job ? job.last : 0;
  }

  unwatch(jobId) {
    if (this.watched === jobId) this.watched = null;
  }

  _onConnect() {
    const again = this.connectedOnce;
    this.connectedOnce = true;
    this._setState("connected", "Live");
    this._subscribe(again ? "reconnect" : "connect");
    // Lists re-read REST after a gap: events for jobs not watched are not replayed.
    if (again) this.dispatchEvent(new CustomEvent("reconnected"));
  }

  /** `earlier`: the first page's `after_seq` and the events replayed so far, when asking for the next page. */
  _subscribe(reason, earlier = null) {
    const jobId = this.watched;
    if (!jobId || !this.socket || !this.socket.connected) return Promise.resolve(null);
    const job = this.jobs.get(jobId);
    const afterSeq = job ? job.contiguous : 0;
    return new Promise((resolve) => {
      this.socket.timeout(10000).emit("subscribe", { job_id: jobId, after_seq: afterSeq }, (err, ack) => {
        let result = err ? { ok: false, error: "no answer from the server" } : ack;
        const first = earlier || { afterSeq, replayed: 0 };
        if (result && result.ok) result = { ...result, replayed: first.replayed + result.replayed };
        // A long replay comes in pages: the events of this one are in, so ask for the next.
        if (result && result.ok && result.more && this.watched === jobId) {
          resolve(this._subscribe(reason, { afterSeq: first.afterSeq, replayed: result.replayed }));
          return;
        }
        const detail = { jobId, afterSeq: first.afterSeq, reason, ack: result };
        this.dispatchEvent(new CustomEvent("subscribed", { detail }));
        resolve(result);
      });
    });
  }

  _onEvent(event) {
    if (!event || typeof event.job_id !== "string") return;
    const jobId = event.job_id;
    const seq = Number.isInteger(event.seq) ? event.seq : null;
    let newest = true;
    if (seq !== null) {
      let job = this.jobs.get(jobId);
      if (!job) {
        job = { seen: new Set(), contiguous: 0, last: 0, events: [] };
        this.jobs.set(jobId, job);
        this._forgetOldJobs();
      }
      if (job.seen.has(seq)) return; // already applied: a replay overlapping live delivery
      job.seen.add(seq);
      while (job.seen.has(job.contiguous + 1)) job.contiguous += 1;
      newest = seq > job.last;
      if (newest) job.last = seq;
      job.events.push(event);
      if (job.events.length > MAX_EVENTS_KEPT) job.events.shift();
    }
    // `newest` tells views whether the counters in this event are the latest known; an older
    // event (a replay arriving after a live one) still carries a product result worth showing.
    this.dispatchEvent(new CustomEvent("progress", { detail: { event, newest } }));
  }

  _forgetOldJobs() {
    // Maps iterate in insertion order: drop the jobs first seen longest ago, never the open one.
    for (const jobId of this.jobs.keys()) {
      if (this.jobs.size <= MAX_JOBS_TRACKED) break;
      if (jobId !== this.watched) this.jobs.delete(jobId);
    }
  }

  _setState(state, label) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, label } }));
  }

  /** Subscribe to a live event type; returns the function that unsubscribes. */
  on(type, handler) {
    const listener = (e) => handler(e.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }
}

export const live = new Live();
