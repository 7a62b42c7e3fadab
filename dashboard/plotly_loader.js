// Loads plotly.js once per page: window.callscopeLoadPlotly(src) -> a promise of window.Plotly. Both the early
// start (dashboard/plot.py preload()) and the chart component (plot.js) call it, so the file is fetched once.
window.callscopeLoadPlotly = window.callscopeLoadPlotly || function (src) {
  if (!window.callscopePlotly) {
    window.callscopePlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { window.callscopePlotly = null; reject(new Error(`could not load ${src}`)); };
      document.head.appendChild(script);
    });
  }
  return window.callscopePlotly;
};

// window.callscopeDrawSoon(div, draw): charts on the screen are drawn at once; a chart below it (or in a hidden
// tab) waits until it scrolls into view or the page is first idle, whichever comes first; from then on the rest
// are drawn one per task, in page order, so the browser can paint and handle input between them. Every chart is
// still drawn without scrolling; what a person sees first is drawn first. (A new tab runs plotly.js cold: 50-300
// ms per chart on a 2-core machine, so a page of eight charts would otherwise keep the first screen waiting for
// the last.)
window.callscopeDrawSoon = window.callscopeDrawSoon || (function () {
  const waiting = new Map(); // div -> draw, in the order they were asked for
  let idle = null;
  const later = (callback) =>
    window.requestIdleCallback ? window.requestIdleCallback(callback, { timeout: 1000 }) : setTimeout(callback, 50);
  const observer = window.IntersectionObserver
    ? new IntersectionObserver((entries) => {
        for (const entry of entries) if (entry.isIntersecting) run(entry.target);
      })
    : null;
  function run(div) {
    const draw = waiting.get(div);
    if (!draw) return;
    waiting.delete(div);
    if (observer) observer.unobserve(div);
    draw();
  }
  function onIdle() {
    const next = waiting.keys().next();
    if (!next.done) run(next.value);
    if (waiting.size) idle = setTimeout(onIdle, 0);
    else idle = null;
  }
  function onScreen(div) {
    const box = div.getBoundingClientRect();
    return box.width > 0 && box.bottom > 0 && box.top < window.innerHeight;
  }
  return function (div, draw) {
    if (div._fullLayout || onScreen(div)) {
      waiting.delete(div); // a newer figure replaces one still waiting
      draw();
      return;
    }
    if (!waiting.has(div) && observer) observer.observe(div);
    waiting.set(div, draw);
    if (idle === null) idle = later(onIdle);
  };
})();

// window.callscopeMargins: the margins a chart needed when it was last drawn in this browser, by page and chart key.
// Plotly's automargin draws a chart with the margins it is given, measures its tick labels and legend, and draws the
// whole chart again when they need more room: on a 2-core machine about half of a chart's drawing time. Starting
// from what the same chart needed last time, the second drawing is skipped; when the labels now need more, plotly
// still widens the margins (one more drawing, as before), and what is stored is what the chart's own margins and its
// labels need (plotly's own computation, in plots.doAutoMargin), so margins also shrink back. Kept in localStorage
// (shared by the browser's tabs of this dashboard); when storage is off, every drawing measures again.
window.callscopeMargins = window.callscopeMargins || (function () {
  const SIDES = ["l", "r", "t", "b"];
  const storageKey = (key) => `callscope-margins:${window.location.pathname}:${key}`;
  function read(key) {
    try {
      const stored = JSON.parse(window.localStorage.getItem(storageKey(key)) || "null");
      return stored && SIDES.every((s) => Number.isFinite(stored[s])) ? stored : null;
    } catch (e) {
      return null;
    }
  }
  // plotly's pairing of the pushers of two opposite sides (plots.doAutoMargin): each pusher sits at a fraction of
  // the size (`val`) and needs `size` pixels; the pair needing the most room sets both margins.
  // `shift` is added to every pusher but the chart's own margins (plotly pads each pusher by min(12, margins)).
  function solve(pushes, low, high, own, span, shift) {
    let [a, b] = [own[low] ?? 0, own[high] ?? 0];
    const sized = (p, side) => (p === pushes[0] ? p[side].size : p[side].size + shift);
    for (const p1 of pushes) {
      const lo = p1[low];
      if (!lo || !Number.isFinite(lo.size)) continue;
      for (const p2 of pushes) {
        const hi = p2[high];
        if (!hi || !Number.isFinite(hi.size) || !(hi.val > lo.val)) continue;
        const [sl, sh] = [sized(p1, low), sized(p2, high)];
        const newLow = (sl * hi.val + (sh - span) * lo.val) / (hi.val - lo.val);
        const newHigh = (sh * (1 - lo.val) + (sl - span) * (1 - hi.val)) / (hi.val - lo.val);
        if (newLow + newHigh > a + b) [a, b] = [newLow, newHigh];
      }
    }
    return [Math.round(a), Math.round(b)];
  }
  const pad = (m) => Math.min(12, m.l ?? 0, m.r ?? 0, m.t ?? 0, m.b ?? 0);
  return {
    // The figure's own margins, each widened to what the chart needed last time.
    seed(key, margin) {
      return this.seedWith(margin, read(key));
    },
    seedWith(margin, needed) {
      if (!needed) return margin;
      const out = { ...margin };
      for (const s of SIDES) out[s] = Math.max(margin[s] ?? 0, needed[s]);
      return out;
    },
    // After a drawing: what the figure's own margins and its pushers (axis labels, legend) need, computed as plotly
    // computes it.
    remember(key, margin, fullLayout) {
      const base = {
        l: { val: 0, size: margin.l ?? 0 }, r: { val: 1, size: margin.r ?? 0 },
        t: { val: 1, size: margin.t ?? 0 }, b: { val: 0, size: margin.b ?? 0 },
      };
      const pushes = [base, ...Object.entries(fullLayout._pushmargin || {}).filter(([id]) => id !== "base").map(([, p]) => p)];
      const padNow = pad(fullLayout.margin || margin); // the pad this drawing's pushers were measured with
      let needed = null;
      for (const next of [padNow, null]) {
        // first with this drawing's pad; then again with the pad the next drawing will use (its seeded margins)
        const shift = (next ?? pad(this.seedWith(margin, needed))) - padNow;
        const [l, r] = solve(pushes, "l", "r", margin, fullLayout.width, shift);
        const [b, t] = solve(pushes, "b", "t", margin, fullLayout.height, shift);
        needed = { l, r, t, b };
      }
      try {
        window.localStorage.setItem(storageKey(key), JSON.stringify(needed));
      } catch (e) {
        // storage full or disabled: the next drawing measures again
      }
    },
  };
})();
