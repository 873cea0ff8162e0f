// The demo page: one tab per task, each calling the service's JSON endpoint. No build step.

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// An API key, when the service asks for one: kept in this tab's session storage only (gone
// when the tab closes), sent as X-API-Key.
const KEY_STORAGE = "model-serving-api-key";
$("#api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
$("#api-key").addEventListener("input", (event) => sessionStorage.setItem(KEY_STORAGE, event.target.value.trim()));

function keyHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { "x-api-key": key } : {};
}

async function send(path, init) {
  const response = await fetch(path, { ...init, headers: { ...init.headers, ...keyHeaders() } });
  const payload = await response.json();
  if (response.status === 401) $("#api-key-box").open = true;  // show where the key goes
  if (!response.ok) throw new Error(payload.error?.message || `HTTP ${response.status}`);  // the API's own words
  return payload;
}

// What answers each task: the task's default model unless the chooser names another model or a
// pinned version (filled from GET /v1/models; shown only when there is a choice).
function choice(task) {
  const select = document.querySelector(`select.model-choice[data-task="${task}"]`);
  return select && select.value ? JSON.parse(select.value) : {};
}

async function showModelChoices() {
  let served;
  try {
    ({ served } = await send("/v1/models", { method: "GET", headers: {} }));
  } catch {
    return;  // a key is needed first, or the service is older: the defaults answer
  }
  for (const select of document.querySelectorAll("select.model-choice")) {
    const options = [element("option", { value: "" }, "default")];
    for (const model of served.filter((m) => m.task === select.dataset.task)) {
      if (!model.default) options.push(element("option", { value: JSON.stringify({ model: model.model }) }, model.model));
      for (const version of model.loaded_versions.length > 1 ? model.loaded_versions : []) {
        const labels = Object.entries(model.labels).filter(([, v]) => v === version).map(([label]) => ` (${label})`).join("");
        options.push(element("option", { value: JSON.stringify({ model: model.model, version }) }, `${model.model} version ${version}${labels}`));
      }
    }
    select.replaceChildren(...options);
    select.closest("label").hidden = options.length < 2;
  }
}
showModelChoices();
$("#api-key").addEventListener("change", showModelChoices);

function answeredBy(answer) {
  return `model ${answer.model ?? ""} version ${answer.model_version}`;
}

async function post(path, body) {
  const task = path.split("/")[2];
  const json = JSON.stringify({ ...body, ...choice(task) });
  return send(path, { method: "POST", headers: { "content-type": "application/json" }, body: json });
}

// Runs a form's request, showing errors in its result box and disabling the button meanwhile.
function handle(form, result, run) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      result.replaceChildren(...(await run()));
    } catch (error) {
      result.replaceChildren(element("p", { class: "error" }, error.message));
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// The API's offsets count Unicode code points; JavaScript strings count UTF-16 units.
function highlight(text, spans) {
  const chars = Array.from(text);
  const nodes = [];
  let position = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    nodes.push(chars.slice(position, span.start).join(""));
    const mark = element("mark", { class: span.className, "data-type": span.label }, chars.slice(span.start, span.end).join(""));
    if (span.label) mark.append(element("small", {}, span.label));
    if (span.probability != null) {  // NER: the entity's own probability, as a tooltip; doubtful ones faded
      mark.title = `${span.label}, probability ${span.probability.toFixed(2)}`;
      mark.dataset.probability = span.probability;
      if (span.probability < 0.6) mark.classList.add("doubtful");
    }
    nodes.push(mark);
    position = span.end;
  }
  nodes.push(chars.slice(position).join(""));
  return nodes;
}

function percent(probability) {
  return `${Math.round(100 * probability)} %`;
}

function table(headings, rows) {
  return element(
    "table", {},
    element("thead", {}, element("tr", {}, ...headings.map((h) => element("th", {}, h)))),
    element("tbody", {}, ...rows.map((row) => element("tr", {}, ...row.map((cell) => element("td", {}, String(cell)))))),
  );
}

// Tabs
for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll("[role=tab]")) {
      other.setAttribute("aria-selected", String(other === tab));
      $(`#${other.dataset.tab}`).hidden = other !== tab;
    }
  });
}

// Entities
handle($("#ner-form"), $("#ner-result"), async () => {
  const text = $("#ner-text").value;
  const answer = await post("/v1/ner", { text });
  const { entities, confidence } = answer;
  const spans = entities.map((e) => ({ ...e, label: e.type, className: `entity-${e.type}` }));
  return [
    element("p", { id: "ner-marked" }, ...highlight(text, spans)),
    element("p", { class: "muted" }, `${entities.length} entities (hover for each one's probability; faded below 0.6) · path probability ${confidence.toFixed(3)} · ${answeredBy(answer)}`),
  ];
});

// Question answering
handle($("#qa-form"), $("#qa-result"), async () => {
  const question = $("#qa-question").value;
  const passages = $("#qa-passages").value.split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean);
  const answer = await post("/v1/qa", { question, passages });
  const shown = passages.map((passage, i) => {
    const spans = answer.answer !== null && answer.passage_index === i
      ? [{ start: answer.start, end: answer.end, className: "answer" }] : [];
    return element("p", { class: "passage", "data-passage": String(i) }, ...highlight(passage, spans));
  });
  const headline = answer.answer === null
    ? element("p", { id: "qa-answer" }, `No answer: the best span's probability (${percent(answer.probability)}) is below the threshold.`)
    : element("p", { id: "qa-answer" }, element("strong", {}, answer.answer), ` · probability ${percent(answer.probability)} · passage ${answer.passage_index + 1}`);
  return [
    headline,
    ...shown,
    table(["candidate", "probability", "score", "passage"], answer.candidates.map((c) => [c.answer, percent(c.probability), c.score.toFixed(3), c.passage_index + 1])),
  ];
});

// Headline
handle($("#headline-form"), $("#headline-result"), async () => {
  const body = {
    text: $("#headline-text").value,
    beam_width: Number($("#headline-beam").value),
    num_candidates: Number($("#headline-n").value),
  };
  const result = await post("/v1/headline", body);
  return [
    element("p", { id: "headline-best", class: "label" }, result.headline),
    table(["candidate", "score", "log-probability"], result.candidates.map((c) => [c.text, c.score.toFixed(3), c.log_prob.toFixed(3)])),
    element("p", { class: "muted" }, `read ${result.chars_read} characters${result.truncated ? " (the text was truncated)" : ""} · ${answeredBy(result)}`),
  ];
});

// Spectra: the file goes to the server's FITS reader (LAMOST, SDSS, DESI; gzip too), which sends
// back the spectrum as the model read it, for the plot.
async function postFile(path, file, name) {
  const form = new FormData();
  form.append("files", file, name);
  form.append("spectrum", "true");
  for (const [name, value] of Object.entries(choice("spectra"))) form.append(name, String(value));
  return send(path, { method: "POST", body: form });
}

function plot(canvas, wavelength, flux) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const margin = { left: 60, right: 12, top: 12, bottom: 36 };
  context.clearRect(0, 0, width, height);
  const shown = flux.filter((f) => f !== 0).sort((a, b) => a - b);
  const low = shown[Math.floor(shown.length * 0.01)] ?? 0, high = shown[Math.floor(shown.length * 0.99)] ?? 1;
  const x = (w) => margin.left + ((w - wavelength[0]) / (wavelength.at(-1) - wavelength[0])) * (width - margin.left - margin.right);
  const y = (f) => height - margin.bottom - ((f - low) / (high - low || 1)) * (height - margin.top - margin.bottom);
  context.strokeStyle = "#8a93a6";
  context.fillStyle = "#4a5468";
  context.font = "12px system-ui";
  context.strokeRect(margin.left, margin.top, width - margin.left - margin.right, height - margin.top - margin.bottom);
  for (let w = Math.ceil(wavelength[0] / 1000) * 1000; w <= wavelength.at(-1); w += 1000) {
    context.fillText(`${w}`, x(w) - 14, height - margin.bottom + 16);
  }
  context.fillText("wavelength (Å)", width / 2 - 40, height - 4);
  context.save();
  context.translate(14, height / 2 + 14);
  context.rotate(-Math.PI / 2);
  context.fillText("flux", 0, 0);
  context.restore();
  context.strokeStyle = "#3b6fd8";
  context.beginPath();
  let drawing = false;
  flux.forEach((f, i) => {
    if (f === 0) { drawing = false; return; }
    const py = Math.min(Math.max(y(f), margin.top), height - margin.bottom);
    if (drawing) context.lineTo(x(wavelength[i]), py); else context.moveTo(x(wavelength[i]), py);
    drawing = true;
  });
  context.stroke();
}

function describeFit(answer) {
  const parts = [];
  if (answer.z !== null) {
    parts.push(answer.label === "STAR"
      ? `radial velocity ${(answer.z * 299792.458).toFixed(0)} ± ${(answer.z_err * 299792.458).toPrecision(2)} km/s`
      : `z = ${answer.z.toFixed(4)} ± ${answer.z_err.toPrecision(2)}`);
  }
  if (answer.subtype) parts.push(`type ${answer.subtype} (best template ${answer.stellar_template})`);
  if (answer.median_snr !== null) parts.push(`median S/N ${answer.median_snr.toFixed(1)}`);
  return parts.join(" · ");
}

async function classify(file, name) {
  const result = $("#spectra-result");
  result.replaceChildren(element("p", { class: "muted" }, `reading ${name}…`));
  try {
    const answer = await postFile("/v1/spectra/fits", file, name);
    const { results } = answer;
    const [first] = results;
    if (first.error) throw new Error(`${name}: ${first.error}`);
    plot($("#spectra-plot"), first.spectrum.wavelength, first.spectrum.flux);
    const rows = Object.entries(first.probabilities).map(([label, p]) => element(
      "tr", {}, element("td", {}, label),
      element("td", {}, element("span", { class: "bar", style: `width:${Math.round(p * 200)}px` }), ` ${p.toFixed(3)}`),
    ));
    const pipeline = first.pipeline?.class
      ? ` · the file's pipeline says ${first.pipeline.class}${first.pipeline.subclass ? ` (${first.pipeline.subclass})` : ""}`
      : "";
    const more = results.length > 1 ? ` · showing row ${first.row} of ${results.length} spectra in the file` : "";
    result.replaceChildren(
      element("p", { id: "spectra-label", class: "label" }, first.label),
      element("p", { id: "spectra-fit" }, describeFit(first)),
      ...(first.warnings.length ? [element("p", { id: "spectra-warnings", class: "warning" }, `warnings: ${first.warnings.join(", ")}`)] : []),
      element("table", {}, element("tbody", {}, ...rows)),
      element("p", { class: "muted" }, `${name} · ${(first.masked_fraction * 100).toFixed(1)} % of pixels masked${pipeline}${more} · ${answeredBy(answer)}`),
    );
  } catch (error) {
    result.replaceChildren(element("p", { class: "error" }, error.message));
  }
}

$("#spectra-file").addEventListener("change", async (event) => {
  const [file] = event.target.files;
  if (file) await classify(file, file.name);
});

$("#spectra-example").addEventListener("change", async (event) => {
  const name = event.target.value;
  if (!name) return;
  const response = await fetch(`/demo/examples/${name}`);
  await classify(await response.blob(), name);
});
