// cratedig web page: library table, song view with phrases and partners, players, ratings,
// folder scans with live progress. Plain JS, no dependencies, every asset served by cratedig.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  tracks: [], sort: "tempo", desc: false, track: null, match: null, selected: null,
  auth: false, playing: null, job: null,
};
const SECTION_COLORS = { intro: "#6b7280", verse: "#3dd6ff", chorus: "#ff7a3d", break: "#b57bff",
  outro: "#6b7280", bridge: "#5ee08a", build: "#ffd23d", drop: "#ff3d6e", loop: "#5ee0c8" };

function token() { return localStorage.getItem("cratedig-token") || ""; }
function authHeaders() { return state.auth && token() ? { Authorization: "Bearer " + token() } : {}; }
function withToken(url) {
  return state.auth && token() ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token()) : url;
}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), ...authHeaders() } });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new Error((body && body.error) || res.status + " " + res.statusText);
  return body;
}
function postJSON(path, obj) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj) });
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function baseName(p) { return String(p || "").split(/[\\/]/).pop() || p; }
// "Artist – Title" from a track's tags, or "" (then the file name is shown).
function tagName(tags) { return tags ? [tags.artist, tags.title].filter(Boolean).join(" – ") : ""; }
// What a DJ calls a track: its tags' artist and title, else its file name.
function trackName(t) { return tagName(t.tags) || baseName(t.path) || t.track_id; }
// A candidate or cue partner, named from the library list when it is there.
function nameOf(trackId, path) {
  const t = (state.tracks || []).find((x) => x.track_id === trackId);
  return t ? trackName(t) : baseName(path) || trackId;
}
function clock(s) { const m = Math.floor(s / 60); return m + ":" + String(Math.floor(s % 60)).padStart(2, "0"); }
function camelotColor(code) {
  const m = /^(\d+)([AB])$/.exec(code || "");
  if (!m) return "#888";
  const hue = ((+m[1] - 1) * 30 + 10) % 360;
  return m[2] === "A" ? `hsl(${hue} 70% 58%)` : `hsl(${hue} 85% 72%)`;
}
function keyChip(code, title) {
  return `<span class="key-chip" style="background:${camelotColor(code)}" title="${esc(title || "")}">${esc(code)}</span>`;
}
function setStatus(text, bad) { const s = $("#status"); s.textContent = text; s.classList.toggle("error", !!bad); }

// ---------------------------------------------------------------------------------- library

async function loadConfig() {
  const cfg = await api("/api/config");
  state.auth = cfg.auth;
  $("#token-box").classList.toggle("hidden", !cfg.auth);
  $("#token").value = token();
  const sel = $("#scan-folder");
  sel.innerHTML = cfg.music.map((m) => `<option value="${esc(m)}">${esc(baseName(m))}</option>`).join("");
  $("#scan-form").classList.toggle("hidden", cfg.music.length === 0);
  state.bpmRange = cfg.bpm_range ? `${cfg.bpm_range[0]}-${cfg.bpm_range[1]}` : "";
  $("#scan-bpm-range").value = state.bpmRange;
  const stale = cfg.stale_tracks
    ? ` · ${cfg.stale_tracks} analysed by an older cratedig (a scan brings them up to date)`
    : "";
  setStatus(`${cfg.tracks} tracks · ${cfg.segments} phrases indexed${stale}`);
}

let searchTimer = null;
function scheduleSearch() { clearTimeout(searchTimer); searchTimer = setTimeout(loadTracks, 200); }

// Tracks come sorted and paged by the server, over the whole library: PAGE at a time
// (?page=N in the address changes it).
const PAGE = Math.max(1, Math.floor(+new URLSearchParams(location.search).get("page")) || 200);

function trackQuery(offset) {
  const p = new URLSearchParams({ limit: String(PAGE), offset: String(offset), sort: state.sort, desc: String(!!state.desc) });
  if ($("#search").value.trim()) p.set("q", $("#search").value.trim());
  if ($("#key").value.trim()) p.set("key", $("#key").value.trim());
  if ($("#bpm").value.trim()) p.set("bpm", $("#bpm").value.trim());
  if ($("#kind").value) p.set("kind", $("#kind").value);
  return "/api/tracks?" + p;
}

async function loadTracks(more = false) {
  const ticket = (state.tracksTicket = (state.tracksTicket || 0) + 1);
  try {
    const r = await api(trackQuery(more === true ? state.tracks.length : 0));
    if (ticket !== state.tracksTicket) return;  // a newer sort, search or page is on its way
    state.tracks = more === true ? state.tracks.concat(r.tracks) : r.tracks;
    state.total = r.total;
    $("#count").textContent = state.tracks.length < r.total ? `${state.tracks.length} of ${r.total} tracks` : `${r.total} tracks`;
    $("#count").classList.remove("error");
    renderTracks();
  } catch (e) {
    $("#count").textContent = e.message;
    $("#count").classList.add("error");
  }
}

function renderTracks() {
  const k = state.sort;
  const rows = state.tracks;  // in the server's order
  document.querySelectorAll("#tracks th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.sort === k);
    th.classList.toggle("desc", th.dataset.sort === k && state.desc);
  });
  const left = (state.total || 0) - rows.length;
  $("#more").classList.toggle("hidden", left <= 0);
  $("#more").textContent = `Show ${Math.min(left, PAGE)} more (${left} not shown)`;
  $("#tracks tbody").innerHTML = rows.map((t) => `
    <tr data-id="${t.track_id}" class="${state.track && state.track.track_id === t.track_id ? "active" : ""}">
      <td class="name" title="${esc(t.path)}">${t.loop_bars ? `<span class="dim" data-testid="loop" title="a loop of ${t.loop_bars} bar${t.loop_bars > 1 ? "s" : ""}">⟳${t.loop_bars}</span> ` : ""}${esc(trackName(t))}</td>
      <td class="num"${t.grid_given && Object.keys(t.grid_given).length ? ` title="grid as you gave it: ${esc(gridWords(t.grid_given))}"` : ""}>${t.tempo.toFixed(1)}${t.grid_given && Object.keys(t.grid_given).length ? "*" : ""}</td>
      <td>${keyChip(t.camelot, t.key + " " + t.mode)} <span class="dim">${esc(t.key)}${t.mode === "minor" ? "m" : ""}</span></td>
      <td class="num"><span class="energy" style="width:${Math.round(8 + 40 * t.energy)}px"></span> ${t.energy.toFixed(2)}</td>
      <td class="num">${clock(t.duration)}</td>
    </tr>`).join("");
}

// ---------------------------------------------------------------------------------- song view

async function openTrack(id) {
  stop();
  try {
    const [track, match] = await Promise.all([api("/api/tracks/" + id), postJSON("/api/match", { track_id: id, top: 5 })]);
    showSong(track, match);
  } catch (e) { setStatus(e.message, true); }
}

function showSong(track, match) {
  state.track = track; state.match = match; state.selected = null;
  document.querySelector("main").classList.add("song-open");
  $("#song").classList.remove("empty");
  $("#song-title").textContent = trackName(track);
  const tags = track.tags || {};
  const matched = match.matches.filter((m) => m.candidates.length).length;
  const given = (track.estimates && track.estimates.grid && track.estimates.grid.given) || null;
  $("#song-meta").innerHTML = `${track.tempo.toFixed(1)} BPM · ${keyChip(track.camelot)} ${esc(track.key)} ${esc(track.mode)} · ` +
    `${track.time_signature ? track.time_signature.join("/") : "4/4"} · ${clock(track.duration)} · ` +
    `${matched}/${track.segments.length} phrases have partners${match.query.upload ? " · uploaded, not in the library" : ""}` +
    (tagName(tags) ? `<div class="dim" data-testid="file">${esc([tags.album, tags.genre, tags.year].filter(Boolean).join(" · "))}${tags.album || tags.genre || tags.year ? " · " : ""}${esc(baseName(track.path))}</div>` : "") +
    (given ? `<div class="given" data-testid="grid-given">grid as you gave it: ${esc(gridWords(given))}</div>` : "") +
    tagTempoWords(track).map((w) => `<div class="given" data-testid="tag-tempo">${esc(w)}</div>`).join("") +
    tagDoubts(tags, track).map((d) => `<div class="doubt" data-testid="tag-doubt">? ${esc(d)}</div>`).join("") +
    (match.query.doubts || []).map((d) => `<div class="doubt">? ${esc(d)}</div>`).join("") +
    (match.same_recording || []).map((c) => `<div class="dim" data-testid="same-recording">the library holds ${(c.pieces || 1) > 1 ? "an edit of this recording" : "this recording"} as ${esc(c.name || baseName(c.path || c.track_id))}: not suggested as its partner</div>`).join("");
  // Fixing the grid is for library tracks (an upload is matched once, with "file BPM").
  $("#grid-fix").classList.toggle("hidden", !!match.query.upload);
  $("#grid-bpm").value = ""; $("#grid-downbeat").value = ""; $("#grid-bpb").value = "";
  $("#grid-bpm").placeholder = `${track.tempo.toFixed(2)} BPM`;
  $("#grid-downbeat").placeholder = track.downbeats && track.downbeats.length ? `bar at ${track.downbeats[0].toFixed(2)} s` : "bar at (s)";
  $("#grid-clear").classList.toggle("hidden", !given);
  $("#mashup-audio").classList.add("hidden");
  $("#timeline").innerHTML = "";
  fillWith(track.track_id);
  renderPhrases();
  drawWave(track.track_id, track.duration);
  $("#phrase-view").innerHTML = `<p class="hint">Click a phrase above to see what mixes with it.</p>`;
  // A loop (or any file that is one phrase) has nothing to choose: its partners at once.
  if (track.segments.length === 1) selectPhrase(0);
  renderTracks();
  $("#song").scrollIntoView({ block: "start" });
}

// The tempo and key the file's tags (or the DJ's BPM range) chose over the audio's own
// readings (readings it allows).
function tagTempoWords(track) {
  const e = track.estimates || {};
  const t = (e.tempo && e.tempo.tags) || null, k = (e.key && e.key.tags) || null;
  const out = [];
  const loop = e.grid && e.grid.loop;
  if (loop) out.push(`a loop of ${loop.bars} bar${loop.bars > 1 ? "s" : ""}: tempo from its length, bar 1 at its start`);
  if (t && t.used && t.relation !== "1:1") out.push(`tempo ${t.bpm} from ${t.source === "name" ? "the file's name" : "the file's BPM tag"}, ${t.relation} of the ${Number(t.heard).toFixed(1)} the audio alone reads`);
  if (k && k.used && k.heard !== track.camelot) out.push(`key ${track.camelot} from ${k.source === "name" ? "the file's name" : "the file's key tag"}; the audio alone reads ${k.heard}`);
  const r = e.tempo && e.tempo.range;
  if (r && r.used && Math.abs(r.bpm - r.heard) > 0.01) out.push(`tempo ${Number(r.bpm).toFixed(1)} in your BPM range ${r.range[0]}-${r.range[1]}; the audio alone reads ${Number(r.heard).toFixed(1)}`);
  return out;
}

// Where the file's tags disagree with the analysis (beyond 4 %, octaves allowed for tempo).
function tagDoubts(tags, track) {
  const out = [];
  const named = tags.from_name || [];
  const says = (f) => (named.includes(f) ? "the file's name says" : "the file's tags say");
  if (tags.bpm) {
    const r = tags.bpm / track.tempo;
    if (![0.5, 1, 2].some((m) => Math.abs(r / m - 1) <= 0.04)) out.push(`${says("bpm")} ${tags.bpm} BPM (Fix grid if you hear that)`);
  }
  if (tags.key && tags.key !== track.camelot) out.push(`${says("key")} key ${tags.key}, the analysis ${track.camelot}`);
  return out;
}

function gridWords(g) {
  const w = [];
  if (g.bpm != null) w.push(`${g.bpm} BPM`);
  if (g.downbeat != null) w.push(`a bar starts at ${Number(g.downbeat).toFixed(2)} s`);
  if (g.beats_per_bar != null) w.push(`${g.beats_per_bar} beats per bar`);
  return w.join(", ");
}

// "Fix grid": what the user hears (tempo, where a bar starts, beats per bar); the track is
// analysed again on it and keeps it. Only the fields filled in are sent (they add to what was
// given before).
async function fixGrid(ev) {
  ev.preventDefault();
  const body = {};
  const bpm = $("#grid-bpm").value.trim(), at = $("#grid-downbeat").value.trim(), bpb = $("#grid-bpb").value;
  if (bpm) body.bpm = +bpm;
  if (at) body.downbeat = +at;
  if (bpb) body.beats_per_bar = +bpb;
  if (!Object.keys(body).length) { setStatus("give a BPM, where a bar starts, or beats per bar", true); return; }
  await sendGrid("PUT", body);
}

async function sendGrid(method, body) {
  const id = state.track.track_id, name = trackName(state.track);
  setStatus(`analysing ${name} again…`);
  try {
    const opts = { method };
    if (body) Object.assign(opts, { headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const r = await api(`/api/tracks/${id}/grid`, opts);
    const a = r.after;
    await openTrack(id);
    loadTracks();
    setStatus(`${name}: ${a.tempo.toFixed(2)} BPM, ${a.beats_per_bar}/4` +
      (a.first_downbeat != null ? `, first bar at ${a.first_downbeat.toFixed(2)} s` : "") +
      (r.ratings.orphaned ? ` · ${r.ratings.orphaned} ratings orphaned` : ""));
  } catch (e) { setStatus(e.message, true); }
}

// "Partners from": the whole library, or one chosen track (every phrase of it scored).
function fillWith(currentId) {
  const others = state.tracks.filter((t) => t.track_id !== currentId)
    .sort((a, b) => trackName(a).localeCompare(trackName(b)));
  $("#with").innerHTML = `<option value="">the whole library</option>` +
    others.map((t) => `<option value="${esc(t.track_id)}">${esc(trackName(t))} · ${t.tempo.toFixed(0)} BPM · ${esc(t.camelot)}</option>`).join("");
}

async function matchWith() {
  const w = $("#with").value;
  const body = { track_id: state.track.track_id, top: 5 };
  if (w) Object.assign(body, { with_tracks: [w], per_track: 0 });
  try {
    state.match = await postJSON("/api/match", body);
    renderPhrases();
    if (state.selected !== null) selectPhrase(state.selected);
    else $("#phrase-view").innerHTML = ruledOut() + `<p class="hint">Click a phrase above to see what mixes with it.</p>`;
  } catch (e) { setStatus(e.message, true); }
}

function ruledOut() {
  return (state.match.ruled_out || []).map((r) => `<p class="hint ruled-out" data-testid="ruled-out">${esc(r)}</p>`).join("");
}

function renderPhrases() {
  const t = state.track, dur = t.duration || 1;
  $("#phrases").innerHTML = t.segments.map((s, i) => {
    const n = (state.match.matches.find((m) => m.query_segment === s.id) || { candidates: [] }).candidates.length;
    return `<div class="phrase${state.selected === i ? " selected" : ""}" data-i="${i}" data-testid="phrase"
      style="left:${(100 * s.start) / dur}%;width:${(100 * (s.end - s.start)) / dur}%;background:${camelotColor(s.camelot)};border-top:4px solid ${SECTION_COLORS[s.label] || "#999"}"
      title="${esc(s.label)} · ${clock(s.start)}–${clock(s.end)} · ${esc(s.key)} ${esc(s.mode)} · ${n} partners">
      <span class="k">${esc(s.camelot)}</span>${esc(s.label)}</div>`;
  }).join("");
}

async function drawWave(id, duration) {
  const c = $("#wave"), ctx = c.getContext("2d");
  c.width = c.clientWidth * (window.devicePixelRatio || 1);
  c.height = 90 * (window.devicePixelRatio || 1);
  ctx.clearRect(0, 0, c.width, c.height);
  try {
    const w = await api(`/api/tracks/${id}/waveform?points=${Math.min(2000, Math.max(200, c.width / 2 | 0))}`);
    const mid = c.height / 2, step = c.width / w.peaks.length;
    const t = state.track;
    w.peaks.forEach((p, i) => {
      const time = (i / w.peaks.length) * duration;
      const seg = t.segments.find((s) => time >= s.start && time < s.end);
      ctx.fillStyle = seg ? camelotColor(seg.camelot) : "#555";
      const h = Math.max(1, p * (mid - 2));
      ctx.fillRect(i * step, mid - h, Math.max(1, step - 0.5), 2 * h);
    });
  } catch (e) { /* the waveform is decoration */ }
}

function selectPhrase(i) {
  state.selected = i;
  renderPhrases();
  const seg = state.track.segments[i];
  const m = state.match.matches.find((x) => x.query_segment === seg.id) || { candidates: [] };
  const head = `<h3>Phrase ${i} · ${esc(seg.label)} · ${clock(seg.start)}–${clock(seg.end)} · ${esc(seg.bars)} bars ·
    ${keyChip(seg.camelot)} · ${seg.tempo.toFixed(1)} BPM</h3>`;
  if (!m.candidates.length) {
    const where = $("#with").value ? "of the chosen track" : "in the library";
    $("#phrase-view").innerHTML = head + ruledOut() + `<p class="hint">No phrase ${where} fits within the tempo and key limits.</p>`;
    return;
  }
  const warn = m.no_good_partner
    ? `<p class="hint">No partner fits well: the best ones are listed anyway.</p>`
    : "";
  $("#phrase-view").innerHTML = head + warn + m.candidates.map((c, j) => partnerCard(seg, c, j)).join("");
}

function partnerCard(seg, c, j) {
  const terms = Object.entries(c.terms || {}).map(([k, v]) =>
    `<span>${esc(k)}</span><span class="bar"><i style="width:${Math.round(100 * Math.max(0, Math.min(1, v)))}%"></i></span><span>${(+v).toFixed(2)}</span>`).join("");
  const ratio = { 1: "1:1", 2: "2:1", 0.5: "1:2" }[c.tempo_ratio] || c.tempo_ratio;
  return `<div class="partner" data-j="${j}" data-testid="partner">
    <div class="partner-head"><span class="name" title="${esc(c.path)}">${j + 1}. ${esc(c.name || nameOf(c.track_id, c.path))} #${esc(c.segment.split("_").pop())}</span>
      ${keyChip(c.camelot)} <span class="dim">${esc(c.label || "")} ${clock(c.start)}–${clock(c.end)} · ${ratio} ${(100 * c.stretch).toFixed(1)}% · ${c.semitones > 0 ? "+" : ""}${c.semitones} st${c.cents ? ` ${c.cents > 0 ? "+" : ""}${Math.round(c.cents)} ct` : ""} · ${esc(c.key_relation)}</span>
      <span class="score">${c.score.toFixed(2)}</span></div>
    <div class="reason">${esc(c.reason)}</div>
    <div class="terms">${terms}</div>
    <div class="actions">
      <button class="secondary small" data-play="query">▶ A (this)</button>
      <button class="secondary small" data-play="candidate">▶ B (partner)</button>
      <button class="small" data-play="both">▶ A+B</button>
      <span class="nudge" title="Start the partner a beat earlier or later (where its bar lines are unsure)"><button class="secondary small" data-nudge="-1">◀</button><span class="offset" data-testid="offset">0 beats</span><button class="secondary small" data-nudge="1">▶</button></span>
      <span class="stars" role="group" aria-label="rate">${[1, 2, 3, 4, 5].map((n) => `<button data-rate="${n}" title="${n}/5">★</button>`).join("")}</span>
      <span class="rated"></span>
    </div></div>`;
}

function renderUrl(seg, c, part, offset = 0) {
  if (part === "query") return withToken(`/api/segments/${seg.id}/audio`);
  const p = new URLSearchParams({ query_segment: seg.id, candidate_segment: c.segment, part,
    semitones: String(c.semitones), ratio: String(c.tempo_ratio) });
  if (offset) p.set("offset_beats", String(offset));
  return withToken("/api/render?" + p);
}

function stop() {
  const a = $("#player");
  a.pause();
  document.querySelectorAll("button.playing").forEach((b) => b.classList.remove("playing"));
  state.playing = null;
}

function play(button, url) {
  const a = $("#player");
  if (state.playing === url && !a.paused) { stop(); return; }
  stop();
  state.playing = url;
  button.classList.add("playing");
  setStatus("loading audio…");
  a.src = url;
  a.play().then(() => setStatus("playing")).catch((e) => setStatus("cannot play: " + e.message, true));
}

async function rate(card, seg, c, score) {
  try {
    // the nudge heard (◀ ▶) is part of what was rated
    const offset = +(card.dataset.offset || 0);
    const r = await postJSON("/api/ratings", { query_segment: seg.id, candidate_segment: c.segment, score,
      semitones: c.semitones, tempo_ratio: c.tempo_ratio, offset_beats: offset });
    card.querySelectorAll("[data-rate]").forEach((b) => b.classList.toggle("on", +b.dataset.rate <= score));
    const at = offset ? ` at ${offset > 0 ? "+" : ""}${offset} beat${Math.abs(offset) === 1 ? "" : "s"}` : "";
    card.querySelector(".rated").textContent = `rated ${score}/5${at} (#${r.id})`;
  } catch (e) { card.querySelector(".rated").textContent = e.message; }
}

async function mashup() {
  const t = state.track;
  const btn = $("#mashup");
  btn.disabled = true; btn.textContent = "rendering…";
  try {
    const w = $("#with").value;
    const r = await postJSON("/api/mashup", w ? { track_id: t.track_id, with_tracks: [w] } : { track_id: t.track_id });
    const a = $("#mashup-audio");
    a.classList.remove("hidden");
    a.src = withToken(r.audio);
    const dur = t.duration || 1;
    $("#timeline").innerHTML = r.plan.cues.map((cue) => `<div class="cue" title="${esc((cue.section || "") + " · " + (cue.partner ? nameOf(cue.partner.track_id, cue.partner.path) + " #" + cue.partner.segment.split("_").pop() + (cue.partner_section ? " (" + cue.partner_section + ")" : "") : "alone"))}"
      style="left:${(100 * cue.start) / dur}%;width:${(100 * (cue.end - cue.start)) / dur}%;background:${cue.partner ? camelotColor(cue.partner.camelot) : "#333"}"></div>`).join("");
    a.play().catch(() => {});
    if ((r.plan.ruled_out || []).length) setStatus(r.plan.ruled_out.join("; "), true);
  } catch (e) { setStatus(e.message, true); }
  btn.disabled = false; btn.textContent = "▶ Whole mashup";
}

// ---------------------------------------------------------------------------------- scan, upload

async function scan(ev) {
  ev.preventDefault();
  try {
    // The BPM range the library keeps: sent only when changed (emptied: cleared).
    const range = $("#scan-bpm-range").value.trim();
    const body = { folder: $("#scan-folder").value };
    if (range !== state.bpmRange) body.bpm_range = range || "off";
    const r = await postJSON("/api/library/scan", body);
    state.bpmRange = range;
    state.job = r.job;
    pollJob();
  } catch (e) { setStatus(e.message, true); }
}

async function learn() {
  $("#learn").disabled = true;
  setStatus("learning from your ratings and the library's stems…");
  try {
    const r = await api("/api/models/train", { method: "POST" });
    state.job = r.job;
    pollJob();
  } catch (e) { setStatus(e.message, true); $("#learn").disabled = false; }
}

function jobText(j) {
  if (j.kind === "train") {
    const what = j.stage === "stems" ? `${j.done}/${j.total} stem songs` : j.stage === "lists" ? "matching lead phrases" : j.stage;
    return `learning: ${j.state === "running" ? "" : j.state + " · "}${what}${j.error ? " · " + j.error : ""}`;
  }
  const what = j.stage === "analysing" ? `${j.done}/${j.total} analysed${j.skipped ? `, ${j.skipped} unchanged` : ""}${j.current ? " · " + j.current : ""}` : j.stage;
  return `${j.folder}: ${j.state} · ${what}${j.error ? " · " + j.error : ""}`;
}

function learned(r) {
  const m = r.metrics || {};
  const share = m.blend ?? 0;
  setStatus(`ranker v${r.version} learned from ${m.ratings || 0} ratings and ${m.stem_queries || 0} stem lead phrases: ` +
    (share > 0 ? `its share of the score is ${share.toFixed(2)}`
      : "the rules still decide (it has not yet ranked better than them)") +
    ((r.left_out || []).length ? ` · ${r.left_out.length} stem song(s) left out: ` +
      r.left_out.slice(0, 3).map(([p, why]) => `${p.split("/").pop()} (${why})`).join("; ") : ""));
  if (state.track) openTrack(state.track.track_id);
}

async function loadModels() {
  let r;
  try { r = await api("/api/models"); } catch (e) { return; }
  const models = (r.models || []).slice().reverse();  // newest first
  $("#models summary").textContent = models.length ? `Rankers (${models.length})` : "Rankers";
  $("#model-list").innerHTML = models.length ? models.map((m) => {
    const x = m.metrics || {};
    const when = new Date(m.trained_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    const what = `${x.stem_queries || 0} stem phrases, ${x.ratings || 0} ratings · share ${(x.blend ?? 0).toFixed(2)}`;
    return `<li data-version="${m.version}" class="${m.active ? "active" : ""}">v${m.version} · ${esc(when)} · ${esc(what)}` +
      (m.active ? " · <b>serving</b>" : ` <button type="button" class="small secondary use" data-version="${m.version}">use</button>`) + "</li>";
  }).join("") : "<li>none yet: the rules rank (Learn from ratings trains one)</li>";
}

function fmtLength(s) { return `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`; }

async function loadDuplicates() {
  let r;
  try { r = await api("/api/duplicates"); } catch (e) { setStatus(e.message, true); return; }
  const name = (c) => `<a href="#" class="open" data-id="${esc(c.track_id)}">${esc(c.name || baseName(c.path))}</a>`;
  const groups = (r.groups || []).map((g) => `<li data-testid="dup-group">` + g.copies.map((c, k) =>
    `${k ? "copy" : "<b>keep</b>"} ${name(c)} <span>${esc(c.quality)}</span>`).join(" · ") + "</li>");
  const versions = (r.versions || []).map((f) => `<li data-testid="dup-versions">one recording in ${f.length} versions: ` +
    f.map((c) => `${name(c)} (${fmtLength(c.duration)})`).join(" · ") + " · all kept, never paired</li>");
  const inside = (r.edits || []).filter((e) => e.inside).map((e) => `<li data-testid="dup-inside">${name(e.shorter)} (${fmtLength(e.shorter.duration)}) ` +
    `is heard inside ${name(e.longer)} (${fmtLength(e.longer.duration)}) · never paired</li>`);
  const edits = versions.concat(inside);
  const n = groups.length + edits.length;
  $("#duplicates summary").textContent = n ? `Duplicates (${n})` : "Duplicates";
  $("#dup-list").innerHTML = n ? groups.concat(edits).join("") : "<li>no song is held twice</li>";
}

async function useModel(version) {
  try {
    await api("/api/models/active", { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ version }) });
    setStatus(`ranker v${version} serves now`);
    loadModels();
    if (state.track) openTrack(state.track.track_id);
  } catch (e) { setStatus(e.message, true); }
}

async function pollJob() {
  if (!state.job) return;
  let j;
  try { j = await api("/api/jobs/" + state.job); } catch (e) { setStatus(e.message, true); return; }
  $("#job").classList.remove("hidden");
  $("#job-text").textContent = jobText(j);
  $("#job-bar").max = Math.max(1, j.total);
  $("#job-bar").value = j.done;
  $("#job-cancel").classList.toggle("hidden", !(j.state === "running" || j.state === "queued"));
  if (j.state === "running" || j.state === "queued") { setTimeout(pollJob, 500); return; }
  state.job = null;
  if (j.kind === "train") {
    $("#learn").disabled = false;
    if (j.report) { $("#job").classList.add("hidden"); learned(j.report); loadModels(); }
    else setStatus(jobText(j), j.state === "failed");
    return;
  }
  if (j.report) {
    const held = j.report.same_recording || [];
    const same = new Set(held.filter((c) => !c.edit).map((c) => c.path)).size;
    const edits = new Set(held.filter((c) => c.edit).map((c) => c.path)).size;
    $("#job-text").textContent = `${j.folder}: ${j.state} · ${j.report.analysed} analysed, ${j.report.unchanged} unchanged, ${j.report.failed.length} failed` +
      (same ? ` · ${same} of them already in the library as another file` : "") +
      (edits ? ` · ${edits} edit${edits > 1 ? "s" : ""} of a song already held` : "");
  }
  loadConfig(); loadTracks();
  if ($("#duplicates").open) loadDuplicates();
}

async function upload(ev) {
  const f = ev.target.files[0];
  if (!f) return;
  const fd = new FormData();
  fd.append("file", f);
  fd.append("top", "5");
  const bpm = $("#upload-bpm").value.trim();
  if (bpm) fd.append("bpm", bpm);
  setStatus(`analysing ${f.name}${bpm ? ` at ${bpm} BPM` : ""}…`);
  try {
    const match = await api("/api/match", { method: "POST", body: fd });
    const q = match.query;
    const track = { ...q, duration: q.segments.length ? q.segments[q.segments.length - 1].end : 0 };
    try { Object.assign(track, await api("/api/tracks/" + q.track_id)); } catch (e) { /* not in the library */ }
    track.path = q.path;
    showSong(track, match);
    setStatus(`matched ${f.name}`);
  } catch (e) { setStatus(e.message, true); }
  ev.target.value = "";
}

// ---------------------------------------------------------------------------------- wiring

function wire() {
  ["#search", "#key", "#bpm"].forEach((s) => $(s).addEventListener("input", scheduleSearch));
  $("#kind").addEventListener("change", () => loadTracks());
  document.querySelectorAll("#tracks th").forEach((th) => th.addEventListener("click", () => {
    if (state.sort === th.dataset.sort) state.desc = !state.desc; else { state.sort = th.dataset.sort; state.desc = false; }
    loadTracks();
  }));
  $("#more").addEventListener("click", () => loadTracks(true));
  $("#tracks tbody").addEventListener("click", (ev) => { const tr = ev.target.closest("tr"); if (tr) openTrack(tr.dataset.id); });
  $("#phrases").addEventListener("click", (ev) => { const p = ev.target.closest(".phrase"); if (p) selectPhrase(+p.dataset.i); });
  $("#phrase-view").addEventListener("click", (ev) => {
    const card = ev.target.closest(".partner");
    if (!card) return;
    const seg = state.track.segments[state.selected];
    const c = state.match.matches.find((x) => x.query_segment === seg.id).candidates[+card.dataset.j];
    const b = ev.target.closest("button");
    if (!b) return;
    const offset = +(card.dataset.offset || 0);
    if (b.dataset.play) play(b, renderUrl(seg, c, b.dataset.play, offset));
    if (b.dataset.nudge) {
      // Nudge the partner by its beats and hear the pair again.
      const o = Math.max(-16, Math.min(16, offset + +b.dataset.nudge));
      card.dataset.offset = String(o);
      card.querySelector(".offset").textContent = `${o > 0 ? "+" : ""}${o} beat${Math.abs(o) === 1 ? "" : "s"}`;
      play(card.querySelector("[data-play=both]"), renderUrl(seg, c, "both", o));
    }
    if (b.dataset.rate) rate(card, seg, c, +b.dataset.rate);
  });
  $("#player").addEventListener("ended", stop);
  $("#back").addEventListener("click", () => { stop(); document.querySelector("main").classList.remove("song-open"); });
  $("#mashup").addEventListener("click", mashup);
  $("#with").addEventListener("change", matchWith);
  $("#grid-form").addEventListener("submit", fixGrid);
  // With "Fix grid" open, a click on the waveform says where a bar starts.
  $("#wave").addEventListener("click", (ev) => {
    if (!$("#grid-fix").open || !state.track) return;
    const r = ev.target.getBoundingClientRect();
    const t = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * (state.track.duration || 0);
    $("#grid-downbeat").value = t.toFixed(2);
    $("#grid-downbeat").focus();
  });
  $("#grid-clear").addEventListener("click", () => sendGrid("DELETE", null));
  $("#scan-form").addEventListener("submit", scan);
  $("#learn").addEventListener("click", learn);
  $("#model-list").addEventListener("click", (ev) => { const b = ev.target.closest("button.use"); if (b) useModel(+b.dataset.version); });
  $("#duplicates").addEventListener("toggle", () => { if ($("#duplicates").open) loadDuplicates(); });
  $("#dup-list").addEventListener("click", (ev) => { const a = ev.target.closest("a.open"); if (a) { ev.preventDefault(); openTrack(a.dataset.id); } });
  $("#job-cancel").addEventListener("click", () => state.job && api(`/api/jobs/${state.job}/cancel`, { method: "POST" }).catch((e) => setStatus(e.message, true)));
  $("#upload").addEventListener("change", upload);
  $("#token").addEventListener("change", (ev) => localStorage.setItem("cratedig-token", ev.target.value));
  window.addEventListener("resize", () => state.track && drawWave(state.track.track_id, state.track.duration));
}

wire();
loadConfig().then(loadTracks).catch((e) => setStatus(e.message, true));
loadModels();
