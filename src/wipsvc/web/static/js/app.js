// Entry point: hash router, live connection status, API-key dialog, error banner.

import { getApiKey, onAnswered, onUnauthorized, setApiKey } from "./api.js";
import { h } from "./dom.js";
import { live } from "./live.js";
import { collectionPage } from "./views/collection.js";
import { jobPage } from "./views/job.js";
import { jobsPage } from "./views/jobs.js";
import { overviewPage } from "./views/overview.js";

const ROUTES = [
  { pattern: /^\/?$/, nav: "overview", title: () => "Overview", view: (main) => overviewPage(main) },
  { pattern: /^\/jobs$/, nav: "jobs", title: () => "Jobs", view: (main) => jobsPage(main) },
  {
    pattern: /^\/c\/([^/]+)$/, nav: "overview", title: ([name]) => name,
    view: (main, [name], query) => collectionPage(main, { name, query }),
  },
  {
    pattern: /^\/c\/([^/]+)\/jobs\/([^/]+)$/, nav: "jobs", title: () => "Job",
    view: (main, [name, id]) => jobPage(main, { name, id }),
  },
];

const main = document.getElementById("main");
let teardown = null;
let firstRender = true;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: new URLSearchParams(search) };
}

function render() {
  if (teardown) teardown();
  teardown = null;
  hideBanner();
  main.replaceChildren();
  const { path, query } = parseHash();
  for (const route of ROUTES) {
    const match = path.match(route.pattern);
    if (!match) continue;
    let params;
    try {
      params = match.slice(1).map(decodeURIComponent);
    } catch {
      break; // malformed %-escape: treat as not found
    }
    document.title = `${route.title(params)} · wipsvc`;
    setNav(route.nav);
    teardown = route.view(main, params, query) || null;
    focusHeading();
    return;
  }
  document.title = "Not found · wipsvc";
  setNav(null);
  main.append(
    h("h1", { tabindex: -1 }, "Page not found"),
    h("p", {}, "Nothing lives at this address. ", h("a", { href: "#/" }, "Go to the overview"), "."));
  focusHeading();
}

function focusHeading() {
  // After in-app navigation, move focus to the new page's heading so screen readers announce it;
  // on first load the browser's own focus handling is left alone.
  if (firstRender) {
    firstRender = false;
    return;
  }
  const heading = main.querySelector("h1");
  if (heading) heading.focus({ preventScroll: false });
}

function setNav(active) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// -- banner ---------------------------------------------------------------------------------------

const banner = document.getElementById("banner");
const bannerText = document.getElementById("banner-text");
document.getElementById("banner-close").addEventListener("click", hideBanner);

export function showBanner(message, kind = "error") {
  bannerText.textContent = message;
  banner.dataset.kind = kind;
  banner.hidden = false;
}

function hideBanner() {
  banner.hidden = true;
}

// -- API key --------------------------------------------------------------------------------------

const dialog = document.getElementById("api-key-dialog");
const keyForm = document.getElementById("api-key-form");
const keyInput = document.getElementById("api-key-input");
const keyReason = document.getElementById("api-key-reason");
const keyButton = document.getElementById("api-key-button");

// The one place a 401 is told: the dialog, or once it is dismissed, the banner.
let unauthorizedMessage = "";

function askForKey(message, { fromRest = true } = {}) {
  keyButton.hidden = false;
  // REST explains more than the socket's one-word refusal: its message wins when both arrive.
  if (fromRest || !unauthorizedMessage) unauthorizedMessage = message;
  const reason = getApiKey()
    ? `The service refused the stored key: ${unauthorizedMessage}`
    : `The service answered 401: ${unauthorizedMessage}`;
  keyReason.textContent = reason;
  if (dialog.open) return;
  if (!banner.hidden && banner.dataset.kind === "auth") {
    // Dismissed once already: keep the banner up to date instead of opening the dialog again.
    showBanner(`Not authorised: ${unauthorizedMessage}`, "auth");
    return;
  }
  keyInput.value = "";
  dialog.showModal();
  keyInput.focus();
}

/** The service answered with the current key: what said it could not is out of date. */
function authorised() {
  unauthorizedMessage = "";
  if (dialog.open) dialog.close("authorised");
  if (!banner.hidden && banner.dataset.kind === "auth") hideBanner();
}

keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const key = keyInput.value.trim();
  if (!key) {
    keyInput.focus();
    return;
  }
  setApiKey(key);
  dialog.close();
  live.reconnect();
  render();
});
document.getElementById("api-key-cancel").addEventListener("click", () => {
  dialog.close();
  if (unauthorizedMessage) showBanner(`Not authorised: ${unauthorizedMessage}`, "auth");
});
document.getElementById("api-key-forget").addEventListener("click", () => {
  setApiKey("");
  keyInput.value = "";
  dialog.close();
  live.reconnect();
  render();
});
keyButton.addEventListener("click", () => {
  keyReason.textContent = getApiKey() ? "A key is stored in this browser." : "No key is stored.";
  keyInput.value = "";
  dialog.showModal();
  keyInput.focus();
});
// The key control appears only once it matters: a 401 was seen, or a key is already stored.
keyButton.hidden = !getApiKey();

onUnauthorized((error) => askForKey(error.message));
onAnswered(authorised);
live.on("unauthorized", ({ message }) => askForKey(message || "live updates refused", { fromRest: false }));

// -- live status ----------------------------------------------------------------------------------

const liveStatus = document.getElementById("live-status");
live.on("state", ({ state, label }) => {
  liveStatus.dataset.state = state;
  liveStatus.querySelector(".live-label").textContent = label;
  // A live connection is accepted only with a good key (when one is needed).
  if (state === "connected") authorised();
});

// A handle for the browser console and end-to-end tests (e.g. to drop the socket on purpose).
window.wipsvc = { live };

window.addEventListener("hashchange", render);
live.connect();
render();
