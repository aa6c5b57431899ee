// The scheduler console: plain JavaScript, no build step, no dependency.
//
// It reads the admin API (a page of each table at a time) with the operator's token and
// keeps a WebSocket to /api/v1/console/stream, which sends a summary of counters when
// something changes; the page then re-reads the pages it shows. Every id, hostname, URL
// and reason is client-controlled text: it reaches the page through textContent and
// attributes set one by one, never through HTML parsing.
"use strict";

(() => {
  const TOKEN_KEY = "scheduler.console.token";
  const STREAM_PATH = "api/v1/console/stream";
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 10000;
  const FULL_RETRY_MS = 10000;
  const EVICTIONS_SHOWN = 100;
  const JOBS_SHOWN = 25;

  const $ = (id) => document.getElementById(id);

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    socket: null,
    retryMs: RETRY_FIRST_MS,
    retryTimer: null,
    startTimer: null,
    summary: null,
    refreshing: false,
    dirty: false,
    evictionsShown: null,
    jobsShown: null,
    hosts: { cursor: null, back: [], next: null },
    tasks: { cursor: null, back: [], next: null },
    task: { id: null, cursor: null, back: [], next: null, graphKey: "", graphUrl: null },
  };

  // --- building the page: elements and text nodes only ---------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function emptyRow(columns, text) {
    return el("tr", { className: "empty" }, el("td", { colspan: columns }, text));
  }

  function fill(tableId, rows, columns, emptyText) {
    const body = $(tableId).tBodies[0];
    body.replaceChildren(...(rows.length ? rows : [emptyRow(columns, emptyText)]));
  }

  function ago(unixSeconds) {
    if (unixSeconds === null || unixSeconds === undefined) return "–";
    const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
    if (seconds < 1) return "just now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function when(unixSeconds) {
    if (unixSeconds === null || unixSeconds === undefined) return "";
    return new Date(unixSeconds * 1000).toISOString();
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 120) return `${seconds.toFixed(2)} s`;
    return `${Math.round(seconds / 60)} min`;
  }

  function count(n) {
    return Number(n).toLocaleString("en-US");
  }

  function bits(perSecond) {
    const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let value = Number(perSecond) || 0;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${unit > 0 && value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
  }

  function setStatus(name, text) {
    const status = $("status");
    status.dataset.state = name;
    status.textContent = text;
  }

  function showError(text) {
    const error = $("error");
    error.textContent = text;
    error.hidden = !text;
  }

  // --- the admin API -------------------------------------------------------------------

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    if (!response.ok) {
      let message = response.statusText;
      try {
        message = (await response.json()).error || message;
      } catch (ignored) {
        // not JSON: keep the status text
      }
      throw new HttpError(response.status, message);
    }
    return response;
  }

  function pageQuery(paging, params) {
    const query = new URLSearchParams(params);
    if (paging.cursor !== null) query.set("after", paging.cursor);
    return query.toString();
  }

  function pageInfo(id, paging, shown) {
    const page = paging.back.length + 1;
    const more = paging.next !== null ? ", more follow" : "";
    $(id).textContent = `page ${page}: ${shown} shown${more}`;
    $(`${id.replace("-page", "")}-prev`).disabled = paging.back.length === 0;
    $(`${id.replace("-page", "")}-first`).disabled = paging.back.length === 0;
    $(`${id.replace("-page", "")}-next`).disabled = paging.next === null;
  }

  function wirePaging(prefix, paging, load) {
    $(`${prefix}-next`).addEventListener("click", () => {
      if (paging.next === null) return;
      paging.back.push(paging.cursor);
      paging.cursor = paging.next;
      load().catch(handleError);
    });
    $(`${prefix}-prev`).addEventListener("click", () => {
      if (!paging.back.length) return;
      paging.cursor = paging.back.pop();
      load().catch(handleError);
    });
    $(`${prefix}-first`).addEventListener("click", () => {
      paging.cursor = null;
      paging.back = [];
      load().catch(handleError);
    });
  }

  function resetPaging(paging) {
    paging.cursor = null;
    paging.back = [];
    paging.next = null;
  }

  // --- the summary ---------------------------------------------------------------------

  function total(counts) {
    return Object.values(counts || {}).reduce((a, b) => a + b, 0);
  }

  function breakdown(counts) {
    return Object.entries(counts || {})
      .filter(([, n]) => n > 0)
      .map(([name, n]) => `${name} ${count(n)}`)
      .join(" · ");
  }

  function card(label, value, detail) {
    return el(
      "div",
      { className: "card" },
      el("div", { className: "label" }, label),
      el("div", { className: "value" }, value),
      el("div", { className: "detail" }, detail || "\u00a0"),
    );
  }

  function renderSummary(summary) {
    state.summary = summary;
    $("summary").replaceChildren(
      card("hosts", count(total(summary.hosts)), breakdown(summary.hosts)),
      card("sessions", count(summary.sessions)),
      card("tasks", count(total(summary.tasks)), breakdown(summary.tasks)),
      card("peers", count(total(summary.peers)), breakdown(summary.peers)),
      card("messages handled", count(summary.messages)),
      card("evictions", count(summary.evictions_recorded)),
      card("jobs running or queued", count(summary.jobs.unfinished),
        breakdown({ succeeded: summary.jobs.succeeded, failed: summary.jobs.failed })),
    );
    fill(
      "decisions",
      summary.decisions.map((d) =>
        el("tr", null, el("td", null, d.action), el("td", null, d.cause),
          el("td", { className: "num" }, count(d.count)))),
      3,
      "no decision yet",
    );
    fill(
      "eviction-counts",
      summary.evictions.map((e) =>
        el("tr", null, el("td", null, e.kind), el("td", null, e.reason),
          el("td", { className: "num" }, count(e.count)))),
      3,
      "no eviction yet",
    );
  }

  // --- hosts ---------------------------------------------------------------------------

  function uplinkCell(host) {
    // What its children reported it served (a decayed rate), against what it announced.
    const upload = host.upload;
    const rate = upload.rate;
    const title = `last ${Math.round(upload.window_seconds)} s: ${count(upload.window_bytes)} bytes, ` +
      `${count(upload.window_pieces)} pieces; ${count(upload.in_flight)} in flight`;
    const capacity = host.upload_bandwidth;
    if (!capacity) return el("td", { title }, `${bits(rate)} (capacity not announced)`);
    const meter = el("meter", { min: 0, max: capacity, value: Math.min(rate, capacity) });
    return el("td", { title }, el("span", { className: "load" }, meter, `${bits(rate)} of ${bits(capacity)}`));
  }

  function hostRow(host) {
    const used = host.concurrent_upload_count;
    const limit = host.concurrent_upload_limit;
    const meter = el("meter", { min: 0, max: Math.max(limit, 1), value: used });
    return el(
      "tr",
      null,
      el("td", { className: "id", title: host.id }, host.id),
      el("td", null, host.hostname),
      el("td", null, host.ip),
      el("td", null, host.type),
      el("td", { className: `state-${host.state}` }, host.state),
      el("td", { title: when(host.last_contact_at) }, ago(host.last_contact_at)),
      el("td", { className: "num" }, count(host.peers)),
      el("td", null, el("span", { className: "load" }, meter, `${used} / ${limit}`)),
      uplinkCell(host),
      el("td", { className: "num" }, count(host.upload_count)),
      el("td", null, host.session ? "open" : "none"),
    );
  }

  async function loadHosts() {
    const paging = state.hosts;
    const params = { limit: $("hosts-limit").value };
    const wanted = $("hosts-state").value;
    if (wanted) params.state = wanted;
    const response = await api(`api/v1/hosts?${pageQuery(paging, params)}`);
    const hosts = await response.json();
    paging.next = response.headers.has("link") && hosts.length ? hosts[hosts.length - 1].id : null;
    fill("hosts", hosts.map(hostRow), 11, "no hosts");
    pageInfo("hosts-page", paging, hosts.length);
  }

  // --- tasks ---------------------------------------------------------------------------

  function taskRow(task) {
    const open = el("button", { type: "button", className: "link id", title: task.id }, task.id);
    open.addEventListener("click", () => openTask(task.id));
    return el(
      "tr",
      null,
      el("td", null, open),
      el("td", { className: "id", title: task.url }, task.url),
      el("td", { className: `state-${task.state}` }, task.state),
      el("td", { className: "num" }, count(task.peers)),
      el("td", { className: "num" }, task.total_piece_count < 0 ? "?" : count(task.total_piece_count)),
      el("td", { className: "num" }, count(task.back_to_source_count)),
      el("td", { title: when(task.updated_at) }, ago(task.updated_at)),
    );
  }

  async function loadTasks() {
    const paging = state.tasks;
    const response = await api(`api/v1/tasks?${pageQuery(paging, { limit: $("tasks-limit").value })}`);
    const tasks = await response.json();
    paging.next = response.headers.has("link") && tasks.length ? tasks[tasks.length - 1].id : null;
    fill("tasks", tasks.map(taskRow), 7, "no tasks");
    pageInfo("tasks-page", paging, tasks.length);
  }

  // --- one task: its peers and their parent graph ----------------------------------------

  function openTask(taskId) {
    const task = state.task;
    resetPaging(task);
    task.id = taskId;
    task.graphKey = "";
    $("task-panel").hidden = false;
    $("task-id").textContent = taskId;
    loadTask().catch(handleError);
  }

  function closeTask() {
    const task = state.task;
    task.id = null;
    $("task-panel").hidden = true;
    if (task.graphUrl) URL.revokeObjectURL(task.graphUrl);
    task.graphUrl = null;
    $("task-graph").removeAttribute("src");
  }

  function field(name, value) {
    return [el("dt", null, name), el("dd", null, value)];
  }

  function peerRow(peer, total) {
    return el(
      "tr",
      null,
      el("td", { className: "id", title: peer.id }, peer.id),
      el("td", { className: "id", title: peer.host_id }, peer.host_id),
      el("td", { className: `state-${peer.state}` }, peer.state),
      el("td", { className: "num" }, total < 0 ? count(peer.finished_pieces) : `${count(peer.finished_pieces)} / ${count(total)}`),
      el("td", { className: "wrap" }, peer.parents.length ? peer.parents.join(", ") : "–"),
    );
  }

  async function loadTask() {
    const task = state.task;
    const taskId = task.id;
    if (taskId === null) return;
    const limit = $("task-limit").value;
    const query = pageQuery(task, { limit });
    const path = `api/v1/tasks/${encodeURIComponent(taskId)}`;
    let detail;
    try {
      detail = await (await api(`${path}?${query}`)).json();
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 404) throw error;
      if (task.id !== taskId) return;
      $("task-fields").replaceChildren(...field("state", "gone: evicted, or never known here"));
      fill("task-peers", [], 5, "no peers");
      $("task-page").textContent = "";
      return;
    }
    if (task.id !== taskId) return; // another task was opened meanwhile
    task.next = detail.next;
    $("task-fields").replaceChildren(
      ...field("url", detail.url),
      ...field("state", detail.state),
      ...field("peers", count(detail.peer_count)),
      ...field("pieces", detail.total_piece_count < 0 ? "unknown" : count(detail.total_piece_count)),
      ...field("content length", detail.content_length < 0 ? "unknown" : `${count(detail.content_length)} bytes`),
      ...field("back to source", count(detail.back_to_source_count)),
      ...field("created", when(detail.created_at)),
      ...field("updated", `${when(detail.updated_at)} (${ago(detail.updated_at)})`),
    );
    fill("task-peers", detail.peers.map((p) => peerRow(p, detail.total_piece_count)), 5, "no peers");
    pageInfo("task-page", task, detail.peers.length);
    const graphKey = JSON.stringify([query, detail.peers.map((p) => [p.id, p.state, p.parents])]);
    if (graphKey !== task.graphKey) {
      task.graphKey = graphKey;
      await loadGraph(`${path}/graph.svg?${query}`, taskId);
    }
  }

  async function loadGraph(path, taskId) {
    // The SVG needs the token, which an <img> cannot send: fetch it, show it from a blob: URL.
    const blob = await (await api(path)).blob();
    const task = state.task;
    if (task.id !== taskId) return;
    const previous = task.graphUrl;
    task.graphUrl = URL.createObjectURL(blob);
    $("task-graph").src = task.graphUrl;
    if (previous) URL.revokeObjectURL(previous);
  }

  // --- recent evictions ----------------------------------------------------------------

  function evictionRow(eviction) {
    return el(
      "tr",
      null,
      el("td", { title: when(eviction.at) }, ago(eviction.at)),
      el("td", null, eviction.kind),
      el("td", { className: "id", title: eviction.id }, eviction.id),
      el("td", null, eviction.reason),
      el("td", { className: "num" }, duration(eviction.detection_latency)),
      el("td", { className: "num" }, duration(eviction.lateness)),
      el("td", { className: "id", title: eviction.host_id || "" }, eviction.hostname || eviction.host_id || "–"),
    );
  }

  async function loadEvictions(force) {
    const recorded = state.summary ? state.summary.evictions_recorded : null;
    if (!force && recorded === state.evictionsShown) return;
    const params = new URLSearchParams({ limit: EVICTIONS_SHOWN });
    const kind = $("evictions-kind").value;
    if (kind) params.set("kind", kind);
    const evictions = await (await api(`api/v1/evictions?${params}`)).json();
    state.evictionsShown = recorded;
    fill("evictions", evictions.map(evictionRow), 7, "no evictions");
  }

  // --- jobs ----------------------------------------------------------------------------

  function jobRow(job) {
    const hosts = job.hosts_by_state;
    const done = `${count(hosts.succeeded)} ok, ${count(hosts.failed)} failed of ${count(job.host_count)}`;
    const reasons = job.reasons.join("\n");
    return el(
      "tr",
      null,
      el("td", { className: "id", title: job.id }, job.id),
      el("td", null, job.type),
      el("td", { className: `state-${job.state}`, title: reasons || null }, job.state),
      el("td", { className: "id", title: job.url }, job.url),
      el("td", { className: "num" }, done),
      el("td", { title: when(job.created_at) }, ago(job.created_at)),
      el("td", { title: when(job.finished_at) }, job.finished_at === null ? "–" : ago(job.finished_at)),
    );
  }

  async function loadJobs(force) {
    const key = state.summary ? JSON.stringify(state.summary.jobs) : null;
    if (!force && key === state.jobsShown) return;
    const jobs = await (await api(`api/v1/jobs?limit=${JOBS_SHOWN}`)).json();
    state.jobsShown = key;
    fill("jobs", jobs.map(jobRow), 7, "no jobs");
  }

  // --- keeping up ----------------------------------------------------------------------

  async function refresh(force) {
    await Promise.all([loadHosts(), loadTasks(), loadTask(), loadEvictions(force), loadJobs(force)]);
  }

  async function scheduleRefresh() {
    // One refresh at a time; changes that arrive meanwhile make one more, not one each.
    if (state.refreshing || document.hidden) {
      state.dirty = true;
      return;
    }
    state.refreshing = true;
    try {
      do {
        state.dirty = false;
        await refresh(false);
      } while (state.dirty && !document.hidden);
      showError("");
    } catch (error) {
      handleError(error);
    } finally {
      state.refreshing = false;
    }
  }

  function connect() {
    clearTimeout(state.retryTimer);
    const url = new URL(STREAM_PATH, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    state.socket = socket;
    socket.addEventListener("open", () => {
      // The token goes in the first message: never in the URL.
      socket.send(JSON.stringify({ type: "hello", token: state.token || null }));
    });
    socket.addEventListener("message", (event) => {
      if (socket !== state.socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (ignored) {
        return;
      }
      if (message.type !== "summary") return;
      socket.send(JSON.stringify({ type: "ack", seq: message.seq }));
      state.retryMs = RETRY_FIRST_MS;
      setStatus("live", "live");
      renderSummary(message.summary);
      scheduleRefresh();
    });
    socket.addEventListener("close", (event) => {
      if (socket !== state.socket) return;
      state.socket = null;
      if (event.code === 4401 || event.code === 4403) {
        askForToken(`The token was refused: ${event.reason || "not valid"}.`);
        return;
      }
      const full = event.code === 1013;
      const wait = full ? FULL_RETRY_MS : state.retryMs;
      state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
      setStatus("reconnecting", full ? "too many consoles open: retrying" : "reconnecting");
      state.retryTimer = setTimeout(connect, wait);
    });
  }

  function disconnect() {
    clearTimeout(state.retryTimer);
    const socket = state.socket;
    state.socket = null;
    if (socket) socket.close(1000);
  }

  // --- the token -----------------------------------------------------------------------

  function askForToken(message) {
    disconnect();
    if (state.token) {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
    }
    $("console").hidden = true;
    $("forget-token").hidden = true;
    $("token-message").textContent = message;
    $("token-form").hidden = false;
    setStatus("token", "token needed");
    $("token-input").focus();
  }

  function handleError(error) {
    if (error instanceof HttpError && (error.status === 401 || error.status === 403)) {
      const why = error.status === 401 ? "This scheduler needs a token" : "The token was refused";
      askForToken(`${why}: ${error.message}`);
      return;
    }
    showError(`Could not read the scheduler: ${error.message}`);
  }

  async function start() {
    clearTimeout(state.startTimer);
    disconnect();
    setStatus("connecting", "connecting");
    try {
      const summary = await (await api("api/v1/summary")).json();
      $("token-form").hidden = true;
      $("console").hidden = false;
      $("forget-token").hidden = !state.token;
      renderSummary(summary);
      await refresh(true);
      showError("");
      connect();
    } catch (error) {
      handleError(error);
      if (!(error instanceof HttpError && (error.status === 401 || error.status === 403))) {
        setStatus("offline", "offline: retrying");
        state.startTimer = setTimeout(start, RETRY_MAX_MS);
      }
    }
  }

  function wire() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      $("token-input").value = "";
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      start();
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
      start();
    });
    $("hosts-state").addEventListener("change", () => {
      resetPaging(state.hosts);
      loadHosts().catch(handleError);
    });
    $("hosts-limit").addEventListener("change", () => {
      resetPaging(state.hosts);
      loadHosts().catch(handleError);
    });
    $("tasks-limit").addEventListener("change", () => {
      resetPaging(state.tasks);
      loadTasks().catch(handleError);
    });
    $("task-limit").addEventListener("change", () => {
      resetPaging(state.task);
      loadTask().catch(handleError);
    });
    $("evictions-kind").addEventListener("change", () => loadEvictions(true).catch(handleError));
    $("task-close").addEventListener("click", closeTask);
    wirePaging("hosts", state.hosts, loadHosts);
    wirePaging("tasks", state.tasks, loadTasks);
    wirePaging("task", state.task, loadTask);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.dirty) scheduleRefresh();
    });
  }

  wire();
  start();
})();
