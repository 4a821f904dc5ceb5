// The overview: one card per wearer seen on the broker.
"use strict";

(() => {
  const { $, text, el, num, deg, age } = SH;
  const wearers = new Map(); // wearer -> {status, statusSince, angles, anglesAt, posture, openAlerts}
  let broker = { connected: false, since: Date.now(), error: null };
  let link = false;

  function entry(name) {
    if (!wearers.has(name)) wearers.set(name, { status: null, statusSince: null, angles: null, anglesAt: null, posture: null, openAlerts: [] });
    return wearers.get(name);
  }

  function snapshot(data) {
    broker = SH.brokerState(data.broker || {});
    wearers.clear();
    const now = Date.now();
    for (const w of data.wearers || []) {
      const e = entry(w.wearer);
      e.status = w.status;
      e.statusSince = w.status_age_s === null ? null : now - w.status_age_s * 1000;
      e.angles = w.angles;
      e.anglesAt = w.angles ? now - (num(w.angles_age_s) || 0) * 1000 : null;
      e.posture = w.posture;
      e.openAlerts = w.open_alerts || [];
    }
    render();
  }

  function update(data) {
    const e = entry(data.wearer);
    if (data.kind === "angles") { e.angles = data.value; e.anglesAt = Date.now(); }
    else if (data.kind === "status") { if (e.status !== data.value) e.statusSince = Date.now(); e.status = data.value; }
    else if (data.kind === "posture") e.posture = data.value;
    else if (data.kind === "alerts") e.openAlerts = data.open || [];
    else return;
    renderCard(data.wearer);
  }

  function card(name) {
    let node = document.querySelector(`[data-wearer="${CSS.escape(name)}"]`);
    if (!node) {
      node = el("a", { class: "card wearer-card", href: `/w/${encodeURIComponent(name)}`, "data-testid": "wearer-card", dataset: { wearer: name } },
        el("div", { class: "row" }, el("h2", {}, name), el("span", { class: "pill idle", "data-role": "status" }, "unknown")),
        el("p", { class: "posture", "data-role": "posture" }, "–"),
        el("div", { class: "mini" },
          el("span", {}, "thoracic ", el("b", { "data-role": "thoracic" }, "–")),
          el("span", {}, "lumbar ", el("b", { "data-role": "lumbar" }, "–")),
          el("span", {}, "trunk ", el("b", { "data-role": "trunk" }, "–"))),
        el("p", { class: "alert", "data-role": "alert", hidden: "" }, ""),
        el("p", { class: "note", "data-role": "age" }, ""));
      const cards = $("wearers");
      const after = [...cards.children].find((c) => c.dataset.wearer > name);
      cards.insertBefore(node, after || null);
    }
    return node;
  }

  function renderCard(name) {
    const e = wearers.get(name);
    const node = card(name);
    const part = (role) => node.querySelector(`[data-role="${role}"]`);
    const now = Date.now();
    const status = part("status");
    text(status, e.status || "unknown");
    status.className = `pill ${e.status === "online" ? "ok" : e.status === "offline" ? "bad" : "idle"}`;
    const postureName = e.posture ? e.posture.posture : e.angles ? e.angles.posture : null;
    text(part("posture"), SH.posture(postureName));
    part("posture").dataset.posture = postureName || "";
    const a = e.angles || {};
    text(part("thoracic"), deg(a.thoracic_flexion_deg));
    text(part("lumbar"), deg(a.lumbar_flexion_deg));
    text(part("trunk"), deg(a.trunk_flexion_deg));
    const slouch = e.openAlerts.some((x) => x.type === "slouch");
    part("alert").hidden = !slouch;
    text(part("alert"), slouch ? "slouch alert" : "");
    const angleAge = e.anglesAt === null ? null : (now - e.anglesAt) / 1000;
    const stale = !link || !broker.connected || e.status === "offline" || angleAge === null || angleAge * 1000 > SH.STALE_ANGLES_MS;
    node.classList.toggle("stale", stale);
    let why = "";
    if (e.status === "offline") why = `offline${e.statusSince ? ` for ${age((now - e.statusSince) / 1000)}` : ""}`;
    else if (angleAge === null) why = "no angles yet";
    else if (stale) why = `no angles for ${age(angleAge)}`;
    text(part("age"), why || `live, updated ${age(angleAge)} ago`);
  }

  function render() {
    for (const node of [...$("wearers").children]) if (!wearers.has(node.dataset.wearer)) node.remove();
    for (const name of wearers.keys()) renderCard(name);
    $("empty").hidden = wearers.size > 0;
    const banner = $("stale-banner");
    const reason = !link ? "the dashboard server is unreachable"
      : !broker.connected ? `no connection to the MQTT broker for ${age((Date.now() - broker.since) / 1000)}` : "";
    banner.hidden = !reason;
    text(banner, reason ? `Not live: ${reason}. Showing the last values received.` : "");
    document.body.classList.toggle("stale", !!reason);
    SH.showBroker($("broker-state"), broker, link);
  }

  SH.stream("/api/events", {
    link(up) { link = up; render(); },
    snapshot,
    update,
    broker(data) { broker = SH.brokerState(data); render(); },
  });
  setInterval(render, 1000);
})();
