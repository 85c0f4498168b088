"use strict";
// A stacked bar chart drawn as SVG by hand: one bar per day, one segment per model.
// No library and no network: the page's CSP allows scripts from this gateway only.

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 760, height: 230, left: 56, right: 12, top: 14, bottom: 30 };
// Distinguishable on white, and in the same order for every chart of the page.
const PALETTE = ["#2f5bd3", "#e07b00", "#2a9d5c", "#b3261e", "#7b4bc4", "#00838f", "#9e6b00", "#c2185b"];

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The colour of the i-th model. */
function seriesColour(index) {
  return PALETTE[index % PALETTE.length];
}

/** The axis for values up to ``most``: a whole, round step (1, 2 or 5 times a power of ten)
 * and the number of steps (at most about 4) that reach past it. */
function axisSteps(most) {
  const rough = Math.max(1, most / 4);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
  return { step, count: Math.max(1, Math.ceil(most / step)) };
}

/**
 * Draw ``series`` ([{name, values}], one value per day) stacked over ``days``
 * ([{day: "YYYY-MM-DD", label}]) into ``container``; ``unit`` names a value in tooltips.
 * Every segment carries data-day, data-model and data-value; every bar data-total.
 */
function drawStackedBars(container, days, series, unit) {
  const { width, height, left, right, top, bottom } = CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const totals = days.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
  const { step, count } = axisSteps(Math.max(0, ...totals));
  const ceiling = step * count;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    class: "chart-svg",
    "aria-label": `${unit} per day, ${days[0]?.day} to ${days[days.length - 1]?.day}`,
  });

  for (let tick = 0; tick <= count; tick += 1) {
    const value = step * tick;
    const y = top + plotHeight - (plotHeight * tick) / count;
    chart.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }));
    chart.append(svg("text", { x: left - 6, y: y + 4, class: "axis y" }, compact.format(value)));
  }

  const slot = plotWidth / days.length;
  const barWidth = Math.max(2, slot * 0.7);
  const labelEvery = days.length > 10 ? Math.ceil(days.length / 8) : 1;
  days.forEach((day, i) => {
    const x = left + slot * i + (slot - barWidth) / 2;
    const bar = svg("g", { class: "bar", "data-day": day.day, "data-total": totals[i] });
    let y = top + plotHeight;
    series.forEach((s, index) => {
      const value = s.values[i];
      if (!value) return;
      const h = (plotHeight * value) / ceiling;
      y -= h;
      const segment = svg("rect", {
        x,
        y,
        width: barWidth,
        height: Math.max(h, 0.5),
        fill: seriesColour(index),
        class: "segment",
        "data-day": day.day,
        "data-model": s.name,
        "data-value": value,
      });
      segment.append(svg("title", {}, `${day.day} · ${s.name}: ${value.toLocaleString("en")} ${unit}`));
      bar.append(segment);
    });
    chart.append(bar);
    if (i % labelEvery === 0 || i === days.length - 1) {
      const labelX = left + slot * i + slot / 2;
      chart.append(svg("text", { x: labelX, y: height - 10, class: "axis x" }, day.label));
    }
  });

  if (!totals.some(Boolean)) {
    const middle = { x: left + plotWidth / 2, y: top + plotHeight / 2, class: "empty" };
    chart.append(svg("text", middle, "No usage in this period"));
  }
  container.replaceChildren(chart);
}
