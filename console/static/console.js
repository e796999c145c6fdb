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
function show(html, cls) { const el = document.getElementById("result"); el.className = cls || ""; el.innerHTML = html; }
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

function smsMeter() {
  const area = document.getElementById("sms-text"); if (!area) return;
  const sig = document.getElementById("editor").dataset.signature || "";
  const chars = [...(sig + area.value.trim())].length;
  const gsm = /^[\x20-\x7e\n\r]*$/.test(sig + area.value);
  const single = gsm ? 160 : 70, part = gsm ? 153 : 67;
  const segments = chars <= single ? 1 : Math.ceil(chars / part);
  const meter = document.getElementById("sms-meter");
  meter.textContent = `${chars} 字（含签名） · ${gsm ? "GSM-7" : "UCS-2"} · ${segments} 条短信` + (chars > 500 ? " · 超过网关上限 500 字 (over the gateway's 500)" : "");
  meter.className = chars > 500 ? "error" : "";
}

function draftBody() {
  let rule;
  try { rule = JSON.parse(document.getElementById("rule-json").value); }
  catch (e) { show(`<p class="error">规则不是有效的 JSON：${esc(e.message)}</p>`, "error"); return null; }
  const area = document.getElementById("sms-text");
  return {rule, templates: {[area.dataset.path]: area.value}};
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
});
