// The operator page's alarms: the line's alarms not in normal (GET /api/v1/alarms, what
// `shopfloor alarms` stored), and an Acknowledge button with an optional comment on each
// one waiting for an acknowledgement. Uses operator.js's helpers. docs/operator.md.
"use strict";

const UNACKED = new Set(["active_unack", "cleared_unack"]);

async function refreshAlarms() {
  if (!page.key || !page.line) return;
  // someone is typing a comment: redrawing the list would throw it away
  if ($("alarm-list").contains(document.activeElement)) return;
  try {
    const found = await api(`/api/v1/alarms?line=${encodeURIComponent(page.line)}`);
    if ($("alarm-list").contains(document.activeElement)) return;
    renderList("alarm-list", "alarms-empty", found.items, alarmItem);
  } catch (error) {
    setStatus(error.message);
  }
}

function words(text) { return String(text || "").replaceAll("_", " "); }

function alarmItem(alarm) {
  const item = el("li", { class: "event alarm", "data-alarm": `${alarm.machine}/${alarm.rule}`,
                          "data-state": alarm.to_state, "data-severity": alarm.severity },
    el("div", { class: "head", text: `${alarm.machine} · ${words(alarm.rule)} · `
      + `${alarm.severity} · ${words(alarm.to_state)} since ${clock(alarm.time)}` }));
  if (alarm.by && alarm.by !== "system") {
    const note = alarm.comment ? ` · “${alarm.comment}”` : "";
    item.append(el("div", { class: "part", text: `${words(alarm.kind)} by ${alarm.by}${note}` }));
  }
  if (UNACKED.has(alarm.to_state)) item.append(ackForm(alarm, item));
  return item;
}

function ackForm(alarm, item) {
  const comment = el("input", { type: "text", maxlength: "500", "aria-label": "comment",
                                placeholder: "comment (optional)" });
  return el("div", { class: "split ack" }, comment,
    el("button", { type: "button", class: "ack-button", text: "Acknowledge",
                   onclick: () => acknowledge(alarm, comment.value, item) }));
}

async function acknowledge(alarm, comment, item) {
  const buttons = item.querySelectorAll("button");
  buttons.forEach((button) => { button.disabled = true; });
  const path = `/api/v1/alarms/${encodeURIComponent(alarm.machine)}/`
    + `${encodeURIComponent(alarm.rule)}/ack`;
  try {
    const answer = await api(path, { method: "POST", body: JSON.stringify({ comment }) });
    item.dataset.state = answer.alarm.state;  // at once; the stored list follows
    item.querySelector(".ack").remove();
    setStatus("acknowledged");
    document.activeElement.blur();
    setTimeout(refreshAlarms, 1500);
  } catch (error) {
    showError(item, error.message);
    buttons.forEach((button) => { button.disabled = false; });
  }
}
