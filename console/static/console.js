// The console's pages: each action is a call to the JSON API (/api/…), which checks it again.
"use strict";
const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
async function call(method, path, body) {
  const response = await fetch(path, {method, headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
                                      body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin"});
  let data = {};
  try { data = await response.json(); } catch (e) { data = {error: response.statusText}; }
  return {status: response.status, data};
}
function show(html, cls) {
  const el = document.getElementById("result"); el.className = cls || ""; el.innerHTML = html;
  el.scrollIntoView({block: "nearest"}); el.focus({preventScroll: true});  // seen, and read out
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

function smsMeter() {
  const area = document.getElementById("sms-text"); if (!area) return;
  const sig = document.getElementById("editor").dataset.signature || "";
  const chars = [...(sig + area.value.trim())].length;
  const gsm = /^[\x20-\x7e\n\r]*$/.test(sig + area.value);
  const single = gsm ? 160 : 70, part = gsm ? 153 : 67;
  const segments = chars <= single ? 1 : Math.ceil(chars / part);
  const meter = document.getElementById("sms-meter");
  meter.textContent = `模板 template: ${chars} 字（含签名） · ${gsm ? "GSM-7" : "UCS-2"} · ${segments} 条短信` + (chars > 500 ? " · 超过网关上限 500 字 (over the gateway's 500)" : "");
  meter.className = chars > 500 ? "error" : "";
  clearTimeout(smsMeter.timer);
  smsMeter.timer = setTimeout(renderedMeter, 300);
}

// the same count on the text as it will be sent: rendered with the event type's example
async function renderedMeter() {
  const area = document.getElementById("sms-text"), out = document.getElementById("sms-rendered");
  const on = document.getElementById("rule-on");
  if (!area || !out || !on || on.dataset.json) return;
  const {status, data} = await call("POST", "/api/render-sms", {text: area.value, event_type: on.value});
  if (status !== 200) { out.textContent = ""; return; }
  if (data.error) { out.className = "error"; out.textContent = `无法生成 cannot render: ${data.error}`; return; }
  out.className = data.over_limit ? "error" : "";
  out.textContent = `按示例生成 as sent with the example: ${data.chars} 字 · ${data.encoding === "GSM7" ? "GSM-7" : "UCS-2"} · ${data.segments} 条短信` +
    (data.over_limit ? " · 超过网关上限 500 字 (over the gateway's 500)" : "") + ` — ${data.text}`;
}

function draftBody() {
  const form = document.getElementById("editor");
  let rest;
  try { rest = JSON.parse(document.getElementById("rule-rest").value || "{}"); }
  catch (e) { show(`<p class="error">“收件人与其他设置”不是有效的 JSON (not valid JSON)：${esc(e.message)}</p>`, "error"); return null; }
  const onField = document.getElementById("rule-on");
  let on = onField.value;
  if (onField.dataset.json) { try { on = JSON.parse(on); } catch (e) { show(`<p class="error">触发事件 ${esc(e.message)}</p>`); return null; } }
  const rule = {...rest, name: document.getElementById("rule-name").value.trim(), on,
                category: document.getElementById("rule-category").value,
                districts: document.getElementById("rule-districts").value.split(/[\s,，、]+/).filter(Boolean)};
  const when = document.getElementById("rule-when").value.trim();
  if (when) rule.when = when;
  rule.channels = {};
  const templates = {};
  const sms = document.getElementById("sms-text");
  if (document.getElementById("channel-sms").checked) {
    rule.channels.sms = sms.dataset.template;
    templates[sms.dataset.path] = sms.value;
  }
  if (document.getElementById("channel-email").checked) {
    const subject = document.getElementById("email-subject");
    rule.channels.email = subject.dataset.path.split("/")[0];
    for (const id of ["email-subject", "email-text", "email-html"]) {
      const el = document.getElementById(id); templates[el.dataset.path] = el.value;
    }
  }
  if (typeof journeyFields === "function") journeyFields(rule, templates);  // static/journeys.js
  return {rule, templates};
}

// the fields of the chosen event type, as buttons and as suggestions for the condition
let lastFocused = null;
function listFields() {
  const list = document.getElementById("fields"); if (!list) return;
  const catalogue = JSON.parse(document.getElementById("catalogue").textContent || "{}");
  const chosen = document.getElementById("rule-on").value;
  const type = catalogue[chosen] || {fields: []};
  list.innerHTML = type.fields.map((f) => `<li><button type="button" class="field" data-field="${esc(f.field)}">${esc(f.field)}</button>` +
    ` <span class="help">${esc(f.type)}${f.required ? " · 必填 required" : " · 可能缺省 may be absent"}${f.description ? " · " + esc(f.description) : ""}</span></li>`).join("");
  const datalist = document.getElementById("field-list");
  const all = [...type.fields.map((f) => f.field), ...[...document.querySelectorAll("aside .field")].map((b) => b.dataset.field)];
  datalist.innerHTML = [...new Set(all)].map((f) => `<option value="${esc(f)}">`).join("");
}
function insertField(field) {
  const target = lastFocused || document.getElementById("sms-text");
  const text = target.id === "rule-when" ? field : `{{ ${field} }}`;
  const start = target.selectionStart ?? target.value.length, end = target.selectionEnd ?? start;
  target.value = target.value.slice(0, start) + text + target.value.slice(end);
  target.focus(); target.selectionStart = target.selectionEnd = start + text.length;
  target.dispatchEvent(new Event("input"));
}

const rulePath = () => `/api/rules/${document.getElementById("editor").dataset.rule}`;
const actions = {
  async save() {
    const body = draftBody(); if (!body) return;
    const {status, data} = await call("PUT", `${rulePath()}/draft`, body);
    if (status !== 200) return show(`<p class="error">${esc(data.error)}</p>`);
    if (data.errors.length) return show(`<p class="error">草稿有 ${data.errors.length} 处错误 (errors):</p><ul id="errors">` +
      data.errors.map((e) => `<li><code>${esc(e.field)}</code>: ${esc(e.message)}</li>`).join("") + "</ul>");
    show(`<p class="ok" id="saved">草稿已保存，检查通过 (saved, no errors) · v${data.version}</p>`);
  },
  async preview() {
    const {status, data} = await call("POST", `${rulePath()}/preview`, {});
    if (status !== 200) return show(`<p class="error">${esc(data.error)}</p>`);
    show(`<p id="preview-count">收件人 recipients: ${data.recipients}</p>` +
      data.sample.map((s) => `<p><code>${esc(s.to)}</code> ${esc(s.content.text || s.content.subject || "")}</p>`).join("") +
      (data.left_out.length ? "<h3>未发送 Left out</h3><ul>" + data.left_out.map((l) => `<li>${esc(l.why)}</li>`).join("") + "</ul>" : ""));
  },
  async "test-send"() {
    const {status, data} = await call("POST", `${rulePath()}/test-send`, {});
    if (status !== 200) return show(`<p class="error">${esc(data.error)}</p>`);
    show(`<p class="ok" id="test-sent">已发送测试 (test sent) → ` + data.sent.map((s) => esc(s.to)).join(", ") + "</p>");
  },
  async submit() { await step("submit"); },
  async approve() { await step("approve"); },
  async reject() { await step("reject", {reason: document.getElementById("reject-reason").value}); },
};
async function step(name, body) {
  const {status, data} = await call("POST", `${rulePath()}/${name}`, body || {});
  if (status !== 200) return show(`<p class="error">${esc(data.error)}</p>`);
  show(`<p class="ok" id="step-done">${esc(name)}: ${esc(data.status)}${data.version ? " · v" + data.version : ""}</p>`);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  if (form) form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const {status, data} = await call("POST", "/api/login", {login: form.login.value, password: form.password.value});
    if (status === 200) { window.location = "/rules"; return; }
    document.getElementById("login-error").textContent = status === 429 ? "尝试次数过多，请稍后再试 (too many tries)" : "账号或密码错误 (wrong login or password)";
  });
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => { await call("POST", "/api/logout"); window.location = "/login"; });
  for (const [id, action] of Object.entries(actions)) {
    const button = document.getElementById(id); if (button) button.addEventListener("click", action);
  }
  const area = document.getElementById("sms-text");
  if (area) { area.addEventListener("input", smsMeter); smsMeter(); }
  for (const el of document.querySelectorAll(".template, #rule-when")) el.addEventListener("focus", () => { lastFocused = el; });
  const on = document.getElementById("rule-on");
  if (on) { on.addEventListener("change", () => { listFields(); renderedMeter(); }); listFields(); }
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest && ev.target.closest("button.field");
    if (button) insertField(button.dataset.field);
  });
  const create = document.getElementById("new-rule");
  if (create) create.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = create.querySelector("input").value.trim();
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(id)) { document.getElementById("new-rule-error").textContent = "编号只能用小写字母、数字和 - (lower-case letters, digits and -)"; return; }
    window.location = `/rules/${id}`;
  });
  typesPage();
});

// the event types page: a new type's schema and example, saved for an admin's approval
function typesPage() {
  const form = document.getElementById("type-editor"); if (!form) return;
  const result = (html) => { document.getElementById("type-result").innerHTML = html; };
  const name = () => document.getElementById("type-name").value.trim();
  const save = document.getElementById("type-save");
  if (save) save.addEventListener("click", async () => {
    let data, example;
    try { data = JSON.parse(document.getElementById("type-data").value); }
    catch (e) { return result(`<p class="error">字段定义不是有效的 JSON (schema is not valid JSON): ${esc(e.message)}</p>`); }
    try { example = JSON.parse(document.getElementById("type-example").value); }
    catch (e) { return result(`<p class="error">示例不是有效的 JSON (example is not valid JSON): ${esc(e.message)}</p>`); }
    const subject = document.getElementById("type-subject").value || null;
    const {status, data: body} = await call("PUT", `/api/event-types/${encodeURIComponent(name())}/draft`,
      {subject, description: document.getElementById("type-description").value, data, example});
    if (status !== 200) return result(`<p class="error">${esc(body.error)}</p>`);
    if (body.errors.length) return result(`<p class="error">有 ${body.errors.length} 处错误 (errors):</p><ul id="type-errors">` +
      body.errors.map((e) => `<li><code>${esc(e.field)}</code>: ${esc(e.message)}</li>`).join("") + "</ul>");
    result(`<p class="ok" id="type-saved">已保存，等待管理员批准 (saved, waiting for an admin)</p>`);
  });
  for (const step of ["approve", "reject"]) {
    for (const button of document.querySelectorAll(`button.type-${step}`)) button.addEventListener("click", async () => {
      const reason = step === "reject" ? {reason: document.getElementById(`reason-${button.dataset.name}`).value} : undefined;
      const {status, data} = await call("POST", `/api/event-types/${encodeURIComponent(button.dataset.name)}/${step}`, reason);
      if (status !== 200) return result(`<p class="error">${esc(data.error)}</p>`);
      result(`<p class="ok" id="type-step-done">${esc(button.dataset.name)}: ${esc(data.status)}${data.version ? " · v" + data.version : ""}</p>`);
    });
  }
}

// held sends: release, or reject with a reason; the API refuses whoever caused the hold
document.addEventListener("DOMContentLoaded", () => {
  const result = (html) => { const el = document.getElementById("held-result"); if (el) el.innerHTML = html; };
  for (const button of document.querySelectorAll("button.held-release, button.held-reject")) {
    button.addEventListener("click", async () => {
      const reject = button.classList.contains("held-reject");
      const body = reject ? {reason: document.getElementById(button.dataset.reason).value} : {};
      const {status, data} = await call("POST", `/api/held/${encodeURIComponent(button.dataset.hold)}/${reject ? "reject" : "release"}`, body);
      if (status !== 200) return result(`<p class="error" id="held-error">${esc(data.error)}</p>`);
      result(`<p class="ok" id="held-done">${reject ? "已驳回 rejected" : "已放行 released"}: ${esc(button.dataset.hold)}</p>`);
    });
  }
});

// dead letters: replay or discard the picked ones
document.addEventListener("DOMContentLoaded", () => {
  const out = document.getElementById("dlq-result"); if (!out) return;
  const picked = () => [...document.querySelectorAll("input.dlq-pick:checked")].map((b) => b.value);
  const report = (data) => { out.innerHTML = `<ul id="dlq-done">` + Object.entries(data).map(([k, v]) => `<li><code>${esc(k)}</code>: ${esc(v)}</li>`).join("") + "</ul>"; };
  document.getElementById("dlq-replay").addEventListener("click", async () => {
    const names = picked(); if (!names.length) { out.textContent = "先选择 pick some first"; return; }
    const {status, data} = await call("POST", "/api/dlq/replay", {names});
    if (status !== 200) { out.innerHTML = `<p class="error">${esc(data.error)}</p>`; return; }
    report(data.replayed);
  });
  document.getElementById("dlq-discard").addEventListener("click", async () => {
    const names = picked(); if (!names.length) { out.textContent = "先选择 pick some first"; return; }
    const {status, data} = await call("POST", "/api/dlq/discard", {names, why: document.getElementById("dlq-why").value});
    if (status !== 200) { out.innerHTML = `<p class="error">${esc(data.error)}</p>`; return; }
    report(data.discarded);
  });
});

// the dashboard redraws itself: the same page fetched again, its panels swapped in
document.addEventListener("DOMContentLoaded", () => {
  const panels = document.getElementById("panels"); if (!panels || !panels.dataset.refresh) return;
  setInterval(async () => {
    try {
      const response = await fetch(window.location.pathname, {credentials: "same-origin"});
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("panels");
      if (fresh) panels.innerHTML = fresh.innerHTML;
    } catch (e) { /* the next round tries again */ }
  }, Number(panels.dataset.refresh) * 1000);
});
