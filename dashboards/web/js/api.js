// Talking to Vigil's HTTP API. Every failure becomes an `ApiError` carrying the server's own
// error text (Prometheus's JSON `error`, Loki's plain-text body), so the UI shows exactly what
// the API said rather than a generic message.

export class ApiError extends Error {
  constructor(message, status, errorType) {
    super(message);
    this.status = status;
    this.errorType = errorType || "";
  }
}

// POSTs `params` form-encoded (queries can be longer than a URL may be) and returns `data`.
export async function post(path, params, signal) {
  return request(path, { method: "POST", body: new URLSearchParams(params), signal });
}

// GETs `path?params` and returns `data`.
export async function get(path, params, signal) {
  const qs = params ? "?" + new URLSearchParams(params) : "";
  return request(path + qs, { signal });
}

async function request(url, init) {
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`cannot reach the server: ${e.message}`, 0);
  }
  const text = await resp.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Loki and remote write answer errors as plain text.
  }
  if (body && body.status === "error") {
    throw new ApiError(body.error || text, resp.status, body.errorType);
  }
  if (!resp.ok) {
    throw new ApiError(text.trim() || `${resp.status} ${resp.statusText}`, resp.status);
  }
  if (!body || body.status !== "success") {
    throw new ApiError(`unexpected answer from ${url.split("?")[0]}: ${text.slice(0, 200)}`, resp.status);
  }
  return body.data;
}

// Alertmanager's API v2 answers bare JSON (no `status`/`data` envelope) and plain-text or
// `{"code","message"}` errors; these call it and return the parsed body.
export async function v2(method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(`cannot reach the server: ${e.message}`, 0);
  }
  const text = await resp.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Errors may be plain text.
  }
  if (!resp.ok) {
    const msg = (parsed && (parsed.message || parsed.error)) || text.trim() || `${resp.status} ${resp.statusText}`;
    throw new ApiError(msg, resp.status);
  }
  return parsed;
}

// Lists cached per URL for the life of the page: completion asks for the same names often.
const listCache = new Map();

// A list endpoint (label names, label values), cached; an error yields an empty list so that
// completion degrades to nothing rather than breaking typing.
export function cachedList(path, params) {
  const key = path + "?" + new URLSearchParams(params || {});
  if (!listCache.has(key)) {
    listCache.set(key, get(path, params).catch(() => {
      listCache.delete(key);
      return [];
    }));
  }
  return listCache.get(key);
}
