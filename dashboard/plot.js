// Draws a plotly figure with plotly.js "basic" (scatter, bar, pie: 1.2 MB, against the 4.7 MB full bundle
// st.plotly_chart loads in every new tab), and reports clicks and box selections back as the "selection" state.
// dashboard/plot.py puts plotly_loader.js (window.callscopeLoadPlotly, window.callscopeDrawSoon) in front of this
// module.
const DOUBLE_CLICK_MS = 350; // plotly counts two clicks within 300 ms as a double-click

function pointsOf(event) {
  return (event && event.points ? event.points : []).map((p) => ({
    x: p.x,
    y: p.y,
    customdata: p.customdata,
    curve_number: p.curveNumber,
    point_index: p.pointIndex ?? p.pointNumber,
  }));
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let div = parentElement.querySelector(".callscope-plot");
  if (!div) {
    div = document.createElement("div");
    div.className = "callscope-plot";
    div.style.width = "100%";
    // plotly measures its tick labels and legend while drawing (getBoundingClientRect): with the chart's layout
    // contained, what it changes inside is laid out again without the rest of the page.
    div.style.contain = "layout style";
    parentElement.appendChild(div);
  }
  div.callscopeReport = setStateValue;
  const figure = JSON.parse(data.figure);
  // The chart's height before it is drawn, so that the charts after it are known to be below the screen.
  if (!div._fullLayout) div.style.minHeight = `${figure.layout.height || 450}px`;
  window.callscopeLoadPlotly(data.src).then((Plotly) => window.callscopeDrawSoon(div, () => {
    // A redraw (new data or axis range on a rerun) may clear plotly's selection and fire plotly_deselect: that is
    // not the user deselecting, so it is not reported (the app keeps the selection it was told about).
    div.callscopeRedrawing = true;
    const margin = figure.layout.margin || {};
    const layout = data.key ? { ...figure.layout, margin: window.callscopeMargins.seed(data.key, margin) } : figure.layout;
    // The box a person drew (plotly keeps it in the drawn layout's "selections") is carried into the new drawing
    // of the same view (scope). Without it, a redraw with a new axis range (the time axis follows the clock in
    // whole minutes) drops the box and plotly reports a deselect after the drawing is over, so the app would
    // forget the window just picked. Under other filters the box is dropped, as the app drops the window.
    const scope = data.scope || "";
    const drawn = div.layout && div.layout.selections;
    if (data.select && div.callscopeScope === scope && drawn && drawn.length && !layout.selections) {
      layout.selections = drawn;
    }
    div.callscopeScope = scope;
    Plotly.react(div, figure.data, layout, data.config).then(() => {
      div.callscopeRedrawing = false;
      if (data.key) window.callscopeMargins.remember(data.key, margin, div._fullLayout);
      div.style.minHeight = "";
      // A chart drawn while hidden (an unselected st.tabs tab) gets plotly's default width; redraw it at its
      // real width when it is shown (config.responsive only follows the window's size).
      if (!div.callscopeResize && window.ResizeObserver) {
        let width = div.clientWidth;
        div.callscopeResize = new ResizeObserver(() => {
          if (div.clientWidth && div.clientWidth !== width) {
            width = div.clientWidth;
            Plotly.Plots.resize(div);
          }
        });
        div.callscopeResize.observe(div);
      }
      if (!data.select || div.callscopeBound) return;
      div.callscopeBound = true;
      const report = (selection) => div.callscopeReport("selection", selection);
      // On a chart that also picks boxes, a double-click clears the selection (plotly's deselect), and its two
      // clicks must not pick a point: there a click counts once no second click has followed it.
      const boxes = figure.layout.dragmode === "select";
      let pendingClick = null;
      let deselectedAt = 0;
      div.on("plotly_click", (e) => {
        const picked = { points: pointsOf(e), box: [] };
        if (!boxes) return report(picked);
        if (Date.now() - deselectedAt < DOUBLE_CLICK_MS) return;
        clearTimeout(pendingClick);
        pendingClick = setTimeout(() => report(picked), DOUBLE_CLICK_MS);
      });
      div.on("plotly_selected", (e) => {
        if (!e) return;
        clearTimeout(pendingClick); // a box drawn right after a click is what was meant
        const box = e.range && e.range.x ? [{ x: e.range.x, y: e.range.y }] : [];
        report({ points: pointsOf(e), box });
      });
      div.on("plotly_deselect", () => {
        if (div.callscopeRedrawing) return;
        clearTimeout(pendingClick);
        deselectedAt = Date.now();
        report(null);
      });
    });
  }));
}
