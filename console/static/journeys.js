// The rule editor's trigger (an event, a profile's date, dates of the year) and follow-ups, as
// form fields: journeyFields() puts them into the rule console.js's draftBody() saves.
"use strict";
function journeyFields(rule, templates) {
  const value = (id) => (document.getElementById(id) || {value: ""}).value.trim();
  const words = (text) => text.split(/[\s,，、]+/).filter(Boolean);
  const chosen = document.querySelector('input[name="trigger"]:checked');
  delete rule.on_date; delete rule.on_calendar; delete rule.follow_up;
  if (chosen && chosen.value === "date") {
    delete rule.on;
    rule.on_date = {kind: value("date-kind"), fact: value("date-fact"), days: Number(value("date-days") || 0),
                    years: Number(value("date-years") || 0), at: value("date-at") || "09:00"};
  } else if (chosen && chosen.value === "calendar") {
    delete rule.on;
    rule.on_calendar = {dates: words(value("calendar-dates")), at: value("calendar-at") || "09:00"};
  }
  const box = document.getElementById("follow-up"); if (!box) return;
  const stop = value("fu-stop");
  const steps = [...box.querySelectorAll("#fu-steps > li.fu-step")].map((li) => {
    const get = (cls) => li.querySelector(cls).value.trim();
    const step = {after: `${get(".fu-amount") || 1}${get(".fu-unit")}`, repeat: Number(get(".fu-repeat") || 1)};
    if (get(".fu-at")) step.at = get(".fu-at");
    if (get(".fu-contacts")) step.contacts = words(get(".fu-contacts"));
    const text = li.querySelector(".fu-text").value;
    if (text.trim()) {
      step.channels = {sms: li.dataset.template};
      templates[`${li.dataset.template}/${box.dataset.language}/sms.txt`] = text;
    }
    return step;
  });
  if (!stop && !steps.length) return;
  rule.follow_up = {steps};
  if (stop) rule.follow_up.stop_on = stop;
  const days = Number(value("fu-window") || 30);
  rule.follow_up.window = Number.isInteger(days) ? `${days}d` : `${Math.max(1, Math.round(days * 86400))}s`;
  const holdout = Number(value("fu-holdout") || 0);
  if (holdout > 0) rule.follow_up.holdout = `${holdout}%`;
}

document.addEventListener("DOMContentLoaded", () => {
  const trigger = document.getElementById("trigger"); if (!trigger) return;
  const showTrigger = () => {
    const chosen = (document.querySelector('input[name="trigger"]:checked') || {value: "event"}).value;
    for (const part of ["event", "date", "calendar"]) {
      const el = document.getElementById(`trigger-${part}`); if (el) el.hidden = part !== chosen;
    }
  };
  for (const radio of trigger.querySelectorAll('input[name="trigger"]')) radio.addEventListener("change", showTrigger);
  showTrigger();
  const box = document.getElementById("follow-up"), list = document.getElementById("fu-steps");
  if (!box || !list) return;
  document.getElementById("fu-add").addEventListener("click", () => {
    const taken = new Set([...list.querySelectorAll("li.fu-step")].map((li) => li.dataset.template));
    let n = 1; while (taken.has(`${box.dataset.base}_step${n}`)) n += 1;
    const li = document.getElementById("fu-step-template").content.firstElementChild.cloneNode(true);
    li.dataset.template = `${box.dataset.base}_step${n}`;
    list.appendChild(li);
    li.querySelector(".fu-amount").focus();
  });
  list.addEventListener("focusin", (ev) => {  // the field picker inserts where one types
    if (ev.target.classList.contains("fu-text")) lastFocused = ev.target;
  });
  list.addEventListener("click", (ev) => {
    const button = ev.target.closest && ev.target.closest("button.fu-remove");
    if (button) button.closest("li.fu-step").remove();
  });
});
