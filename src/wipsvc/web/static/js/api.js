// REST client: the public /api only, with the API key (if any) as a Bearer token.

const KEY_STORAGE = "wipsvc.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** A sentence for people: the service's own message, prefixed by what kind of problem it is. */
  get friendly() {
    const prefix = {
      0: "Cannot reach the service",
      401: "Not authorised",
      403: "Forbidden",
      404: "Not found",
      409: "Conflict",
      422: "Invalid input",
      429: "Too many requests",
    }[this.status] || (this.status >= 500 ? "Server error" : `Error ${this.status}`);
    return `${prefix}: ${this.message}`;
  }
}

let keyInMemory = ""; // used when the browser refuses storage (private mode, policies)

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return keyInMemory;
  }
}

export function setApiKey(key) {
  keyInMemory = key || "";
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled: the key lasts until the page reloads */
  }
}

let unauthorizedHandler = null;
let answeredHandler = null;

/** Called with the ApiError whenever the API answers 401 (the app shows the key dialog). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** Called whenever the API answers a request (any status but 401): the service is reachable and
 * the key, if one is needed, is accepted, so messages saying otherwise can go. */
export function onAnswered(handler) {
  answeredHandler = handler;
}

/** Resolve an API path against the page, so the dashboard also works behind a path prefix. */
export function apiUrl(path, query = {}) {
  const url = new URL(`api/${path.replace(/^\/+/, "")}`, document.baseURI);
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

export async function api(path, { method = "GET", body, query, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = getApiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "same-origin",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", error.message || "network error");
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.status !== 401 && answeredHandler) answeredHandler(response.status);
  if (!response.ok) {
    const err = data && data.error;
    const error = new ApiError(
      response.status,
      (err && err.code) || `http_${response.status}`,
      (err && err.message) || response.statusText || `HTTP ${response.status}`,
      err && err.details,
    );
    // A 401 for a key that has since been replaced (a request still in flight when the user
    // typed a new one) says nothing about the current key: only the current key's 401 asks again.
    if (response.status === 401 && unauthorizedHandler && key === getApiKey()) unauthorizedHandler(error);
    throw error;
  }
  return data;
}

/** Download a non-JSON resource (the sheet CSV) with the same credentials, as a file. */
export async function download(path, filename) {
  const headers = {};
  const key = getApiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(apiUrl(path), { headers, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, "network", error.message || "network error");
  }
  if (response.status !== 401 && answeredHandler) answeredHandler(response.status);
  if (!response.ok) {
    let err = null;
    try {
      err = (await response.json()).error;
    } catch {
      err = null;
    }
    const error = new ApiError(response.status, (err && err.code) || `http_${response.status}`,
      (err && err.message) || response.statusText || `HTTP ${response.status}`);
    // A 401 for a key that has since been replaced (a request still in flight when the user
    // typed a new one) says nothing about the current key: only the current key's 401 asks again.
    if (response.status === 401 && unauthorizedHandler && key === getApiKey()) unauthorizedHandler(error);
    throw error;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export const enc = encodeURIComponent;

// Thin wrappers naming the endpoints the views use.
export const endpoints = {
  collections: () => api("collections"),
  collection: (name) => api(`collections/${enc(name)}`),
  downloadSheet: (name) => download(`collections/${enc(name)}/sheet.csv`, `${name}.csv`),
  products: (name, query) => api(`${enc(name)}/wip`, { query }),
  createProducts: (name, products) => api(`${enc(name)}/wip`, { method: "POST", body: { products } }),
  resetProduct: (name, id) => api(`${enc(name)}/wip/${id}/reset`, { method: "POST" }),
  deleteProduct: (name, id) => api(`${enc(name)}/wip/${id}`, { method: "DELETE" }),
  deleteCollection: (name) => api(`collections/${enc(name)}`, { method: "DELETE" }),
  startJob: (name, wipIds) => api(`${enc(name)}/wip/process`, { method: "POST", body: { wip_ids: wipIds } }),
  jobs: (name, query) => api(`${enc(name)}/wip/jobs`, { query }),
  allJobs: (query) => api("jobs", { query }),
  deleteJob: (name, id) => api(`${enc(name)}/wip/jobs/${enc(id)}`, { method: "DELETE" }),
  job: (name, id) => api(`${enc(name)}/wip/jobs/${enc(id)}`),
  changePriority: (name, id, priority) =>
    api(`${enc(name)}/wip/jobs/${enc(id)}`, { method: "PATCH", body: { priority } }),
  cancelJob: (name, id) => api(`${enc(name)}/wip/jobs/${enc(id)}/cancel`, { method: "POST" }),
  retryJob: (name, id, products = "failed") =>
    api(`${enc(name)}/wip/jobs/${enc(id)}/retry`, { method: "POST", query: { products } }),
  stats: () => api("stats"),
  schedules: (name) => api(`${enc(name)}/schedules`),
  scheduleFires: (name, id) => api(`${enc(name)}/schedules/${id}/fires`, { query: { limit: 1 } }),
  scheduleAction: (name, id, action) => api(`${enc(name)}/schedules/${id}/${action}`, { method: "POST" }),
  deleteSchedule: (name, id) => api(`${enc(name)}/schedules/${id}`, { method: "DELETE" }),
};
