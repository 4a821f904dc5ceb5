// sensorhub dashboard: helpers shared by the pages (no framework, no build step).
"use strict";

const SH = (() => {
  const STALE_ANGLES_MS = 5000;
  const POSTURES = {
    upright: "upright", slouched: "slouched", leaning_forward: "leaning forward", reclined: "reclined",
    standing: "standing", moving: "moving", exercising: "exercising", uncalibrated: "uncalibrated", unknown: "unknown",
  };

  function meta(name) {
    const node = document.querySelector(`meta[name="${name}"]`);
    return node ? node.content : "";
  }

  function $(id) { return document.getElementById(id); }

  function text(node, value) {
    if (node && node.textContent !== value) node.textContent = value;
  }

  // An element with text content only: nothing from the broker is ever parsed as HTML.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function num(value) { return typeof value === "number" && Number.isFinite(value) ? value : null; }

  function deg(value, digits = 1) {
    const v = num(value);
    return v === null ? "–" : `${v.toFixed(digits)}°`;
  }

  function age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function clock(epochS) {
    const v = num(epochS);
    return v === null ? "–" : new Date(v * 1000).toLocaleTimeString();
  }

  function dateTime(epochS) {
    const v = num(epochS);
    return v === null ? "–" : new Date(v * 1000).toLocaleString();
  }

  function posture(name) { return POSTURES[name] || (name ? String(name) : "–"); }

  // Server-sent events with a snapshot first; reconnects (also after a refused request) and
  // reports whether the dashboard server itself is reachable.
  function stream(url, handlers) {
    let source = null;
    let retry = null;
    function open() {
      source = new EventSource(url);
      source.addEventListener("open", () => handlers.link(true));
      for (const name of ["snapshot", "update", "broker"]) {
        source.addEventListener(name, (event) => {
          let data;
          try { data = JSON.parse(event.data); } catch (err) { return; }
          handlers[name](data);
        });
      }
      source.addEventListener("error", () => {
        handlers.link(false);
        if (source.readyState === EventSource.CLOSED && retry === null) {
          retry = setTimeout(() => { retry = null; open(); }, 3000);
        }
      });
    }
    open();
  }

  // The broker state, with the moment it last changed on this page's clock.
  function brokerState(data) {
    return { connected: !!data.connected, since: Date.now() - (num(data.age_s) || 0) * 1000, error: data.error || null };
  }

  function showBroker(node, broker, link) {
    if (!link) {
      text(node, "dashboard server unreachable");
      node.className = "pill bad";
    } else if (broker.connected) {
      text(node, "MQTT connected");
      node.className = "pill ok";
    } else {
      text(node, `MQTT disconnected for ${age((Date.now() - broker.since) / 1000)}`);
      node.className = "pill bad";
      node.title = broker.error || "";
    }
  }

  async function command(wearer, name, body) {
    const response = await fetch(`/api/w/${encodeURIComponent(wearer)}/cmd/${name}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": meta("csrf-token") },
      body: JSON.stringify(body),
    });
    let reply = {};
    try { reply = await response.json(); } catch (err) { reply = {}; }
    if (!response.ok) throw new Error(reply.error || `HTTP ${response.status}`);
    return reply;
  }

  return { STALE_ANGLES_MS, meta, $, text, el, num, deg, age, clock, dateTime, posture, stream, brokerState, showBroker, command };
})();
