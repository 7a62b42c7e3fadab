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
