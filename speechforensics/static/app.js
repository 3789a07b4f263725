// speechforensics serve: upload videos, follow their jobs, draw each result.
// Plain JS, no build step. Talks to the HTTP API documented in the README.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
const cards = new Map(); // job id (or upload key) -> {el, status}
let info = null;
let timer = null;

function $(sel, root = document) { return root.querySelector(sel); }

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response.json();
}

function notice(text) {
  const el = $("#notice");
  el.textContent = text;
  el.hidden = !text;
}

async function start() {
  try {
    info = await api("/api/info");
  } catch (e) {
    $("#backend").textContent = "The server did not answer: " + e.message;
    return;
  }
  const threshold = info.threshold === null ? "no calibrated threshold"
    : `calls a video forged below a score of ${info.threshold.toFixed(3)}`;
  $("#backend").textContent = `Backend: ${info.backend} (${threshold}). ${info.about}`;
  const length = info.max_seconds === null ? "the whole video is checked"
    : `the first ${info.max_seconds} s are checked`;
  $("#limits").textContent = `${info.formats}; up to ${formatBytes(info.max_upload_bytes)}; ${length}.`;
  const drop = $("#drop"); // a drop anywhere on the page counts (the browser would open the file)
  document.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadAll(e.dataTransfer.files);
  });
  $("#files").addEventListener("change", (e) => { uploadAll(e.target.files); e.target.value = ""; });
  await refresh();
}

function uploadAll(files) {
  notice("");
  for (const file of files) upload(file);
}

function upload(file) {
  const key = "upload-" + Math.random().toString(16).slice(2);
  const card = newCard(key, file.name);
  setStatus(card, "uploading", "Uploading…");
  const bar = $("progress", card.el);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs?name=" + encodeURIComponent(file.name));
  xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    bar.max = e.total;
    bar.value = e.loaded;
    $(".progress-text", card.el).textContent =
      `uploading ${Math.round(100 * e.loaded / e.total)} %`;
  };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status !== 201) {
      showError(card, body.detail || `upload failed (${xhr.status} ${xhr.statusText})`);
      setStatus(card, "rejected", "Not accepted");
      card.local = true;
      return;
    }
    cards.delete(key);
    card.el.dataset.id = body.id;
    cards.set(body.id, card);
    update(card, body);
    schedule();
  };
  xhr.onerror = () => { showError(card, "the upload was cut off; try again"); card.local = true; };
  xhr.send(file);
}

async function refresh() {
  timer = null;
  let jobs;
  try {
    jobs = (await api("/api/jobs")).jobs;
  } catch (e) {
    notice("Lost contact with the server (" + e.message + "); retrying…");
    schedule();
    return;
  }
  notice("");
  const seen = new Set(jobs.map((j) => j.id));
  for (const [id, card] of cards) {
    if (!card.local && !id.startsWith("upload-") && !seen.has(id)) { card.el.remove(); cards.delete(id); }
  }
  for (const job of jobs) {
    const card = cards.get(job.id) || newCard(job.id, job.name);
    update(card, job);
  }
  schedule();
}

function schedule() {
  $("#empty").hidden = cards.size > 0;
  const busy = [...cards.values()].some((c) => ["queued", "running", "uploading"].includes(c.status));
  if (busy && timer === null) timer = setTimeout(refresh, POLL_MS);
}

function newCard(id, name) {
  const el = $("#job-template").content.firstElementChild.cloneNode(true);
  el.dataset.id = id;
  $(".name", el).textContent = name;
  const card = { el, status: null };
  $(".delete", el).addEventListener("click", () => remove(card));
  $("#jobs").prepend(el);
  cards.set(id, card);
  $("#empty").hidden = true;
  return card;
}

async function remove(card) {
  const id = card.el.dataset.id;
  if (!card.local && !id.startsWith("upload-")) {
    if (!confirm(`Delete ${$(".name", card.el).textContent} and its results?`)) return;
    try { await api(`/api/jobs/${id}`, { method: "DELETE" }); } catch (e) { notice(e.message); return; }
  }
  card.el.remove();
  cards.delete(id);
  schedule();
}

function setStatus(card, status, text) {
  card.status = status;
  card.el.dataset.status = status;
  $(".status", card.el).textContent = text;
}

function showError(card, message) {
  const el = $(".error", card.el);
  el.textContent = message;
  el.hidden = false;
  $(".progress", card.el).hidden = true;
}

async function update(card, job) {
  if (card.status === job.status && job.status !== "queued" && job.status !== "running") return;
  const progress = $(".progress", card.el);
  const bar = $("progress", card.el);
  if (job.status === "queued") {
    setStatus(card, "queued", "Waiting");
    bar.removeAttribute("value");
    $(".progress-text", card.el).textContent = job.queue_position > 1
      ? `waiting: ${job.queue_position - 1} video(s) ahead` : "starting…";
  } else if (job.status === "running") {
    setStatus(card, "running", "Checking…");
    bar.removeAttribute("value");
    const seconds = Math.max(0, Math.round(Date.now() / 1000 - job.started));
    $(".progress-text", card.el).textContent = `finding faces, cutting mouths, comparing (${seconds} s)`;
  } else if (job.status === "failed") {
    setStatus(card, "failed", "Could not be checked");
    showError(card, job.error);
  } else if (job.status === "done" && !card.loading) {
    card.loading = true;
    try {
      const full = await api(`/api/jobs/${job.id}`);
      progress.hidden = true;
      drawResult(card, full);
      setStatus(card, "done", "Checked");
    } finally {
      card.loading = false;
    }
  }
}

const VERDICTS = {
  real: "The lips match the voice: no sign of forgery found",
  fake: "The lips do not match the voice: likely forged",
  uncertain: "Uncertain: the score is too close to the threshold to call either way",
  inconclusive: "Inconclusive: this backend has no calibrated threshold",
};

function drawResult(card, job) {
  const r = job.result;
  const el = card.el;
  $(".result", el).hidden = false;
  const verdict = $(".verdict", el);
  verdict.textContent = VERDICTS[r.verdict] || r.verdict;
  verdict.className = "verdict " + r.verdict;
  const threshold = r.threshold === null ? "no threshold" : `threshold ${r.threshold.toFixed(3)}`;
  let doubt = "";
  if (r.verdict === "uncertain" && r.uncertain_band) {
    const [low, high] = r.uncertain_band;
    doubt = `. Scores from ${low.toFixed(3)} to ${high.toFixed(3)} are uncertain`;
    if (r.error_rates) {
      const pct = (v) => `${Math.round(100 * v)} %`;
      doubt += `: calling it fake would be wrong for ${pct(r.error_rates.genuine_at_or_below)} ` +
        `of genuine clips, calling it real for ${pct(r.error_rates.forged_at_or_above)} of ` +
        "forged ones";
    }
  }
  $(".score", el).textContent =
    `Score ${r.score.toFixed(3)} (${threshold}; ${r.backend} backend)${doubt}`;
  $(".meaning", el).textContent = "The score is how well the lips agree with the voice, averaged " +
    "over the speech (higher: more agreement). The threshold is set on genuine videos only: 5 % " +
    "of genuine videos score below it. " + (job.about ? `What this backend sees: ${job.about}` : "");
  drawTimeline($("svg.timeline", el), r);
  drawFacts($(".facts", el), r);
  const warnings = $(".warnings", el);
  warnings.hidden = r.warnings.length === 0;
  $("ul", warnings).replaceChildren(...r.warnings.map((w) => item(w)));
  $(".crops img", el).src = job.links.crops;
  $("a.report", el).href = job.links.report;
  $("a.json", el).href = job.links.result;
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

function drawFacts(dl, r) {
  const ms = r.offset_ms >= 0 ? `+${Math.round(r.offset_ms)}` : `${Math.round(r.offset_ms)}`;
  // Where lips and voice agree best; for a voice that does not belong to the face this is
  // wherever chance puts it, so it is not read as "late" or "early" (the warnings say that).
  const offset = `${r.offset_frames >= 0 ? "+" : ""}${r.offset_frames} frames (${ms} ms): ` +
    "where lips and voice agree best (+: the voice later than the lips)";
  const faces = document.createElement("ul");
  for (const t of r.tracks) {
    const judged = t.id === r.face ? " (decided the verdict)" : "";
    faces.append(item(`face ${t.id}${judged}: spoke ${t.speech_seconds.toFixed(1)} s in ` +
      `${t.turns} turn(s), ${t.frames_measured} frames measured, ${t.frames_missing} missing, ` +
      `about ${Math.round(t.size_px)} px wide`));
  }
  const turns = document.createElement("ul");
  for (const t of r.turns) {
    const score = t.score === null ? "too short to judge" : `score ${t.score.toFixed(3)}`;
    const li = item(`${t.start_s.toFixed(1)}–${t.end_s.toFixed(1)} s: face ${t.face} speaks ` +
      `(${t.speech_seconds.toFixed(1)} s of speech; ${score}): ${t.verdict}`);
    li.className = "turn " + t.verdict.replace(" ", "-");
    turns.append(li);
  }
  if (!r.turns.length) turns.append(item("no visible face spoke"));
  const segments = r.segments.length === 0 ? "none"
    : r.segments.map(([a, b]) => `${a.toFixed(1)}–${b.toFixed(1)} s`).join(", ");
  const rows = [
    ["Best offset", offset],
    ["Speech judged", `${r.speech_seconds.toFixed(1)} s of ${r.duration_s.toFixed(1)} s`],
    ["Sync breaks down", segments],
    ["Who spoke when", turns],
    ["Shots", `${r.shots.length} (cuts at ${r.shots.slice(1).map(([a]) => a.toFixed(1) + " s").join(", ") || "none"})`],
    ["Faces", faces],
  ];
  dl.replaceChildren();
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.append(value);
    dl.append(dt, dd);
  }
}

function drawTimeline(svg, r) {
  const W = 760, H = 200, left = 44, right = 10, top = 10, bottom = 28;
  const scores = r.timeline.map((w) => w.score).filter((s) => s !== null);
  const lo = Math.min(0, r.threshold ?? 0, ...scores), hi = Math.max(0.5, ...scores);
  const x = (t) => left + (W - left - right) * t / Math.max(r.duration_s, 1e-6);
  const y = (s) => top + (H - top - bottom) * (hi - s) / Math.max(hi - lo, 1e-6);
  svg.replaceChildren();
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (const [a, b] of r.segments) {
    add("rect", { class: "segment", x: x(a), y: top, width: x(b) - x(a), height: H - top - bottom });
  }
  for (const t of r.turns) {  // who spoke when: a bar per turn along the bottom, labelled
    add("rect", { class: "turn " + t.verdict.replace(" ", "-"), x: x(t.start_s), y: H - bottom - 8,
      width: Math.max(x(t.end_s) - x(t.start_s), 1), height: 6 });
    add("text", { class: "tick", x: x(t.start_s) + 2, y: H - bottom - 10 }, `face ${t.face}`);
  }
  for (const [a] of r.shots.slice(1)) {
    add("line", { class: "cut", x1: x(a), x2: x(a), y1: top, y2: H - bottom });
  }
  add("line", { class: "axis", x1: left, x2: left, y1: top, y2: H - bottom });
  add("line", { class: "axis", x1: left, x2: W - right, y1: y(0), y2: y(0) });
  for (const s of [lo, 0, hi]) {
    add("text", { class: "tick", x: left - 4, y: y(s) + 4, "text-anchor": "end" }, s.toFixed(2));
  }
  const step = r.duration_s > 30 ? 10 : r.duration_s > 12 ? 5 : 1;
  for (let t = 0; t <= r.duration_s + 1e-6; t += step) {
    add("text", { class: "tick", x: x(t), y: H - 10, "text-anchor": "middle" }, `${t} s`);
  }
  if (r.threshold !== null) {
    add("line", { class: "threshold", x1: left, x2: W - right, y1: y(r.threshold), y2: y(r.threshold) });
  }
  let run = [];
  const flush = () => {
    if (run.length) add("polyline", { class: "score-line", points: run.join(" ") });
    run = [];
  };
  for (const w of r.timeline) {
    if (w.score === null) { flush(); continue; }
    run.push(`${x((w.start_s + w.end_s) / 2).toFixed(1)},${y(w.score).toFixed(1)}`);
  }
  flush();
}

function formatBytes(n) {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GB` : `${Math.round(n / 1024 ** 2)} MB`;
}

start();
