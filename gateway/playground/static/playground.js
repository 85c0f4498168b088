"use strict";
// A client of the public API like any other: a bearer key, GET /v1/models and
// POST /v1/chat/completions (and in the Usage tab, usage.js, GET /v1/organization/*),
// nothing private. Model output is shown with textContent only:
// it is untrusted text (the default model's words are random bytes).

const KEY_STORAGE = "visiongate.apiKey";
const MODEL_STORAGE = "visiongate.model";

const $ = (id) => document.getElementById(id);

const state = {
  history: [], // the conversation so far, in OpenAI's message shape
  attachments: [], // {kind: "image" | "video", url, label} waiting to be sent
  controller: null, // the AbortController of the request in flight
  models: new Map(), // id → the model object from /v1/models
  retryTimer: null,
};

/** A mistake in the form, found before anything is sent. */
class InputError extends Error {}

function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

function api(path, init = {}) {
  return fetch(path, {
    ...init,
    headers: { authorization: `Bearer ${apiKey()}`, ...init.headers },
  });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(2)} s`;
}

function fillList(list, entries) {
  list.replaceChildren();
  for (const [name, value] of entries) {
    list.append(element("dt", "", name), element("dd", "", String(value)));
  }
}

// --- errors --------------------------------------------------------------------------

function clearError() {
  clearInterval(state.retryTimer);
  $("error").hidden = true;
  $("retry").hidden = true;
}

function showError(title, message) {
  clearError();
  $("error-title").textContent = title;
  $("error-message").textContent = message;
  $("error").hidden = false;
}

/** An error response as [title, message]: status, type, code and param; the message verbatim. */
async function describeApiError(response) {
  const raw = await response.text();
  let error = null;
  try {
    error = JSON.parse(raw).error;
  } catch {
    // Not the API's JSON (a proxy's page, say): show the raw text below.
  }
  const parts = [`HTTP ${response.status}`];
  if (error && error.type) parts.push(error.type);
  if (error && error.code) parts.push(error.code);
  if (error && error.param) parts.push(`param ${error.param}`);
  return [parts.join(" · "), error && error.message ? error.message : raw];
}

/** An error body as the API returned it, and on a 429 a countdown from retry-after. */
async function showApiError(response) {
  showError(...(await describeApiError(response)));
  const retryAfter = Number(response.headers.get("retry-after"));
  if (response.status === 429 && retryAfter > 0) countdown(retryAfter);
}

function showStreamError(error) {
  const parts = ["Error during the answer"];
  if (error.type) parts.push(error.type);
  if (error.code) parts.push(error.code);
  showError(parts.join(" · "), error.message || JSON.stringify(error));
}

function countdown(total) {
  const deadline = Date.now() + total * 1000;
  const retry = $("retry");
  const tick = () => {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    retry.textContent = left > 0 ? `Retry in ${left} s (retry-after: ${total})` : "You can retry now.";
    if (left <= 0) clearInterval(state.retryTimer);
  };
  retry.hidden = false;
  tick();
  state.retryTimer = setInterval(tick, 1000);
}

// --- key and models ------------------------------------------------------------------

async function loadModels() {
  const select = $("model");
  select.replaceChildren();
  state.models.clear();
  $("model-note").hidden = true;
  if (!apiKey()) return;
  let response;
  try {
    response = await api("/v1/models");
  } catch (err) {
    showError("Could not reach the gateway", err.message);
    return;
  }
  if (!response.ok) {
    await showApiError(response);
    return;
  }
  clearError();
  const { data } = await response.json();
  for (const model of data) {
    const option = element("option", "", model.id);
    option.value = model.id;
    state.models.set(model.id, model);
    select.append(option);
  }
  const saved = localStorage.getItem(MODEL_STORAGE);
  if (data.some((model) => model.id === saved)) select.value = saved;
  describeModel();
}

function describeModel() {
  const model = state.models.get($("model").value);
  const note = $("model-note");
  if (!model) {
    note.hidden = true;
    return;
  }
  localStorage.setItem(MODEL_STORAGE, model.id);
  const { description, capabilities: caps } = model;
  const can = [
    caps.vision ? `up to ${caps.max_images} images` : "no images",
    caps.video ? "video" : "no video",
    caps.tools ? "tools" : "no tools",
    caps.json_mode ? "JSON mode" : "no JSON mode",
  ];
  note.textContent = `${description || model.id} (${can.join(", ")})`;
  // The default model knows only its synthetic world; say so loudly so nobody judges the API
  // by what it says about a real photograph.
  note.classList.toggle("warning", /synthetic|untrained|nonsense/i.test(description));
  note.hidden = false;
}

// --- attachments ---------------------------------------------------------------------

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addFiles(files) {
  for (const file of files) {
    const kind = file.type.split("/")[0];
    if (kind !== "image" && kind !== "video") {
      showError("Not attached", `${file.name || "The file"} is neither an image nor a video.`);
      continue;
    }
    addAttachment(kind, await readAsDataUrl(file), file.name || `pasted ${kind}`);
  }
}

function addAttachment(kind, url, label) {
  state.attachments.push({ kind, url, label });
  renderAttachments();
}

function renderAttachments() {
  const list = $("attachments");
  list.replaceChildren();
  state.attachments.forEach((item, index) => {
    const entry = element("li", "attachment");
    const preview = element(item.kind === "image" ? "img" : "video");
    preview.src = item.url;
    preview.title = item.label;
    preview.alt = item.label;
    const remove = element("button", "remove", "×");
    remove.type = "button";
    remove.title = `Remove ${item.label}`;
    remove.addEventListener("click", () => {
      state.attachments.splice(index, 1);
      renderAttachments();
    });
    entry.append(preview, element("span", "", item.label), remove);
    list.append(entry);
  });
}

function addUrl(kind, inputId) {
  const input = $(inputId);
  const url = input.value.trim();
  if (!url) return;
  addAttachment(kind, url, url);
  input.value = "";
}

// --- the request ---------------------------------------------------------------------

function userMessage(text, attachments) {
  if (!attachments.length) return { role: "user", content: text };
  const content = text ? [{ type: "text", text }] : [];
  for (const item of attachments) {
    content.push(
      item.kind === "image"
        ? { type: "image_url", image_url: { url: item.url } }
        : { type: "video_url", video_url: { url: item.url } },
    );
  }
  return { role: "user", content };
}

/** The value of a number input, or undefined when it is empty (the server's default). */
function numberField(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

function requestBody(user, hasVideo) {
  const model = $("model").value;
  if (!model) throw new InputError("Enter an API key and pick a model first.");
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.history, user);
  const body = {
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: numberField("temperature"),
    max_tokens: numberField("max-tokens"),
  };
  if ($("json-mode").checked) body.response_format = { type: "json_object" };
  const tools = $("tools").value.trim();
  if (tools) {
    try {
      body.tools = JSON.parse(tools);
    } catch (err) {
      throw new InputError(`Tools: not valid JSON (${err.message}).`);
    }
    if (!Array.isArray(body.tools)) throw new InputError("Tools: expected a JSON list of tools.");
    body.tool_choice = $("tool-choice").value;
  }
  if (hasVideo) {
    body.video_fps = numberField("video-fps");
    body.video_max_frames = numberField("video-max-frames");
  }
  return body;
}

/** One answer being streamed into the conversation. */
class Answer {
  constructor() {
    this.text = "";
    this.toolCalls = [];
    this.usage = null;
    this.finishReason = null;
    this.firstToken = null;
    this.entry = element("li", "message assistant");
    this.body = element("div", "content");
    this.calls = element("pre", "tool-calls");
    this.calls.hidden = true;
    this.footer = element("div", "finish");
    this.entry.append(element("div", "role", "assistant"), this.body, this.calls, this.footer);
    $("log").append(this.entry);
  }

  /** Handle one SSE line; returns an error object when the stream carried one. */
  line(line) {
    if (!line.startsWith("data:")) return null;
    const data = line.slice(5).trim();
    if (data === "[DONE]") return null;
    const chunk = JSON.parse(data);
    if (chunk.error) return chunk.error;
    if (chunk.usage) this.usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const delta = choice.delta || {};
      if (delta.content) {
        this.firstToken ??= performance.now();
        this.text += delta.content;
        this.body.textContent = this.text;
      }
      for (const call of delta.tool_calls || []) this.toolCall(call);
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
    this.entry.scrollIntoView({ block: "end" });
    return null;
  }

  toolCall(delta) {
    this.firstToken ??= performance.now();
    const call = (this.toolCalls[delta.index] ??= {
      id: delta.id,
      type: "function",
      function: { name: "", arguments: "" },
    });
    call.function.name += delta.function?.name || "";
    call.function.arguments += delta.function?.arguments || "";
    this.calls.textContent = this.toolCalls
      .map((c) => `tool call ${c.id}: ${c.function.name}(${c.function.arguments})`)
      .join("\n");
    this.calls.hidden = false;
  }

  finish(note) {
    this.footer.textContent = note;
  }

  message() {
    const message = { role: "assistant", content: this.text };
    if (this.toolCalls.length) message.tool_calls = this.toolCalls;
    return message;
  }
}

function renderUser(text, attachments) {
  const entry = element("li", "message user");
  entry.append(element("div", "role", "user"));
  if (text) entry.append(element("div", "content", text));
  for (const item of attachments) {
    const preview = element(item.kind === "image" ? "img" : "video", "thumb");
    preview.src = item.url;
    preview.alt = item.label;
    entry.append(preview);
  }
  $("log").append(entry);
  return entry;
}

function showRateLimits(headers) {
  const entries = [...headers].filter(([name]) => name.startsWith("x-ratelimit-"));
  if (headers.has("retry-after")) entries.push(["retry-after", headers.get("retry-after")]);
  if (!entries.length) entries.push(["(none)", "no limits apply to this key for this model"]);
  fillList($("ratelimit"), entries);
  $("stats").hidden = false;
}

function showUsage(answer, started, ended) {
  const usage = answer.usage || {};
  fillList($("usage"), [
    ["prompt tokens", usage.prompt_tokens ?? "—"],
    ["completion tokens", usage.completion_tokens ?? "—"],
    ["time to first token", answer.firstToken ? seconds(answer.firstToken - started) : "—"],
    ["total time", seconds(ended - started)],
    ["finish reason", answer.finishReason ?? "—"],
  ]);
  $("stats").hidden = false;
}

async function readStream(response, answer) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      const error = answer.line(line);
      if (error) return error;
    }
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("clear").disabled = busy;
  $("stop").disabled = !busy;
}

async function send(event) {
  event.preventDefault();
  if (state.controller) return;
  const text = $("prompt").value.trim();
  const attachments = state.attachments;
  if (!text && !attachments.length) return;
  const user = userMessage(text, attachments);
  let body;
  try {
    body = requestBody(user, attachments.some((item) => item.kind === "video"));
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    showError("Not sent", err.message);
    return;
  }
  clearError();
  $("stats").hidden = true;
  $("usage").replaceChildren();
  $("prompt").value = "";
  state.attachments = [];
  renderAttachments();
  const shown = renderUser(text, attachments);
  // Put the message back in the composer when the API refuses it, so it can be fixed.
  const restore = () => {
    shown.remove();
    $("prompt").value = text;
    state.attachments = attachments;
    renderAttachments();
  };

  state.controller = new AbortController();
  setBusy(true);
  const started = performance.now();
  let answer = null;
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    showRateLimits(response.headers);
    if (!response.ok) {
      restore();
      await showApiError(response);
      return;
    }
    answer = new Answer();
    const error = await readStream(response, answer);
    showUsage(answer, started, performance.now());
    if (error) {
      showStreamError(error);
      answer.finish("failed");
    } else {
      state.history.push(user, answer.message());
    }
  } catch (err) {
    if (err.name !== "AbortError") {
      if (!answer) restore();
      showError("Request failed", err.message);
    } else if (answer) {
      // Stopped mid-answer: keep what arrived, as part of the conversation.
      showUsage(answer, started, performance.now());
      answer.finish("stopped");
      state.history.push(user, answer.message());
    } else {
      restore();
    }
  } finally {
    state.controller = null;
    setBusy(false);
  }
}

function newConversation() {
  state.history = [];
  $("log").replaceChildren();
  $("stats").hidden = true;
  clearError();
}

// --- wiring --------------------------------------------------------------------------

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    loadModels();
  });
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    loadModels();
  });
  $("model").addEventListener("change", describeModel);

  $("composer").addEventListener("submit", send);
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("clear").addEventListener("click", newConversation);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("composer").requestSubmit();
  });

  for (const id of ["image-file", "video-file"]) {
    $(id).addEventListener("change", async (event) => {
      await addFiles(event.target.files);
      event.target.value = "";
    });
  }
  $("add-image-url").addEventListener("click", () => addUrl("image", "image-url"));
  $("add-video-url").addEventListener("click", () => addUrl("video", "video-url"));

  // Pasted or dropped files become attachments; pasted text stays ordinary text.
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData?.files;
    if (!files?.length) return;
    event.preventDefault();
    addFiles(files);
  });
  const composer = $("composer");
  composer.addEventListener("dragover", (event) => {
    event.preventDefault();
    composer.classList.add("dropping");
  });
  composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
  composer.addEventListener("drop", (event) => {
    event.preventDefault();
    composer.classList.remove("dropping");
    const { files } = event.dataTransfer;
    const url = event.dataTransfer.getData("text/uri-list").split("\n")[0].trim();
    if (files.length) addFiles(files);
    else if (url) addAttachment("image", url, url);
  });

  loadModels();
}

init();
