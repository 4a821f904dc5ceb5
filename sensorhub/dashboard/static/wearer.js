// One wearer's live page: values, traces, posture, alert banner, sensors, exercise, sessions, commands.
"use strict";

(() => {
  const { $, text, el, num, deg, age } = SH;
  const wearer = SH.meta("wearer");
  const ANGLE_KEYS = ["thoracic_flexion_deg", "lumbar_flexion_deg", "trunk_flexion_deg"];
  const css = getComputedStyle(document.documentElement);
  const colors = ["--thoracic", "--lumbar", "--trunk"].map((name) => css.getPropertyValue(name).trim());
  const ring = new AngleRing();
  const plot = new TracePlot($("traces"), colors);

  const state = {
    link: false,
    broker: { connected: false, since: Date.now(), error: null },
    status: null, statusSince: null,
    angles: null, anglesAt: null,
    posture: null,
    sensors: {},
    openAlerts: [],
    exercise: [],
    session: null,
    lastError: null,
  };
  let dirty = true;

  function applyAngles(value, receivedAt) {
    state.angles = value;
    state.anglesAt = receivedAt;
    const t = num(value.t);
    if (t !== null) ring.push(t, ANGLE_KEYS.map((key) => value[key]));
    dirty = true;
    renderAngles();
    if (document.body.classList.contains("stale")) renderStale(); // live again at once, not at the next tick
  }

  function snapshot(data) {
    state.broker = SH.brokerState(data.broker || {});
    const w = data.wearer;
    ring.clear();
    state.status = null; state.angles = null; state.anglesAt = null; state.posture = null;
    state.sensors = {}; state.openAlerts = []; state.exercise = []; state.session = null; state.lastError = null;
    if (w) {
      const now = Date.now();
      state.status = w.status;
      state.statusSince = w.status_age_s === null ? null : now - w.status_age_s * 1000;
      for (const row of w.history || []) ring.push(row[0], row.slice(1));
      if (w.angles) {
        state.angles = w.angles;
        state.anglesAt = now - (num(w.angles_age_s) || 0) * 1000;
      }
      state.posture = w.posture;
      state.sensors = w.sensors || {};
      state.openAlerts = w.open_alerts || [];
      state.exercise = w.exercise || [];
      state.session = w.session;
      state.lastError = w.last_error;
    }
    dirty = true;
    renderAll();
  }

  function update(data) {
    const value = data.value;
    switch (data.kind) {
      case "angles": applyAngles(value, Date.now()); break;
      case "status":
        if (state.status !== value) state.statusSince = Date.now();
        state.status = value;
        renderStale();
        break;
      case "posture": state.posture = value; renderPosture(); break;
      case "sensors": state.sensors[data.placement] = value; renderSensors(); break;
      case "alerts": state.openAlerts = data.open || []; renderAlert(); break;
      case "exercise":
        state.exercise.push(value);
        if (state.exercise.length > 60) state.exercise.shift();
        renderExercise();
        break;
      case "session":
        state.session = value;
        renderSessionLine();
        loadSessions();
        break;
      case "errors": state.lastError = value; renderError(); break;
      default: break;
    }
  }

  function renderAngles() {
    const a = state.angles || {};
    text($("thoracic-value"), deg(a.thoracic_flexion_deg));
    text($("lumbar-value"), deg(a.lumbar_flexion_deg));
    text($("trunk-value"), deg(a.trunk_flexion_deg));
    text($("pelvis-value"), deg(a.pelvis_tilt_deg));
    if (!state.posture && a.posture) renderPosture();
  }

  function renderPosture() {
    // The retained posture topic, else the posture carried by the angles.
    const p = state.posture;
    const name = p ? p.posture : state.angles ? state.angles.posture : null;
    const node = $("posture");
    text(node, SH.posture(name));
    node.dataset.posture = name || "";
    const latestT = state.angles ? num(state.angles.t) : null;
    const since = p ? num(p.since) : null;
    text($("posture-since"), since !== null && latestT !== null && latestT >= since ? `for ${age(latestT - since)}` : "");
  }

  function renderAlert() {
    const slouch = state.openAlerts.filter((a) => a.type === "slouch");
    const banner = $("alert-banner");
    if (!slouch.length) { banner.hidden = true; return; }
    const a = slouch[slouch.length - 1];
    const where = a.segment ? `${a.segment} ` : "";
    const angle = num(a.angle_deg) !== null ? ` ${deg(a.angle_deg)}` : "";
    const limit = num(a.threshold_deg) !== null ? ` (limit ${deg(a.threshold_deg, 0)})` : "";
    text(banner, `Slouching — ${where}flexion${angle}${limit}. Sit up tall.`);
    banner.hidden = false;
  }

  function renderSensors() {
    const body = $("sensors");
    const names = Object.keys(state.sensors).sort();
    if (!names.length) return;
    body.replaceChildren(...names.map((placement) => {
      const s = state.sensors[placement] || {};
      const linked = s.connected === true;
      const battery = num(s.battery_pct);
      return el("tr", { "data-testid": `sensor-${placement}`, class: linked ? "" : "bad" },
        el("td", {}, placement.replace("_", " ")),
        el("td", { class: linked ? "" : "error" }, linked ? "connected" : "disconnected"),
        el("td", {}, battery === null ? "–" : `${Math.round(battery)} %`),
        el("td", {}, num(s.rssi) === null ? "–" : `${s.rssi} dBm`),
        el("td", {}, num(s.rate_hz) === null ? "–" : `${s.rate_hz.toFixed(1)} Hz`),
        el("td", {}, num(s.dropped) === null ? "–" : String(s.dropped)));
    }));
  }

  function rom(r, key) { return deg(r && r[key]); }

  function renderExercise() {
    const reps = state.exercise.filter((e) => e.type === "rep");
    const body = $("exercise");
    if (reps.length) {
      let n = 0;
      const numbered = [];
      for (const e of state.exercise) {
        if (e.type === "set" || e.type === "pain_stop") n = 0;
        if (e.type === "rep") { n += 1; numbered.push([n, e]); }
      }
      body.replaceChildren(...numbered.slice(-15).reverse().map(([i, e]) => el("tr", { "data-testid": "exercise-rep" },
        el("td", {}, String(i)),
        el("td", {}, rom(e.rom_deg, "thoracic")), el("td", {}, rom(e.rom_deg, "lumbar")),
        el("td", {}, rom(e.rom_deg, "trunk")), el("td", {}, rom(e.rom_deg, "pelvis")),
        el("td", { class: "fast" }, e.too_fast ? "too fast" : ""))));
    }
    const last = [...state.exercise].reverse().find((e) => e.type === "set" || e.type === "pain_stop");
    if (!last) { text($("exercise-summary"), reps.length ? `set in progress: ${reps.length} reps` : "no set yet"); return; }
    if (last.type === "pain_stop") {
      text($("exercise-summary"), `pain stop${last.region ? ` (${last.region})` : ""}${num(last.level) !== null ? `, level ${last.level}` : ""}: the range there is now the limit`);
      return;
    }
    const mean = last.rom_mean_deg || {};
    const parts = Object.entries(mean).filter(([, v]) => num(v) !== null).map(([k, v]) => `${k} ${deg(v)}`);
    text($("exercise-summary"),
      `set ${last.set ?? ""}: ${last.reps ?? "?"} reps` + (last.too_fast_reps ? ` (${last.too_fast_reps} too fast)` : "") +
      (parts.length ? `; mean range ${parts.join(", ")}` : ""));
  }

  function renderSessionLine() {
    const s = state.session;
    if (!s) { text($("session-current"), ""); return; }
    const stats = s.stats || {};
    const bits = [];
    if (num(stats.upright_pct) !== null) bits.push(`upright ${stats.upright_pct.toFixed(0)} %`);
    if (num(stats.slouch_episodes) !== null) bits.push(`${stats.slouch_episodes} slouch alerts`);
    text($("session-current"), `Current session ${s.id}, started ${SH.dateTime(s.started)}${bits.length ? ` — ${bits.join(", ")}` : ""}`);
  }

  function renderError() {
    const node = $("last-error");
    const e = state.lastError;
    if (!e) { node.hidden = true; return; }
    text(node, `sensorhub refused a command at ${SH.clock(e.t)}: ${e.message || ""}`);
    node.hidden = false;
  }

  function renderStale() {
    const now = Date.now();
    const reasons = [];
    if (!state.link) reasons.push("the dashboard server is unreachable");
    else if (!state.broker.connected) reasons.push(`no connection to the MQTT broker for ${age((now - state.broker.since) / 1000)}`);
    if (state.status === "offline") {
      reasons.push(`sensorhub of ${wearer} is offline` + (state.statusSince ? ` for ${age((now - state.statusSince) / 1000)}` : ""));
    }
    if (state.anglesAt === null) reasons.push("no angles received yet");
    else if (now - state.anglesAt > SH.STALE_ANGLES_MS) reasons.push(`no angles for ${age((now - state.anglesAt) / 1000)}`);
    const stale = reasons.length > 0;
    document.body.classList.toggle("stale", stale);
    const banner = $("stale-banner");
    banner.hidden = !stale;
    if (stale) text(banner, `Not live: ${reasons.join("; ")}. Showing the last values received.`);
    const st = $("wearer-status");
    text(st, state.status || "unknown");
    st.className = `pill ${state.status === "online" ? "ok" : state.status === "offline" ? "bad" : "idle"}`;
    SH.showBroker($("broker-state"), state.broker, state.link);
    text($("angles-age"), state.anglesAt === null ? "" : `updated ${age((now - state.anglesAt) / 1000)} ago`);
  }

  function renderAll() {
    renderAngles(); renderPosture(); renderAlert(); renderSensors(); renderExercise(); renderSessionLine(); renderError(); renderStale();
  }

  async function loadSessions() {
    const body = $("sessions");
    let sessions;
    try {
      const response = await fetch(`/api/sessions?wearer=${encodeURIComponent(wearer)}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      sessions = (await response.json()).sessions;
    } catch (err) {
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "4" }, `cannot list sessions: ${err.message}`)));
      return;
    }
    if (!sessions.length) {
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: "4" }, "no stored session of this wearer")));
      return;
    }
    body.replaceChildren(...sessions.map((s) => {
      const id = encodeURIComponent(s.id);
      return el("tr", { "data-testid": "session-row", dataset: { session: s.id } },
        el("td", { title: s.id }, SH.dateTime(s.started)),
        el("td", {}, num(s.duration_s) === null ? "–" : age(s.duration_s)),
        el("td", {}, s.status),
        el("td", {},
          el("a", { href: `/sessions/${id}/angles.csv`, "data-testid": "session-csv", download: "" }, "CSV"), " · ",
          el("a", { href: `/sessions/${id}/report.html`, "data-testid": "session-report", target: "_blank", rel: "noopener" }, "report")));
    }));
  }

  async function send(name, body, button) {
    const result = $("command-result");
    button.disabled = true;
    try {
      await SH.command(wearer, name, body);
      text(result, `${name} sent at ${new Date().toLocaleTimeString()}`);
      result.className = "note";
    } catch (err) {
      text(result, `${name} not sent: ${err.message}`);
      result.className = "error";
    } finally {
      button.disabled = false;
    }
  }

  function intOrNull(input) {
    const v = input.value.trim();
    return v === "" ? null : Number.parseInt(v, 10);
  }

  $("btn-calibrate").addEventListener("click", (e) => send("calibrate", { functional: false }, e.currentTarget));
  $("btn-snooze").addEventListener("click", (e) => {
    const minutes = $("snooze-minutes").value;
    send("snooze", minutes ? { minutes: Number(minutes) } : {}, e.currentTarget);
  });
  $("btn-exercise-start").addEventListener("click", (e) => {
    const reps = intOrNull($("exercise-reps"));
    send("exercise", reps === null ? { action: "start" } : { action: "start", reps }, e.currentTarget);
  });
  $("btn-exercise-stop").addEventListener("click", (e) => send("exercise", { action: "stop" }, e.currentTarget));
  $("btn-pain").addEventListener("click", (e) => {
    const body = {};
    const region = $("pain-region").value;
    const level = intOrNull($("pain-level"));
    if (region) body.region = region;
    if (level !== null) body.level = level;
    send("pain", body, e.currentTarget);
  });

  SH.stream(`/api/events?wearer=${encodeURIComponent(wearer)}`, {
    link(up) { state.link = up; renderStale(); },
    snapshot,
    update,
    broker(data) { state.broker = SH.brokerState(data); renderStale(); },
  });
  loadSessions();
  setInterval(loadSessions, 30000);
  setInterval(renderStale, 500);
  setInterval(() => { if (dirty) { dirty = false; plot.draw(ring); } renderPosture(); }, 250);
  window.addEventListener("resize", () => { dirty = true; });
})();
