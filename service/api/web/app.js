// The demo page: plain ES module, no dependencies, no CDN (works offline).
const $ = (id) => document.getElementById(id);
let image = null; // { blob, name }
let classifiers = []; // the catalog, for each classifier's input size
let busyTimer = null;

// A spinner with the elapsed time while a request runs (progress counts only whole chunks).
function busy(what) {
  clearInterval(busyTimer);
  $("busy").hidden = !what;
  if (!what) return;
  const started = Date.now();
  const tick = () => {
    $("busy-text").textContent = `${what}… ${((Date.now() - started) / 1000).toFixed(0)} s`;
  };
  tick();
  busyTimer = setInterval(tick, 1000);
}

// A new request: nothing of the last one (copies, certificate, errors) stays on screen.
function clearResults() {
  showError("");
  $("copies").hidden = true;
  for (const id of ["noisy", "denoised", "seen", "preview-warnings", "warnings"]) {
    $(id).replaceChildren();
  }
  $("preview-warnings").hidden = true;
  $("seen-title").hidden = true;
  $("result").hidden = true;
  $("progress-box").hidden = true;
}

function showList(list, texts) {
  list.replaceChildren(
    ...texts.map((text) => Object.assign(document.createElement("li"), { textContent: text })),
  );
  list.hidden = texts.length === 0;
}

function headers() {
  const key = $("key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function problem(response) {
  try {
    const body = await response.json();
    return `${body.title || response.status}: ${body.detail || ""}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new Error(await problem(response));
  return response.json();
}

async function loadCatalog() {
  try {
    let denoisers;
    [classifiers, denoisers] = await Promise.all([
      getJson("/v1/classifiers"),
      getJson("/v1/denoisers"),
    ]);
    fill($("classifier"), classifiers.filter((c) => c.credentials_configured), (c) =>
      `${c.name}${c.kind === "remote" ? ` ($${(c.price_per_query * 1000).toFixed(2)}/1000)` : ""}`);
    fill($("denoiser"), denoisers, (d) => `${d.name}${d.sigma ? ` (σ ${d.sigma})` : ""}`);
    // Without a name the server picks the default's sibling trained for σ (a 422 if none is).
    const auto = new Option("auto: trained for σ", "");
    $("denoiser").prepend(auto);
    auto.selected = true;
    showError("");
  } catch (error) {
    showError(`${error.message} — enter an API key, then reload the lists by changing it.`);
  }
}

function fill(select, items, text) {
  select.replaceChildren(
    ...items.map((item) => {
      const option = new Option(text(item), item.name);
      option.selected = Boolean(item.default);
      return option;
    }),
  );
}

function setImage(blob, name) {
  image = { blob, name };
  $("thumb").src = URL.createObjectURL(blob);
  $("thumb").hidden = false;
}

function form(extra) {
  const data = new FormData();
  data.append("image", image.blob, image.name);
  data.append("sigma", $("sigma").value);
  if ($("denoiser").value) data.append("denoiser", $("denoiser").value);
  for (const [key, value] of Object.entries(extra)) data.append(key, value);
  return data;
}

// The denoised copy as the classifier gets it: resized to its input size.
function resized(url, size) {
  return new Promise((resolve) => {
    const source = new Image();
    source.onload = () => {
      const canvas = Object.assign(document.createElement("canvas"), { width: size, height: size });
      canvas.getContext("2d").drawImage(source, 0, 0, size, size);
      resolve(Object.assign(new Image(), { src: canvas.toDataURL(), alt: `copy at ${size} px` }));
    };
    source.onerror = () => resolve(Object.assign(new Image(), { src: url, alt: "copy" }));
    source.src = url;
  });
}

async function preview() {
  if (!image) return showError("Choose an image or a sample first.");
  clearResults();
  $("preview").disabled = true;
  busy("Denoising 8 copies");
  try {
    const response = await fetch("/v1/preview", { method: "POST", headers: headers(), body: form({ k: "8" }) });
    if (!response.ok) throw new Error(await problem(response));
    const copies = await response.json();
    const tiles = (urls) => urls.map((url) => Object.assign(new Image(), { src: url, alt: "copy" }));
    $("noisy").replaceChildren(...tiles(copies.noisy));
    $("denoised").replaceChildren(...tiles(copies.denoised));
    const chosen = classifiers.find((c) => c.name === $("classifier").value);
    const size = chosen?.input_size;
    if (size) {
      $("seen").replaceChildren(...(await Promise.all(copies.denoised.map((u) => resized(u, size)))));
      $("seen-size").textContent = `${size}×${size} px`;
      $("seen-title").hidden = false;
    }
    const { naturalWidth: w, naturalHeight: h } = $("thumb");
    const shrunk = size && w && (w !== size || h !== size);
    showList($("preview-warnings"), shrunk
      ? [`The classifier sees this ${w}×${h} px image resized to ${size}×${size} px (the row above).`]
      : []);
    $("copies").hidden = false;
  } catch (error) {
    showError(error.message);
  } finally {
    busy("");
    $("preview").disabled = false;
  }
}

// Server-Sent Events over fetch (EventSource cannot send an Authorization header).
async function* events(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new Error(await problem(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: ?(.*)$/m.exec(block)?.[1] ?? "message";
      const data = /^data: ?(.*)$/m.exec(block)?.[1];
      if (data) yield { name, data: JSON.parse(data) };
    }
  }
}

async function certify() {
  if (!image) return showError("Choose an image or a sample first.");
  clearResults();
  $("certify").disabled = true;
  $("progress").removeAttribute("value"); // indeterminate until the first chunk is counted
  $("progress-text").textContent = "";
  $("progress-box").hidden = false;
  busy("Certifying");
  try {
    const extra = { n: $("n").value };
    if ($("classifier").value) extra.classifier = $("classifier").value;
    const response = await fetch("/v1/jobs", { method: "POST", headers: headers(), body: form(extra) });
    if (!response.ok) throw new Error(await problem(response));
    const job = await response.json();
    for await (const event of events(`/v1/jobs/${job.id}/events`)) {
      const { done, planned } = event.data.progress;
      $("progress").max = planned;
      if (done > 0) $("progress").value = done;
      $("progress-text").textContent = `${done.toLocaleString()} of ${planned.toLocaleString()} samples`;
      if (event.name === "end") {
        if (event.data.state !== "succeeded") {
          throw new Error(event.data.error?.detail || `job ${event.data.state}`);
        }
        show(event.data.result);
      }
    }
  } catch (error) {
    showError(error.message);
  } finally {
    busy("");
    $("certify").disabled = false;
  }
}

function show(certificate) {
  $("label").textContent = certificate.abstained
    ? "Abstained"
    : `Label: ${certificate.label}`;
  $("radius").textContent = certificate.abstained
    ? ""
    : `— certified radius ${certificate.radius.toFixed(4)}`;
  const confidence = `${(100 * (1 - certificate.alpha)).toFixed(1)}%`;
  $("explanation").textContent = certificate.abstained
    ? `The votes were not clear enough to certify anything at this confidence ` +
      `(lower bound on the top class's probability ${certificate.p_lower.toFixed(3)} < 0.5).`
    : `With ${confidence} confidence, no change of the image with L2 norm below ` +
      `${certificate.radius.toFixed(4)} (in [0, 1] pixel units) can make the smoothed ` +
      `classifier answer anything but "${certificate.label}".`;
  drawVotes(certificate);
  const q = certificate.queries;
  $("accounting").textContent =
    `${q.total.toLocaleString()} queries (${q.cached.toLocaleString()} from the vote store, ` +
    `${q.failed} failed), cost $${certificate.cost.toFixed(4)}, ` +
    `${certificate.timings.total_s.toFixed(2)} s on ${certificate.device} (${certificate.precision}); ` +
    `classifier ${certificate.classifier.name}, denoiser ${certificate.denoiser.name}.`;
  showList($("warnings"), certificate.warnings || []);
  $("result").hidden = false;
}

function drawVotes(certificate) {
  const svg = $("votes");
  const counts = certificate.top_counts;
  const max = Math.max(1, ...counts.map((c) => c.count));
  const ns = "http://www.w3.org/2000/svg";
  const nodes = [];
  counts.forEach((entry, i) => {
    const y = 10 + i * 32;
    const width = (300 * entry.count) / max;
    const bar = document.createElementNS(ns, "rect");
    Object.entries({ x: 130, y, width, height: 22 }).forEach(([k, v]) => bar.setAttribute(k, v));
    bar.setAttribute("class", entry.label === certificate.label ? "bar" : "bar other");
    const name = document.createElementNS(ns, "text");
    Object.entries({ x: 124, y: y + 16, "text-anchor": "end" }).forEach(([k, v]) => name.setAttribute(k, v));
    name.textContent = entry.label;
    const value = document.createElementNS(ns, "text");
    Object.entries({ x: 136 + width, y: y + 16 }).forEach(([k, v]) => value.setAttribute(k, v));
    value.textContent = entry.count.toLocaleString();
    nodes.push(bar, name, value);
  });
  svg.replaceChildren(...nodes);
}

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) setImage(file, file.name);
});
$("sample").addEventListener("change", async (event) => {
  if (!event.target.value) return;
  const response = await fetch(`/demo/samples/${event.target.value}.png`);
  setImage(await response.blob(), `${event.target.value}.png`);
});
$("key").addEventListener("change", loadCatalog);
$("preview").addEventListener("click", preview);
$("certify").addEventListener("click", certify);
loadCatalog();
