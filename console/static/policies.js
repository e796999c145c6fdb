// The support policies' pages: the editor's fields as a policy, saved for approval; the
// four-eyes buttons; which policies an enterprise meets. Each action is an API call (console.js).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const go = document.getElementById("new-policy-go");
  if (go) go.addEventListener("click", () => {
    const id = document.getElementById("new-policy-id").value.trim();
    if (id) window.location.href = `/policies/${encodeURIComponent(id)}`;
  });
  const check = document.getElementById("enterprise-go");
  if (check) check.addEventListener("click", async () => {
    const out = document.getElementById("enterprise-result");
    const id = document.getElementById("enterprise-id").value.trim(); if (!id) return;
    const {status, data} = await call("GET", `/api/enterprises/${encodeURIComponent(id)}/policies`);
    if (status !== 200) { out.innerHTML = `<p class="error">${esc(data.error)}</p>`; return; }
    out.innerHTML = `<p>${esc(data.name || id)}</p><ul id="enterprise-policies">` + data.policies.map((p) =>
      `<li><strong>${p.met ? "符合 meets" : "不符合 does not meet"}</strong> ${esc(p.name)}` +
      (p.told_on ? ` · 已告知 told ${esc(p.told_on)}` : "") + "<ul>" +
      p.criteria.map((c) => `<li>${c.met ? "✓" : "✗"} ${esc(c.label)}: ${esc(c.says)}</li>`).join("") + "</ul></li>").join("") + "</ul>";
  });
  const form = document.getElementById("policy-editor"); if (!form) return;
  const result = (html, cls) => { const el = document.getElementById("policy-result"); el.className = cls || ""; el.innerHTML = html; el.focus({preventScroll: true}); };
  const value = (id) => document.getElementById(id).value.trim();
  const words = (id) => value(id).split(/[\s,，、]+/).filter(Boolean);
  const bounds = (lo, hi) => {
    const out = {};
    if (value(lo) !== "") out.min = Number(value(lo));
    if (value(hi) !== "") out.max = Number(value(hi));
    return Object.keys(out).length ? out : undefined;
  };
  function policy() {
    const criteria = {};
    for (const [key, id] of [["industries", "p-industries"], ["qualifications", "p-qualifications"], ["permits", "p-permits"]]) {
      if (words(id).length) criteria[key] = words(id);
    }
    const sizes = [...document.querySelectorAll("input.p-size:checked")].map((b) => b.value);
    if (sizes.length) criteria.sizes = sizes;
    const capital = bounds("p-capital-min", "p-capital-max"); if (capital) criteria.registered_capital = capital;
    const age = bounds("p-age-min", "p-age-max"); if (age) criteria.age_months = age;
    const doc = {name: value("p-name"), summary: value("p-summary"), confirm: value("p-confirm"), where: value("p-where"),
                 districts: words("p-districts"), enabled: document.getElementById("p-enabled").checked, criteria};
    if (value("p-from")) doc.valid_from = value("p-from");
    if (value("p-until")) doc.valid_until = value("p-until");
    return doc;
  }
  const save = document.getElementById("policy-save");
  if (save) save.addEventListener("click", async () => {
    const {status, data} = await call("PUT", `/api/policies/${encodeURIComponent(form.dataset.policy)}/draft`, {policy: policy()});
    if (status !== 200) return result(`<p class="error">${esc(data.error)}</p>`, "error");
    if (data.errors.length) return result(`<p class="error">有 ${data.errors.length} 处错误 (errors):</p><ul id="policy-errors">` +
      data.errors.map((e) => `<li><code>${esc(e.field)}</code>: ${esc(e.message)}</li>`).join("") + "</ul>", "error");
    result(`<p class="ok" id="policy-saved">已保存，等待另一位审核人批准 (saved, waiting for another approver)</p>`);
  });
  const preview = document.getElementById("policy-preview");
  if (preview) preview.addEventListener("click", async () => {
    const {status, data} = await call("POST", `/api/policies/${encodeURIComponent(form.dataset.policy)}/preview`);
    if (status !== 200) return result(`<p class="error">${esc(data.error)}</p>`, "error");
    result(`<p id="policy-preview-count">现在符合条件的企业 enterprises meeting it now: <strong>${data.meeting}</strong>` +
      `${data.complete ? "" : "+"}（其中已告知 told already: ${data.told_already}；读取 read ${data.read}）</p>` +
      (data.sample.length ? `<p class="help">如 e.g. ${data.sample.map(esc).join("、")}</p>` : ""));
  });
  for (const step of ["approve", "reject"]) {
    const button = document.getElementById(`policy-${step}`); if (!button) continue;
    button.addEventListener("click", async () => {
      const body = step === "reject" ? {reason: value("policy-reason")} : undefined;
      const {status, data} = await call("POST", `/api/policies/${encodeURIComponent(form.dataset.policy)}/${step}`, body);
      if (status !== 200) return result(`<p class="error">${esc(data.error)}</p>`, "error");
      result(`<p class="ok" id="policy-step-done">${esc(data.status)}${data.version ? " · v" + data.version : ""}</p>`);
    });
  }
});
