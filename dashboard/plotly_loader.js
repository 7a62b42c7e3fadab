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
