// gitflock dashboard: live updates over server-sent events (/events), relative times,
// select-all and confirmations. Vanilla JS, no dependencies; every value coming from the
// server is put into the page with textContent, never as HTML.
(function () {
  "use strict";
  const $ = (s, el) => (el || document).querySelector(s);
  const $$ = (s, el) => Array.from((el || document).querySelectorAll(s));
  const CLASSES = { WAITING: "waiting", INQUEUE: "inqueue", RUNNING: "running", RUNTIME_ERROR: "error", SUCCEED: "succeed", KILLED: "killed" };
  const FINAL = new Set(["RUNTIME_ERROR", "SUCCEED", "KILLED"]);
  const CODES = { 0: "ok", 1: "error", 2: "timeout", 3: "killed", 4: "handed back" };

  function rel(ms) {
    const d = Math.round((Date.now() - ms) / 1000);
    const a = Math.abs(d);
    if (a < 1) return "just now";
    const s = a < 60 ? a + "s" : a < 3600 ? Math.floor(a / 60) + "m" : a < 86400 ? Math.floor(a / 3600) + "h" : Math.floor(a / 86400) + "d";
    return d < 0 ? "in " + s : s + " ago";
  }
  function timeEl(iso) {
    if (!iso) { const s = document.createElement("span"); s.className = "muted"; s.textContent = "never"; return s; }
    const t = document.createElement("time");
    const ms = Date.parse(iso);
    t.dateTime = iso; t.title = iso; t.dataset.ms = String(ms); t.textContent = rel(ms);
    return t;
  }
  function refreshTimes() { $$("time[data-ms]").forEach(t => { const ms = +t.dataset.ms; if (ms > 0) t.textContent = rel(ms); }); }
  setInterval(refreshTimes, 1000);

  function badge(state) {
    const b = document.createElement("span");
    b.className = "badge " + (CLASSES[state] || "waiting");
    b.dataset.field = "state";
    b.textContent = state;
    return b;
  }
  function setState(el, state) {
    if (!el) return;
    el.className = el.className.replace(/\b(waiting|inqueue|running|error|succeed|killed)\b/g, "").trim() + " " + (CLASSES[state] || "waiting");
    el.textContent = state;
  }
  function cell(text, cls) { const td = document.createElement("td"); if (cls) td.className = cls; td.textContent = text == null ? "" : String(text); return td; }

  // ---- tasks list ----
  function taskRow(t) {
    const tr = document.createElement("tr");
    tr.dataset.taskId = t.id;
    const c = document.createElement("td"); c.className = "check";
    const cb = document.createElement("input"); cb.type = "checkbox"; cb.name = "ids"; cb.value = t.id; c.appendChild(cb); tr.appendChild(c);
    const n = document.createElement("td");
    const a = document.createElement("a"); a.href = "/tasks/" + t.id; a.className = "task-name"; a.textContent = t.name; n.appendChild(a);
    const sid = document.createElement("span"); sid.className = "muted mono"; sid.textContent = " " + t.id.slice(0, 8); n.appendChild(sid);
    if (t.interval_secs > 0) { const g = document.createElement("span"); g.className = "tag"; g.textContent = "↻ " + t.interval_secs + "s"; n.append(" ", g); }
    tr.appendChild(n);
    tr.appendChild(cell(t.type));
    const tg = cell(t.target, "target"); tg.title = t.target || ""; tr.appendChild(tg);
    const st = document.createElement("td"); st.appendChild(badge(t.state)); tr.appendChild(st);
    const nd = cell(t.node); nd.dataset.field = "node"; tr.appendChild(nd);
    const rn = cell(t.runs, "num"); rn.dataset.field = "runs"; tr.appendChild(rn);
    const cr = document.createElement("td"); cr.appendChild(timeEl(t.created_at)); tr.appendChild(cr);
    const up = document.createElement("td"); up.dataset.field = "updated"; up.appendChild(timeEl(t.updated_at)); tr.appendChild(up);
    return tr;
  }
  // Any other row that shows a task (the mirrors table): its state badge follows too.
  function onTaskRows(ev) {
    if (!ev.task) return;
    $$("tr[data-task-id]").filter(r => r.dataset.taskId === ev.task.id && !r.closest("#tasks-table")).forEach(r => {
      if (ev.kind === "deleted") { r.remove(); return; }
      setState($("[data-field=state]", r), ev.task.state);
    });
  }
  function onTaskList(ev) {
    const table = $("#tasks-table");
    if (!table || !ev.task) return;
    const id = ev.task.id;
    const row = $$("tr[data-task-id]", table).find(r => r.dataset.taskId === id);
    if (ev.kind === "deleted") { if (row) row.remove(); return; }
    const t = ev.task;
    if (row) {
      setState($("[data-field=state]", row), t.state);
      const nd = $("[data-field=node]", row); if (nd) nd.textContent = t.node || "";
      const rn = $("[data-field=runs]", row); if (rn) rn.textContent = String(t.runs);
      const up = $("[data-field=updated]", row); if (up) { up.textContent = ""; up.appendChild(timeEl(t.updated_at)); }
    } else if (table.dataset.livePrepend === "1" && t.created_at && Date.now() - Date.parse(t.created_at) < 60000) {
      const tr = taskRow(t); tr.classList.add("flash");
      $("tbody", table).prepend(tr);
      table.classList.remove("hidden");
      const empty = $("#tasks-empty"); if (empty) empty.remove();
      const total = $("#task-total"); if (total) total.textContent = String((+total.textContent || 0) + 1);
    }
  }

  // ---- task detail ----
  let detailFetch = null;
  function renderDetail(t) {
    setState($("#task-state"), t.state);
    const node = $("#task-node"); if (node) node.textContent = t.node || "not yet dispatched";
    const at = $("#task-attempts"); if (at) at.textContent = String(t.attempts);
    const rn = $("#task-runs"); if (rn) rn.textContent = String(t.runs);
    const up = $("#task-updated"); if (up) { up.textContent = ""; up.appendChild(timeEl(t.updated_at)); }
    const due = $("#task-due"); if (due) { due.textContent = ""; if (t.state === "WAITING") due.appendChild(timeEl(t.due_at)); else due.textContent = "—"; }
    const kill = $("#kill-form"); if (kill) kill.hidden = FINAL.has(t.state);
    const table = $("#results"); const body = table && $("tbody", table);
    if (body && Array.isArray(t.results)) {
      body.textContent = "";
      t.results.forEach(r => {
        const tr = document.createElement("tr");
        tr.appendChild(cell(r.attempt == null ? "" : r.attempt, "num"));
        const oc = document.createElement("td"); const b = document.createElement("span");
        b.className = "badge " + (r.code === 0 ? "succeed" : "error"); b.textContent = CODES[r.code] || "other"; oc.appendChild(b); tr.appendChild(oc);
        const m = document.createElement("td"); m.className = "msg"; const pre = document.createElement("pre"); pre.textContent = r.message || ""; m.appendChild(pre); tr.appendChild(m);
        tr.appendChild(cell(r.node));
        const s = document.createElement("td"); s.appendChild(timeEl(r.started_at)); tr.appendChild(s);
        const took = r.started_at && r.finished_at ? Date.parse(r.finished_at) - Date.parse(r.started_at) : null;
        tr.appendChild(cell(took == null ? "" : took < 1000 ? took + " ms" : (took / 1000).toFixed(1) + " s"));
        body.appendChild(tr);
      });
      table.classList.toggle("hidden", t.results.length === 0);
      const empty = $("#results-empty"); if (empty) empty.hidden = t.results.length > 0;
    }
  }
  function onTaskDetail(ev) {
    const d = $("#task-detail");
    if (!d || !ev.task || ev.task.id !== d.dataset.taskId) return;
    if (ev.kind === "deleted") { setState($("#task-state"), "DELETED"); return; }
    renderDetail(ev.task);
    // The event may carry fewer results than the task has: fetch the full record once.
    clearTimeout(detailFetch);
    detailFetch = setTimeout(() => {
      fetch("/api/v1/tasks/" + encodeURIComponent(d.dataset.taskId), { credentials: "same-origin" })
        .then(r => r.ok ? r.json() : null).then(t => { if (t) renderDetail(t); }).catch(() => {});
    }, 150);
  }

  // ---- cluster snapshot: overview counts, nodes ----
  function onCluster(c) {
    const err = $("#cluster-error");
    if (c.error) { if (err) { err.textContent = c.error; err.classList.remove("hidden"); } return; }
    if (err) err.classList.add("hidden");
    $$("[data-master]").forEach(e => { e.textContent = c.master || "none"; });
    $$("[data-epoch]").forEach(e => { e.textContent = String(c.epoch); });
    let total = 0;
    Object.keys(CLASSES).forEach(s => {
      const n = (c.counts && c.counts[s]) || 0; total += n;
      $$("[data-count=\"" + s + "\"]").forEach(e => { e.textContent = String(n); });
      $$("[data-bar=\"" + s + "\"]").forEach(e => { e.style.flexGrow = String(n); });
    });
    $$("[data-total]").forEach(e => { e.textContent = String(total); });
    $$("[data-type-count]").forEach(e => { e.textContent = String((c.type_counts && c.type_counts[e.dataset.typeCount]) || 0); });
    const nodes = c.nodes || [];
    $$("[data-alive]").forEach(e => { e.textContent = String(nodes.filter(n => n.state === "alive").length); });
    $$("[data-node-total]").forEach(e => { e.textContent = String(nodes.length); });
    addNodeRows(nodes);
    nodes.forEach(n => {
      $$("tr[data-node]").filter(r => r.dataset.node === n.name).forEach(r => updateNodeRow(r, n));
    });
  }
  // Every field a node row shows, from the snapshot (the same rules as the template).
  function setText(r, field, text) { const e = $("[data-field=" + field + "]", r); if (e) e.textContent = text; }
  function updateNodeRow(r, n) {
    r.className = "node-" + n.state;
    const dot = $(".dot", r); if (dot) dot.className = "dot " + n.state;
    const st = $("[data-field=state]", r);
    if (st) { st.className = "badge node-" + n.state; st.textContent = n.state; }
    const ns = $(".node-state", r); if (ns) ns.textContent = n.state;
    const hb = $("[data-field=heartbeat]", r); if (hb) { hb.textContent = ""; hb.appendChild(timeEl(n.last_heartbeat)); }
    const role = $("[data-field=role]", r);
    if (role) {
      role.textContent = "";
      const s = document.createElement("span");
      s.className = n.role === "master" ? "badge master" : "muted";
      s.textContent = n.role;
      role.appendChild(s);
    }
    setText(r, "epoch", String(n.epoch));
    const dead = n.state === "dead";
    setText(r, "load", dead ? "—" : n.running + "/" + n.concurrency);
    const bar = $("[data-field=load-bar]", r);
    if (bar) bar.style.width = (dead || !n.concurrency ? 0 : Math.min(100, Math.floor(n.running * 100 / n.concurrency))) + "%";
    setText(r, "addr", n.addr || "");
    setText(r, "version", n.version || "");
    setText(r, "metrics", n.metrics || "—");
  }
  // A node that joined after the page was drawn gets its row, where the (name-sorted) list
  // puts it.
  function addNodeRows(nodes) {
    const body = $("#nodes-table tbody");
    if (!body) return;
    nodes.forEach((n, i) => {
      if ($$("tr[data-node]", body).some(r => r.dataset.node === n.name)) return;
      const tr = document.createElement("tr");
      tr.dataset.node = n.name;
      const name = document.createElement("td");
      const dot = document.createElement("span"); dot.className = "dot"; name.appendChild(dot);
      const b = document.createElement("b"); b.textContent = n.name; name.append(" ", b);
      tr.appendChild(name);
      const role = cell(""); role.dataset.field = "role"; tr.appendChild(role);
      const st = document.createElement("td"); const badge = document.createElement("span"); badge.dataset.field = "state"; st.appendChild(badge); tr.appendChild(st);
      const hb = cell(""); hb.dataset.field = "heartbeat"; tr.appendChild(hb);
      const ep = cell("", "num"); ep.dataset.field = "epoch"; tr.appendChild(ep);
      const load = document.createElement("td"); load.className = "nowrap";
      const meter = document.createElement("span"); meter.className = "meter";
      const fill = document.createElement("span"); fill.dataset.field = "load-bar"; meter.appendChild(fill);
      const lt = document.createElement("span"); lt.dataset.field = "load";
      load.append(meter, " ", lt); tr.appendChild(load);
      ["addr", "metrics"].forEach(f => { const td = cell("", "mono"); td.dataset.field = f; tr.appendChild(td); });
      const v = cell("", "muted"); v.dataset.field = "version"; tr.appendChild(v);
      const next = nodes.slice(i + 1).map(m => $$("tr[data-node]", body).find(r => r.dataset.node === m.name)).find(r => r);
      body.insertBefore(tr, next || null);
      const empty = $(".card .empty"); if (empty && empty.closest("section") === body.closest("section")) empty.remove();
    });
  }

  // ---- the event stream ----
  // Reads the shown tasks again (after a gap in the stream).
  function resync() {
    const d = $("#task-detail");
    if (d) {
      fetch("/api/v1/tasks/" + encodeURIComponent(d.dataset.taskId), { credentials: "same-origin" })
        .then(r => r.ok ? r.json() : null).then(t => { if (t) renderDetail(t); }).catch(() => {});
    }
    if ($("#tasks-table")) {
      fetch("/api/v1/tasks" + location.search, { credentials: "same-origin" })
        .then(r => r.ok ? r.json() : null)
        .then(v => { if (v) v.tasks.forEach(t => onTaskList({ kind: "changed", task: t })); })
        .catch(() => {});
    }
  }
  function connect() {
    if (document.body.dataset.page === "login" || !window.EventSource) return;
    const live = $("#live");
    const es = new EventSource("/events");
    // Connected: what changed between the page's rendering and now was not streamed to it.
    es.addEventListener("hello", () => { if (live) { live.className = "live on"; live.textContent = "live"; } resync(); });
    es.addEventListener("task", e => { const ev = JSON.parse(e.data); onTaskList(ev); onTaskRows(ev); onTaskDetail(ev); });
    es.addEventListener("cluster", e => onCluster(JSON.parse(e.data)));
    // Changes may have been missed (the dashboard's own stream from the nodes reconnected, or
    // this page fell behind): read the shown tasks again.
    es.addEventListener("resync", resync);
    es.onerror = () => { if (live) { live.className = "live off"; live.textContent = "reconnecting…"; } };
    window.__gitflockEvents = es;
  }
  // Close the stream as the page goes away: a stream left open (e.g. by a page kept in the
  // back/forward cache) holds one of the browser's few connections to this host, and the
  // next navigation would wait for it.
  window.addEventListener("pagehide", () => { if (window.__gitflockEvents) { window.__gitflockEvents.close(); window.__gitflockEvents = null; } });
  window.addEventListener("pageshow", e => { if (e.persisted && !window.__gitflockEvents) connect(); });

  // ---- forms ----
  function bulkUi() {
    const all = $("#select-all");
    const form = $("#bulk-form");
    if (!form) return;
    const update = () => {
      const n = $$("input[name=ids]:checked", form).length;
      const c = $("#selected-count"); if (c) c.textContent = n + " selected";
      ["#bulk-kill", "#bulk-delete"].forEach(s => { const b = $(s); if (b) b.disabled = n === 0; });
    };
    if (all) all.addEventListener("change", () => { $$("input[name=ids]", form).forEach(cb => { cb.checked = all.checked; }); update(); });
    form.addEventListener("change", update);
    update();
  }
  // A select that chooses what the page shows (the chain's node) applies at once.
  document.addEventListener("change", e => {
    const s = e.target.closest("select[data-autosubmit]");
    if (s && s.form) s.form.submit();
  });
  document.addEventListener("click", e => {
    const b = e.target.closest("[data-confirm]");
    if (b && !window.confirm(b.dataset.confirm)) e.preventDefault();
    const c = e.target.closest("code.copy");
    if (c && navigator.clipboard) navigator.clipboard.writeText(c.textContent).catch(() => {});
  });

  function start() { bulkUi(); connect(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
