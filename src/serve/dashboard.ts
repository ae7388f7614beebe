// The dashboard at GET /: one static page (plain HTML and JavaScript, no build step, no external
// assets) that polls GET /v1/flagged every two seconds and shows the flagged rate over the
// window, flagged inputs per predicted class, and the latest flagged inputs with B's saliency
// overlays. The page itself holds no data; with --token-file, open it as /#token=TOKEN and it
// sends the token with its requests (the fragment never reaches the server's logs).

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>badexpert — flagged inputs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:16px auto;max-width:1200px;padding:0 16px;color:#111}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:18px 0 6px}
.stats{display:flex;gap:24px;flex-wrap:wrap}.stat b{font-size:26px;display:block}
.bar{display:flex;align-items:center;gap:8px;font-size:13px;margin:2px 0}.bar span.fill{background:#c0392b;height:12px;display:inline-block}
.bar span.name{width:140px;text-align:right}
#latest{display:flex;flex-wrap:wrap;gap:10px}
.flagged-item{border:1px solid #ddd;padding:6px;font-size:12px;width:140px}
.flagged-item img{width:128px;height:128px;image-rendering:pixelated;display:block}
.note{color:#555;font-size:13px}#status.error{color:#c0392b}
</style></head><body>
<h1>badexpert — what the detector flagged</h1>
<p class="note">Overlays: where the backdoor expert B's confidence in the model's label comes from (hot = the trigger, when there is one). Refreshed every 2 s from <code>/v1/flagged</code>. <span id="status">loading…</span></p>
<div class="stats">
<div class="stat"><b id="rate">–</b>flagged rate (window)</div>
<div class="stat"><b id="flagged">–</b>flagged in window</div>
<div class="stat"><b id="scored">–</b>scored in window</div>
<div class="stat"><b id="explained">–</b>overlays made (dropped: <span id="dropped">–</span>)</div>
</div>
<h2>Flagged inputs per predicted class</h2><div id="by-class"></div>
<h2>Latest flagged inputs</h2><div id="latest"><p class="note">none yet</p></div>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { authorization: "Bearer " + token } : {};
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function render(d) {
  const w = d.window;
  document.getElementById("rate").textContent = (100 * w.rate).toFixed(1) + "%";
  document.getElementById("flagged").textContent = String(w.flagged);
  document.getElementById("scored").textContent = String(w.scored);
  document.getElementById("explained").textContent = String(d.feed.explained);
  document.getElementById("dropped").textContent = String(d.feed.dropped);
  const by = document.getElementById("by-class");
  by.replaceChildren();
  const max = Math.max(1, ...w.flaggedByClass.map((c) => c.flagged));
  for (const c of w.flaggedByClass) {
    const row = el("div", { class: "bar", "data-class": c.class });
    row.append(el("span", { class: "name" }, c.class), el("span", { class: "fill", style: "width:" + Math.round(300 * c.flagged / max) + "px" }), el("span", { class: "count" }, String(c.flagged)));
    by.append(row);
  }
  const latest = document.getElementById("latest");
  latest.replaceChildren();
  if (d.recent.length === 0) latest.append(el("p", { class: "note" }, "none yet"));
  for (const f of d.recent) {
    const item = el("div", { class: "flagged-item", "data-seq": String(f.seq) });
    if (f.overlay) item.append(el("img", { src: f.overlay, alt: "saliency overlay of flagged input " + f.seq }));
    item.append(el("div", { class: "label" }, "#" + f.seq + " → " + f.class), el("div", {}, "score " + (f.score === null ? "n/a" : f.score.toFixed(3))), el("div", { class: "note" }, new Date(f.time).toLocaleTimeString() + (f.peak ? " · peak r" + f.peak[0] + " c" + f.peak[1] : "")));
    latest.append(item);
  }
}
async function refresh() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/v1/flagged", { headers });
    if (!r.ok) {
      // The server's message says why (e.g. a baseline detector has no B to make overlays with).
      const why = await r.json().then((b) => (b && b.message ? " — " + b.message : ""), () => "");
      throw new Error("GET /v1/flagged: " + r.status + why + (r.status === 401 ? " (open this page as /#token=YOUR_TOKEN)" : ""));
    }
    render(await r.json());
    status.className = "";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.className = "error";
    status.textContent = String(e.message || e);
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
`;
