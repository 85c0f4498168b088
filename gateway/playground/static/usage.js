"use strict";
// The Usage tab: GET /v1/organization/usage (daily buckets per model) drawn as two charts,
// and GET /v1/organization/limits (the tier's limits and what is left now). Days are UTC
// days, as the usage API's buckets are.

const DAY_S = 86_400;
const LIMIT_NAMES = [
  ["rpm", "requests per minute"],
  ["rpd", "requests per day"],
  ["tpm", "tokens per minute"],
  ["tpd", "tokens per day"],
  ["concurrency", "concurrent requests"],
  ["monthly_tokens", "tokens this month"],
];

function usageRange() {
  return Number(document.querySelector("input[name='usage-range']:checked").value);
}

function utcDay(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

function dayLabel(seconds) {
  const date = new Date(seconds * 1000);
  return date.toLocaleDateString("en", { month: "short", day: "numeric", timeZone: "UTC" });
}

function showUsageError(title, message) {
  $("usage-error-title").textContent = title;
  $("usage-error-message").textContent = message;
  $("usage-error").hidden = false;
}

/** Every bucket from ``start`` (UTC midnight) through today, following ``next_page``. */
async function fetchBuckets(start, days) {
  const buckets = [];
  let page = null;
  do {
    const params = new URLSearchParams({
      start_time: start,
      end_time: start + days * DAY_S,
      bucket_width: "1d",
      limit: days,
      group_by: "model",
    });
    if (page) params.set("page", page);
    const response = await api(`/v1/organization/usage?${params}`);
    if (!response.ok) throw response;
    const body = await response.json();
    buckets.push(...body.data);
    page = body.has_more ? body.next_page : null;
  } while (page);
  return buckets;
}

/** Per model: its values per day for requests and tokens, and its totals. */
function summarise(buckets) {
  const models = new Map();
  buckets.forEach((bucket, day) => {
    for (const result of bucket.results) {
      const name = result.model;
      if (!models.has(name)) {
        models.set(name, {
          name,
          requests: new Array(buckets.length).fill(0),
          tokens: new Array(buckets.length).fill(0),
          totals: { requests: 0, input: 0, output: 0, images: 0, frames: 0 },
        });
      }
      const model = models.get(name);
      model.requests[day] += result.num_model_requests;
      model.tokens[day] += result.input_tokens + result.output_tokens;
      model.totals.requests += result.num_model_requests;
      model.totals.input += result.input_tokens;
      model.totals.output += result.output_tokens;
      model.totals.images += result.images ?? 0;
      model.totals.frames += result.video_frames ?? 0;
    }
  });
  // The busiest model first: it keeps the first colour, at the bottom of every bar.
  return [...models.values()].sort((a, b) => b.totals.requests - a.totals.requests);
}

function renderLegend(models) {
  const legend = $("usage-legend");
  legend.replaceChildren();
  models.forEach((model, index) => {
    const swatch = element("span", "swatch");
    swatch.style.background = seriesColour(index);
    const item = element("li");
    item.append(swatch, document.createTextNode(model.name));
    legend.append(item);
  });
}

function renderTotals(models) {
  const body = $("usage-totals").tBodies[0];
  body.replaceChildren();
  const sum = { requests: 0, input: 0, output: 0, images: 0, frames: 0 };
  const row = (name, t, className) => {
    const tr = element("tr", className);
    tr.append(element("th", "", name));
    for (const value of [t.requests, t.input, t.output, t.images, t.frames]) {
      tr.append(element("td", "", value.toLocaleString("en")));
    }
    body.append(tr);
  };
  for (const model of models) {
    row(model.name, model.totals);
    for (const key of Object.keys(sum)) sum[key] += model.totals[key];
  }
  row("total", sum, "total");
}

function resetText(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds === 0) return "full";
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 2 * DAY_S) return `${(seconds / 3_600).toFixed(1)} h`;
  return `${(seconds / DAY_S).toFixed(1)} days`;
}

function renderLimits(body) {
  $("limits-tier").textContent = `Organisation ${body.organization}, tier ${body.tier}.`;
  const rows = $("limits-table").tBodies[0];
  rows.replaceChildren();
  for (const model of body.data) {
    for (const [key, name] of LIMIT_NAMES) {
      const limit = model[key];
      const tr = element("tr");
      tr.dataset.model = model.model;
      tr.dataset.limit = key;
      tr.append(element("td", "", model.model), element("th", "", name));
      if (limit.limit === null) {
        const cell = element("td", "unlimited", "unlimited");
        cell.colSpan = 4;
        tr.append(cell);
      } else {
        const meter = element("meter");
        meter.max = limit.limit;
        meter.value = limit.remaining;
        meter.low = limit.limit * 0.2;
        meter.optimum = limit.limit;
        const meterCell = element("td");
        meterCell.append(meter);
        tr.append(
          element("td", "limit", limit.limit.toLocaleString("en")),
          element("td", "remaining", limit.remaining.toLocaleString("en")),
          meterCell,
          element("td", "reset", resetText(limit.reset_seconds)),
        );
      }
      rows.append(tr);
    }
  }
}

// Each load's number: a slower, older load must not overwrite a newer one.
let usageLoads = 0;

async function loadUsage() {
  const load = ++usageLoads;
  $("usage-error").hidden = true;
  if (!apiKey()) {
    $("usage-status").textContent = "Enter an API key above to see its organisation's usage.";
    return;
  }
  $("usage-status").textContent = "Loading…";
  const days = usageRange();
  const today = Math.floor(Date.now() / 1000 / DAY_S) * DAY_S;
  const start = today - (days - 1) * DAY_S;
  try {
    const [buckets, limits] = await Promise.all([
      fetchBuckets(start, days),
      api("/v1/organization/limits").then((response) => {
        if (!response.ok) throw response;
        return response.json();
      }),
    ]);
    if (load !== usageLoads) return;
    const models = summarise(buckets);
    const axis = buckets.map((bucket) => ({
      day: utcDay(bucket.start_time),
      label: dayLabel(bucket.start_time),
    }));
    drawStackedBars(
      $("requests-chart"),
      axis,
      models.map((m) => ({ name: m.name, values: m.requests })),
      "requests",
    );
    drawStackedBars(
      $("tokens-chart"),
      axis,
      models.map((m) => ({ name: m.name, values: m.tokens })),
      "tokens",
    );
    renderLegend(models);
    renderTotals(models);
    renderLimits(limits);
    $("usage-status").textContent =
      `${axis[0].day} to ${axis[axis.length - 1].day} (UTC days), as of ${new Date().toLocaleTimeString("en")}.`;
  } catch (failure) {
    if (load !== usageLoads) return;
    $("usage-status").textContent = "";
    if (failure instanceof Response) {
      const [title, message] = await describeApiError(failure);
      showUsageError(title, message);
    } else {
      showUsageError("Could not load usage", failure.message);
    }
  }
}

function showTab(name) {
  for (const tab of ["chat", "usage"]) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`${tab}-view`).hidden = !selected;
  }
  if (name === "usage") loadUsage();
}

function initUsage() {
  $("tab-chat").addEventListener("click", () => showTab("chat"));
  $("tab-usage").addEventListener("click", () => showTab("usage"));
  $("usage-refresh").addEventListener("click", loadUsage);
  for (const input of document.querySelectorAll("input[name='usage-range']")) {
    input.addEventListener("change", loadUsage);
  }
  // A new or forgotten key: the usage shown is no longer that key's.
  $("key-form").addEventListener("submit", () => {
    if (!$("usage-view").hidden) loadUsage();
  });
  if (location.hash === "#usage") showTab("usage");
}

initUsage();
