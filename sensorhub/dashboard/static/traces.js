// Live traces on a <canvas>: a ring buffer of angle samples and a small line plot of the last 5 minutes.
"use strict";

class AngleRing {
  // capacity: samples kept (5 min at 20 Hz); series: number of angle series per sample.
  constructor(capacity = 6000, series = 3) {
    this.capacity = capacity;
    this.t = new Float64Array(capacity);
    this.v = Array.from({ length: series }, () => new Float64Array(capacity));
    this.start = 0;
    this.length = 0;
  }
  clear() { this.start = 0; this.length = 0; }
  last() { return this.length ? this.t[(this.start + this.length - 1) % this.capacity] : null; }
  // values: numbers or null (stored as NaN, drawn as a gap).
  push(t, values) {
    const lastT = this.last();
    if (lastT !== null && t < lastT - 1) this.clear(); // the clock went back: a new session
    if (lastT !== null && t <= lastT) return;
    const i = (this.start + this.length) % this.capacity;
    this.t[i] = t;
    values.forEach((value, k) => { this.v[k][i] = typeof value === "number" && Number.isFinite(value) ? value : NaN; });
    if (this.length < this.capacity) this.length += 1;
    else this.start = (this.start + 1) % this.capacity;
  }
  *items() {
    for (let j = 0; j < this.length; j += 1) yield (this.start + j) % this.capacity;
  }
}

class TracePlot {
  constructor(canvas, colors, windowS = 300) {
    this.canvas = canvas;
    this.colors = colors;
    this.windowS = windowS;
  }

  draw(ring) {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue("--muted").trim() || "#666";
    const line = css.getPropertyValue("--line").trim() || "#ddd";
    ctx.font = "11px system-ui, sans-serif";
    const m = { left: 40, right: 10, top: 8, bottom: 20 };
    const pw = w - m.left - m.right;
    const ph = h - m.top - m.bottom;
    const tEnd = ring.last();
    if (tEnd === null) {
      ctx.fillStyle = muted;
      ctx.fillText("waiting for angles…", m.left + 10, m.top + ph / 2);
      return;
    }
    const tStart = tEnd - this.windowS;
    let lo = -10;
    let hi = 30;
    for (const i of ring.items()) {
      if (ring.t[i] < tStart) continue;
      for (const series of ring.v) {
        const value = series[i];
        if (!Number.isNaN(value)) { lo = Math.min(lo, value); hi = Math.max(hi, value); }
      }
    }
    const step = (hi - lo) > 80 ? 20 : 10;
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    const x = (t) => m.left + ((t - tStart) / this.windowS) * pw;
    const y = (v) => m.top + (1 - (v - lo) / (hi - lo)) * ph;

    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = lo; v <= hi + 1e-9; v += step) {
      ctx.strokeStyle = v === 0 ? muted : line;
      ctx.beginPath(); ctx.moveTo(m.left, y(v)); ctx.lineTo(m.left + pw, y(v)); ctx.stroke();
      ctx.fillStyle = muted;
      ctx.fillText(`${v}°`, m.left - 6, y(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let k = 0; k <= 5; k += 1) {
      const t = tStart + (k * this.windowS) / 5;
      ctx.strokeStyle = line;
      ctx.beginPath(); ctx.moveTo(x(t), m.top); ctx.lineTo(x(t), m.top + ph); ctx.stroke();
      ctx.fillStyle = muted;
      ctx.fillText(k === 5 ? "now" : `−${5 - k} min`, x(t), m.top + ph + 4);
    }

    ctx.lineWidth = 1.8;
    ctx.lineJoin = "round";
    ring.v.forEach((series, k) => {
      ctx.strokeStyle = this.colors[k];
      ctx.beginPath();
      let pen = false;
      let prevT = null;
      for (const i of ring.items()) {
        const t = ring.t[i];
        const value = series[i];
        if (t < tStart) continue;
        // A gap in the data (more than 2 s, or a null value) is a gap in the line.
        if (Number.isNaN(value) || (prevT !== null && t - prevT > 2)) pen = false;
        prevT = t;
        if (Number.isNaN(value)) continue;
        if (pen) ctx.lineTo(x(t), y(value)); else ctx.moveTo(x(t), y(value));
        pen = true;
      }
      ctx.stroke();
    });
  }
}
