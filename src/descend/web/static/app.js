// The descend playground page. Every number it shows comes from the server, which
// computes it with descend itself (ds.parse, ds.compare, ds.fit); this file only asks,
// draws (with Plotly.js, served by the package) and keeps the page state in the URL.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // Colour-blind-safe qualitative palette (Okabe and Ito).
  const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  const colour = (i) => COLOURS[i % COLOURS.length];
  const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  const FALLBACK_MODELS = ["auto", "linear", "logistic", "softmax", "mlp"];
  const FALLBACK_LOSSES = ["auto", "mse", "mae", "huber", "bce_with_logits", "cross_entropy", "hinge"];
  const DEFAULT_OPTIMIZERS = ["gd", "momentum", "adam"];
  const METHOD_LABELS = { batch: "batch", stochastic: "stochastic", minibatch: "mini-batch" };

  const state = {
    functions: [], // GET api/functions
    optimizers: [], // GET api/optimizers
    datasets: [], // GET api/datasets
    nVars: 2,
    variables: ["x", "y"],
    grid: null, // the last api/grid answer
    gridKey: "",
    race: null, // the last api/race answer
    frame: 0,
    nFrames: 0,
    playing: false,
    timer: null,
    view: "contour",
    refineStep: -1,
    parseSeq: 0,
    upload: null, // {upload, columns, n_rows, name}
    run: null, // training run id
    source: null, // EventSource of the training run
  };

  // ------------------------------------------------------------------ helpers
  function fmt(value, digits = 4) {
    if (value === null || value === undefined) return "-";
    if (typeof value !== "number") return String(value);
    if (!Number.isFinite(value)) return String(value);
    if (value === 0) return "0";
    return String(Number(value.toPrecision(digits)));
  }
  // A count in full (fmt would round 12345 to 4 digits); "-" when absent.
  const count = (value) => (value === null || value === undefined ? "-" : String(value));
  const signed = (value, digits = 3) => (value > 0 ? "+" : "") + fmt(value, digits);
  const fmtPoint = (point, digits = 4) =>
    Array.isArray(point) ? "(" + point.map((v) => fmt(v, digits)).join(", ") + ")" : fmt(point, digits);
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function setStatus(text) {
    $("#status").textContent = text;
  }

  class ApiError extends Error {
    constructor(message, field, column, status) {
      super(message);
      this.field = field ?? null;
      this.column = column ?? null;
      this.status = status;
    }
  }

  // Relative URLs, so the page also works when the app is mounted under a prefix.
  async function api(path, body, { form } = {}) {
    const init = {};
    if (form !== undefined) {
      init.method = "POST";
      init.body = form;
    } else if (body !== undefined) {
      init.method = "POST";
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(`the server cannot be reached (${error.message}); is descend playground still running?`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.error ? data.error : `the server answered ${response.status} ${response.statusText}`;
      throw new ApiError(message, data && data.field, data && data.column, response.status);
    }
    return data;
  }

  // ------------------------------------------------------------------ errors next to their control
  function normalField(field) {
    if (!field) return "";
    let name = String(field).replace(/\[(\d+)\]/g, ".$1").replace(/\[['"]?([^\]'"]+)['"]?\]/g, ".$1");
    // optimizers.0.lr means the hyperparameter lr of the first optimizer.
    const match = /^optimizers\.(\d+)\.(?!name$|hyperparams\b)(.+)$/.exec(name);
    if (match) name = `optimizers.${match[1]}.hyperparams.${match[2]}`;
    return name;
  }

  function controlFor(root, field) {
    const name = normalField(field);
    if (!name) return null;
    const controls = $$("[data-field]", root);
    let best = null;
    let bestLength = -1;
    for (const control of controls) {
      const key = control.dataset.field;
      if ((name === key || name.startsWith(key + ".")) && key.length > bestLength) {
        best = control;
        bestLength = key.length;
      }
    }
    return best;
  }

  function clearErrors(root) {
    for (const node of $$(".error", root)) node.textContent = "";
    for (const node of $$(".error.dynamic", root)) node.remove();
    for (const node of $$("[aria-invalid=true]", root)) node.removeAttribute("aria-invalid");
  }

  // Shows `error` next to the control named by its field, else in the fallback slot.
  function showError(root, error, fallback) {
    let field = error.field;
    // "optimizers[1].hyperparams" with "lr must be > 0 ...": the message names the input.
    const word = /^(?:\w+: )?(\w+) /.exec(error.message || "");
    if (word && /hyperparams$/.test(normalField(field)) && controlFor(root, `${normalField(field)}.${word[1]}`)?.dataset.hp === word[1]) {
      field = `${normalField(field)}.${word[1]}`;
    }
    const control = controlFor(root, field);
    const message = error.message || String(error);
    if (control) {
      // A hyperparameter folded away under "N more" is unfolded to show its error.
      for (let fold = control.closest("details"); fold; fold = fold.parentElement.closest("details")) fold.open = true;
      control.setAttribute("aria-invalid", "true");
      let slot = $(`[data-error-for="${CSS.escape(control.dataset.field)}"]`, root);
      if (!slot) {
        slot = document.createElement("p");
        slot.className = "error dynamic";
        slot.id = "error-" + control.dataset.field.replace(/[^\w-]/g, "-");
        slot.dataset.errorFor = control.dataset.field;
        const anchor = control.closest("label, .hp") || control;
        anchor.insertAdjacentElement("afterend", slot);
      }
      slot.textContent = message;
      slot.setAttribute("role", "alert");
      control.setAttribute("aria-errormessage", slot.id || "");
      return slot;
    }
    const slot = $(`[data-error-for="${fallback}"]`, root);
    slot.textContent = message;
    slot.setAttribute("role", "alert");
    return slot;
  }

  // ------------------------------------------------------------------ tabs
  function selectTab(name, { focus = false } = {}) {
    for (const tab of $$("[role=tab]")) {
      const selected = tab.id === `tab-${name}`;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $("#" + tab.getAttribute("aria-controls")).hidden = !selected;
      if (selected && focus) tab.focus();
    }
    state.tab = name;
    for (const id of ["plot", "plot2", "loss-plot"]) {
      const node = document.getElementById(id);
      if (node && node.data) Plotly.Plots.resize(node);
    }
    for (const node of $$(".boundary-plot")) if (node.data) Plotly.Plots.resize(node);
    writeUrl();
  }
  for (const tab of $$("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab.id.slice(4)));
    tab.addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        selectTab(state.tab === "functions" ? "training" : "functions", { focus: true });
        event.preventDefault();
      }
    });
  }

  // ------------------------------------------------------------------ functions: inputs
  const exprInput = $("#expr");
  const fnSelect = $("#testfn");
  const startInput = $("#start");
  const boundsInput = $("#bounds");
  const fnForm = $("#fn-form");

  const selectedFunction = () => state.functions.find((f) => f.name === fnSelect.value) || null;

  function parseNumberList(text, field, what) {
    const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const numbers = parts.map(Number);
    if (numbers.some((v) => !Number.isFinite(v))) {
      throw new ApiError(`${what} must be numbers separated by commas, e.g. "0, 0"; got "${text}"`, field);
    }
    return numbers;
  }

  function readStart() {
    const numbers = parseNumberList(startInput.value, "start", "the start point");
    if (numbers.length !== state.nVars) {
      throw new ApiError(
        `the start point has ${numbers.length} number(s) for ${state.nVars} variable(s) (${state.variables.join(", ")}); give one each`,
        "start",
      );
    }
    return numbers;
  }

  function readBounds() {
    const text = boundsInput.value.trim();
    const pairs = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const bounds = pairs.map((pair) => pair.split(":").map((s) => Number(s.trim())));
    const bad = bounds.some((b) => b.length !== 2 || !b.every(Number.isFinite) || !(b[0] < b[1]));
    if (bad || bounds.length !== state.nVars) {
      throw new ApiError(
        `the plot range must be lo:hi with lo < hi for each of the ${state.nVars} variable(s), e.g. "${Array(state.nVars).fill("-5:5").join(", ")}"; got "${text}"`,
        "bounds",
      );
    }
    return bounds;
  }

  function problem() {
    const fn = selectedFunction();
    return fn ? { function: fn.name } : { expression: exprInput.value };
  }

  function defaultBounds(n) {
    return Array(n).fill("-5:5").join(", ");
  }

  // Keeps the start and range inputs when they fit the number of variables.
  function fitInputsTo(n, fn) {
    const startCount = startInput.value.split(",").filter((s) => s.trim() !== "").length;
    if (fn && fn.start) {
      if (!state.keepInputs) startInput.value = fn.start.map((v) => fmt(v, 6)).join(", ");
    } else if (startCount !== n) {
      startInput.value = Array(n).fill("0").join(", ");
    }
    const boundsCount = boundsInput.value.split(",").filter((s) => s.trim() !== "").length;
    if (fn && fn.bounds) {
      if (!state.keepInputs) boundsInput.value = fn.bounds.map((b) => `${fmt(b[0], 6)}:${fmt(b[1], 6)}`).join(", ");
    } else if (boundsCount !== n) {
      boundsInput.value = defaultBounds(n);
    }
  }

  function renderParse(info, fn) {
    const box = $("#parse-info");
    exprInput.removeAttribute("aria-invalid");
    const vars = info.variables;
    const rows = vars
      .map((v, i) => `<li><span class="math">∂f/∂${escapeHtml(v)}</span> = <code class="derivative">${escapeHtml(info.derivatives[i] ?? "")}</code></li>`)
      .join("");
    box.innerHTML =
      (fn ? `<p>${escapeHtml(fn.name)}: ${fn.n_vars} variables${fn.minimum !== null && fn.minimum !== undefined ? `, minimum ${fmt(fn.minimum, 6)}` : ""}</p>` : "") +
      `<p>variables: <span id="variables">${vars.map(escapeHtml).join(", ")}</span></p>` +
      (rows ? `<ul id="derivatives" class="derivatives">${rows}</ul>` : "");
    box.className = "parse-info ok";
  }

  // The parser's message with the offending part of the text marked.
  function renderParseError(error, text) {
    const box = $("#parse-info");
    exprInput.setAttribute("aria-invalid", "true");
    let shown = `<code class="expr-echo">${escapeHtml(text)}</code>`;
    const column = error.column;
    if (Number.isInteger(column) && column >= 1 && column <= text.length + 1) {
      const start = column - 1;
      let end = start + 1;
      if (/[\w]/.test(text[start] || "")) while (end < text.length && /[\w]/.test(text[end])) end++;
      shown =
        `<code class="expr-echo">${escapeHtml(text.slice(0, start))}` +
        `<mark class="bad" id="parse-error-mark" title="column ${column}">${escapeHtml(text.slice(start, end) || " ")}</mark>` +
        `${escapeHtml(text.slice(end))}</code>`;
    }
    box.innerHTML = `<p class="error" id="parse-error" role="alert">${escapeHtml(error.message)}</p>${shown}`;
    box.className = "parse-info bad";
  }

  let parseTimer = null;
  function scheduleParse() {
    clearTimeout(parseTimer);
    parseTimer = setTimeout(updateFunction, 150);
  }

  // Parses the expression (or reads the test function), then redraws the map.
  async function updateFunction() {
    const seq = ++state.parseSeq;
    const fn = selectedFunction();
    exprInput.readOnly = Boolean(fn);
    try {
      let info;
      if (fn) {
        if (fn.expression) exprInput.value = fn.expression;
        info = fn.expression
          ? await api("api/parse", { expression: fn.expression })
          : { variables: Array.from({ length: fn.n_vars }, (_, i) => `x${i + 1}`), derivatives: [] };
        if (info.variables.length !== fn.n_vars) {
          info = { variables: Array.from({ length: fn.n_vars }, (_, i) => info.variables[i] || `x${i + 1}`), derivatives: info.derivatives };
        }
      } else {
        info = await api("api/parse", { expression: exprInput.value });
      }
      if (seq !== state.parseSeq) return;
      state.variables = info.variables;
      state.nVars = info.variables.length;
      renderParse(info, fn);
      fitInputsTo(state.nVars, fn);
      state.keepInputs = false;
      $("#run").disabled = state.nVars === 0;
      await updateGrid();
    } catch (error) {
      if (seq !== state.parseSeq) return;
      if (error instanceof ApiError && error.status) renderParseError(error, exprInput.value);
      else showError(fnForm, error, "race");
    }
  }

  async function updateGrid() {
    const n = state.nVars;
    $("#mode-label").textContent =
      n === 1 ? "one variable: the curve and its tangent" : n === 2 ? "two variables" : `${n} variables: value and gradient norm per iteration`;
    $(".view-switch button#view-contour").hidden = n !== 2;
    $(".view-switch button#view-surface").hidden = n !== 2;
    if (n > 2 || n === 0) {
      state.grid = null;
      drawRace();
      return;
    }
    let bounds;
    try {
      bounds = readBounds();
    } catch (error) {
      showError(fnForm, error, "race");
      return;
    }
    const key = JSON.stringify([problem(), bounds]);
    if (key === state.gridKey && state.grid) {
      drawRace();
      return;
    }
    const seq = state.parseSeq;
    try {
      const grid = await api("api/grid", { ...problem(), bounds, n: n === 1 ? 300 : 120 });
      if (seq !== state.parseSeq) return;
      clearFieldError("bounds");
      state.grid = { ...grid, bounds, n };
      state.gridKey = key;
      if (!state.race || state.race.nVars !== n) state.race = null;
      drawRace();
    } catch (error) {
      showError(fnForm, error, "race");
    }
  }

  function clearFieldError(field) {
    for (const node of $$(`.error[data-error-for="${field}"]`, fnForm)) node.textContent = "";
    const control = $(`[data-field="${field}"]`, fnForm);
    if (control) control.removeAttribute("aria-invalid");
  }

  exprInput.addEventListener("input", () => {
    state.race = null;
    scheduleParse();
  });
  fnSelect.addEventListener("change", () => {
    state.race = null;
    state.gridKey = "";
    clearErrors(fnForm);
    if (!fnSelect.value) exprInput.readOnly = false;
    updateFunction();
  });
  boundsInput.addEventListener("change", () => {
    clearFieldError("bounds");
    updateGrid();
  });
  startInput.addEventListener("change", () => {
    clearFieldError("start");
    drawRace();
  });

  // ------------------------------------------------------------------ optimizers and their hyperparameters
  function hpText(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.map((v) => (v === null ? "None" : String(v))).join(", ");
    return String(value);
  }

  // One hyperparameter's input (in its box, with its label), showing its value in
  // `hyperparams` or else its default; the `fixed` kind is shown disabled.
  function hpControl(hp, hyperparams = {}) {
    const wrap = document.createElement("div");
    wrap.className = "hp";
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.dataset.hp = hp.name;
    input.dataset.kind = hp.kind;
    const given = Object.prototype.hasOwnProperty.call(hyperparams, hp.name);
    if (hp.kind === "fixed") {
      // Takes a function or an optimizer: shown, not settable from the page.
      input.type = "text";
      input.disabled = true;
      input.value = hpText(hp.default) || "None";
      label.textContent = hp.name;
      wrap.append(label, input);
    } else if (hp.kind === "bool") {
      input.type = "checkbox";
      input.checked = Boolean(given ? hyperparams[hp.name] : hp.default);
      label.className = "check";
      label.append(input, " " + hp.name);
      wrap.appendChild(label);
    } else {
      input.type = "text";
      input.spellcheck = false;
      input.value = hpText(given ? hyperparams[hp.name] : hp.default);
      input.placeholder = hp.default === null ? "None" : "";
      label.textContent = hp.name;
      wrap.append(label, input);
    }
    input.title = `${hp.name} (default ${hp.default === null ? "None" : hpText(hp.default)})`;
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
    return wrap;
  }

  // The inputs of `spec`'s hyperparameters (but those in `skip`): the first few (lr,
  // betas, momentum...) in view, the rest one click away, unless given a value.
  function hpGrids(spec, hyperparams = {}, skip = []) {
    const grid = document.createElement("div");
    grid.className = "hps";
    const more = document.createElement("details");
    more.className = "more-hps";
    const moreTitle = document.createElement("summary");
    const moreGrid = document.createElement("div");
    moreGrid.className = "hps";
    more.append(moreTitle, moreGrid);
    const shown = 3;
    spec.hyperparams
      .filter((hp) => !skip.includes(hp.name))
      .forEach((hp, position) => {
        const given = Object.prototype.hasOwnProperty.call(hyperparams, hp.name);
        (position < shown || given ? grid : moreGrid).appendChild(hpControl(hp, hyperparams));
      });
    const hidden = moreGrid.children.length;
    if (!hidden) return [grid];
    moreTitle.textContent = `${hidden} more hyperparameter${hidden > 1 ? "s" : ""}`;
    return [grid, more];
  }

  // {name: value} of the inputs under `root` whose value differs from the default.
  function changedHyperparams(root, spec, field) {
    const hyperparams = {};
    for (const hp of spec.hyperparams) {
      if (hp.kind === "fixed") continue;
      const input = $(`input[data-hp="${CSS.escape(hp.name)}"]`, root);
      if (!input) continue;
      const value = parseHp(input, hp, `${field}.${hp.name}`);
      if (!same(value, hp.default) && !(value === null && hp.default === null)) hyperparams[hp.name] = value;
    }
    return hyperparams;
  }

  function addOptimizer(name, hyperparams = {}) {
    const spec = state.optimizers.find((o) => o.name === name);
    if (!spec) return;
    const card = document.createElement("div");
    card.className = "optimizer";
    card.dataset.name = name;
    const title = document.createElement("div");
    title.className = "optimizer-title";
    title.innerHTML = `<span class="swatch"></span><strong>${escapeHtml(name)}</strong> <small class="muted">${escapeHtml(spec.reference || "")}</small>`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${name}`);
    remove.addEventListener("click", () => {
      card.remove();
      reindexOptimizers();
    });
    title.appendChild(remove);
    card.appendChild(title);
    if (spec.summary) {
      const summary = document.createElement("p");
      summary.className = "muted summary";
      summary.textContent = spec.summary.replace(/:\w+:`([^`]*)`/g, "$1").replace(/``([^`]*)``/g, "$1");
      card.appendChild(summary);
    }
    card.append(...hpGrids(spec, hyperparams));
    $("#optimizers").appendChild(card);
    reindexOptimizers();
  }

  // Labels, ids and error fields follow the order of the request's list.
  function reindexOptimizers() {
    $$("#optimizers .optimizer").forEach((card, i) => {
      card.dataset.field = `optimizers.${i}`;
      $(".swatch", card).style.background = colour(i);
      for (const input of $$("input[data-hp]", card)) {
        const id = `opt-${i}-${input.dataset.hp}`;
        input.id = id;
        input.dataset.field = `optimizers.${i}.hyperparams.${input.dataset.hp}`;
        const label = input.closest(".hp").querySelector("label");
        if (label && input.type !== "checkbox") label.htmlFor = id;
      }
    });
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function parseHp(input, spec, field) {
    const text = input.value.trim();
    if (spec.kind === "bool") return input.checked;
    if (text === "" || text === "None" || text === "null") return null;
    if (spec.kind === "number") {
      const value = Number(text);
      if (text.toLowerCase() === "inf") return text;
      if (!Number.isFinite(value)) throw new ApiError(`${spec.name} must be a number, e.g. ${hpText(spec.default) || "0.01"}; got "${text}"`, field);
      return value;
    }
    if (spec.kind === "pair") {
      return text.split(",").map((part) => {
        const s = part.trim().replace(/^[([]|[)\]]$/g, "");
        if (s === "None" || s === "null") return null;
        const value = Number(s);
        if (!Number.isFinite(value)) throw new ApiError(`${spec.name} must be numbers separated by commas, e.g. ${hpText(spec.default)}; got "${text}"`, field);
        return value;
      });
    }
    return text;
  }

  // [{name, hyperparams}] with only the hyperparameters changed from their defaults.
  function readOptimizers() {
    const cards = $$("#optimizers .optimizer");
    if (!cards.length) throw new ApiError("add at least one optimizer to race", "optimizers");
    return cards.map((card, i) => {
      const spec = state.optimizers.find((o) => o.name === card.dataset.name);
      return { name: spec.name, hyperparams: changedHyperparams(card, spec, `optimizers.${i}.hyperparams`) };
    });
  }

  $("#opt-add-button").addEventListener("click", () => {
    addOptimizer($("#opt-add").value);
    writeUrl();
  });

  // ------------------------------------------------------------------ the race
  async function runRace(event) {
    if (event) event.preventDefault();
    clearErrors(fnForm);
    stop();
    let body;
    try {
      body = { ...problem(), start: readStart(), optimizers: readOptimizers() };
      const maxIter = Number($("#max_iter").value);
      if (!Number.isInteger(maxIter) || maxIter < 1) throw new ApiError(`max_iter must be an integer >= 1, got "${$("#max_iter").value}"`, "max_iter");
      const tol = Number($("#tol").value);
      if (!Number.isFinite(tol) || tol < 0) throw new ApiError(`tol must be a number >= 0, got "${$("#tol").value}"`, "tol");
      body.max_iter = maxIter;
      body.tol = tol;
    } catch (error) {
      showError(fnForm, error, "race");
      return;
    }
    const button = $("#run");
    button.disabled = true;
    setStatus("racing…");
    const started = performance.now();
    try {
      const race = await api("api/race", body);
      race.nVars = state.nVars;
      for (const run of race.runs) {
        // A run without a recorded path (the server keeps none) still has its values.
        if (!run.path) run.path = run.values.map(() => []);
        if (!run.gradients) run.gradients = run.values.map(() => []);
      }
      race.request = body;
      state.race = race;
      state.refineStep = -1;
      writeUrl({ run: true });
      renderTable(race);
      renderReproduce(race);
      drawRace({ fresh: true });
      setStatus(`race answered in ${Math.round(performance.now() - started)} ms`);
      play();
    } catch (error) {
      showError(fnForm, error, "race");
      setStatus("");
    } finally {
      button.disabled = false;
    }
  }
  fnForm.addEventListener("submit", runRace);

  function renderTable(race) {
    const table = $("#results");
    const body = $("tbody", table);
    body.innerHTML = "";
    race.runs.forEach((run, i) => {
      const row = document.createElement("tr");
      row.dataset.label = run.label;
      const cells = [
        ["label", `<span class="swatch" style="background:${colour(i)}"></span>${escapeHtml(run.label)}`],
        ["nit", escapeHtml(run.nit)],
        ["n_iter_to_tol", escapeHtml(count(run.n_iter_to_tol))],
        ["n_fev", escapeHtml(count(run.n_fev))],
        ["fun", escapeHtml(fmt(run.fun, 6))],
        ["distance", escapeHtml(fmt(run.distance, 3))],
        ["x", escapeHtml(fmtPoint(run.x))],
        ["reason", escapeHtml(run.reason)],
        ["seconds", escapeHtml(fmt(run.seconds, 3))],
      ];
      row.innerHTML = cells.map(([key, html], j) => (j === 0 ? `<th scope="row" data-col="${key}">${html}</th>` : `<td data-col="${key}">${html}</td>`)).join("");
      body.appendChild(row);
    });
    table.hidden = false;
  }

  function renderReproduce(race) {
    $("#python-code").textContent = race.python || "";
    $("#cli-code").textContent = race.cli || "";
    $("#reproduce").hidden = false;
  }

  async function copyText(text, what) {
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else throw new Error("no clipboard");
      $("#copy-status").textContent = `${what} copied`;
    } catch {
      // Without clipboard access, select the text so that Ctrl+C copies it.
      const node = what === "Python" ? $("#python-code") : what === "command line" ? $("#cli-code") : null;
      if (node) window.getSelection().selectAllChildren(node);
      $("#copy-status").textContent = `${what} selected: press Ctrl+C to copy`;
    }
  }
  $("#copy-python").addEventListener("click", () => copyText($("#python-code").textContent, "Python"));
  $("#copy-cli").addEventListener("click", () => copyText($("#cli-code").textContent, "command line"));
  $("#copy-link").addEventListener("click", () => copyText(location.href, "link"));

  // ------------------------------------------------------------------ drawing the functions tab
  // Maps z onto the index of the log-spaced levels, piecewise linearly, so that Plotly's
  // evenly spaced contours (at 0, 1, 2, ...) fall exactly on the server's levels.
  function levelIndex(z, levels) {
    if (z === null || !Number.isFinite(z)) return null;
    const n = levels.length;
    if (z <= levels[0]) return (z - levels[0]) / Math.max(levels[1] - levels[0], 1e-300);
    if (z >= levels[n - 1]) return n - 1 + (z - levels[n - 1]) / Math.max(levels[n - 1] - levels[n - 2], 1e-300);
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (levels[mid] <= z) lo = mid;
      else hi = mid;
    }
    return lo + (z - levels[lo]) / (levels[hi] - levels[lo]);
  }

  // The same array for the same grid, so that Plotly.react sees the map unchanged
  // between races and redraws only the paths.
  function levelGrid(grid, levels) {
    if (!grid.t) grid.t = grid.z.map((row) => row.map((z) => levelIndex(z, levels)));
    return grid.t;
  }

  function levelsOf(grid) {
    if (Array.isArray(grid.levels) && grid.levels.length >= 2) return grid.levels;
    const flat = grid.z.flat().filter(Number.isFinite);
    const lo = Math.min(...flat);
    const hi = Math.max(...flat);
    const span = hi - lo || 1;
    return Array.from({ length: 20 }, (_, i) => lo + span * (Math.pow(10, (i / 19) * 4) - 1) / 9999);
  }

  function runsOf() {
    return state.race && state.race.nVars === state.nVars ? state.race.runs : [];
  }

  function baseLayout(extra = {}) {
    return {
      margin: { l: 55, r: 20, t: 30, b: 45 },
      showlegend: true,
      legend: { orientation: "h", y: -0.15 },
      hovermode: "closest",
      uirevision: state.gridKey,
      ...extra,
    };
  }

  const hoverTemplate2d =
    "<b>%{fullData.name}</b><br>iteration %{customdata[0]}<br>point (%{x:.4g}, %{y:.4g})<br>value %{customdata[1]:.6g}<br>gradient norm %{customdata[2]:.3g}<extra></extra>";

  function customData(run) {
    return run.path.map((_, k) => [k, run.values[k], run.grad_norms[k]]);
  }

  function startMarker() {
    let start = null;
    try {
      start = readStart();
    } catch {
      start = null;
    }
    return start;
  }

  // Draws the whole plot for the current mode; frames then only restyle the paths.
  function drawRace({ fresh = false } = {}) {
    const runs = runsOf();
    state.nFrames = runs.length ? Math.max(...runs.map((r) => r.path.length)) : 0;
    if (fresh) state.frame = 0;
    state.frame = Math.min(state.frame, Math.max(state.nFrames - 1, 0));
    const slider = $("#iteration");
    slider.max = String(Math.max(state.nFrames - 1, 0));
    slider.value = String(state.frame);
    for (const id of ["play", "step", "step-back", "iteration"]) $("#" + id).disabled = !runs.length;
    const plot = $("#plot");
    const plot2 = $("#plot2");
    plot2.hidden = state.nVars <= 2;
    if (state.nVars === 2 && state.grid && state.grid.z && Array.isArray(state.grid.z[0])) {
      if (state.view === "surface") drawSurface(plot, runs);
      else drawContour(plot, runs);
    } else if (state.nVars === 1 && state.grid) {
      drawCurve(plot, runs);
    } else if (state.nVars > 2) {
      drawCurves(plot, plot2, runs);
    } else {
      Plotly.purge(plot);
    }
    $("#refine").hidden = !(state.nVars === 1 && runs.some((r) => r.refine && r.refine.length));
    showFrame();
  }

  // The marker of a run's current iterate, moved by the animation (empty until then).
  function currentTrace(run, i, type, marker) {
    const trace = {
      type,
      mode: "markers",
      name: run.label + " (current)",
      showlegend: false,
      x: [],
      y: [],
      marker: { color: colour(i), ...marker },
      hoverinfo: "skip",
      meta: { run: i, kind: "current" },
    };
    if (type === "scatter3d") trace.z = [];
    return trace;
  }
  function drawContour(plot, runs) {
    const grid = state.grid;
    const levels = levelsOf(grid);
    const t = levelGrid(grid, levels);
    const tickIdx = levels.map((_, i) => i).filter((i) => i % Math.ceil(levels.length / 8) === 0);
    const traces = [
      {
        type: "contour",
        name: "f",
        x: grid.x,
        y: grid.y,
        z: t,
        customdata: grid.z,
        hovertemplate: "(%{x:.4g}, %{y:.4g})<br>f = %{customdata:.5g}<extra>click to start here</extra>",
        contours: { start: 0, end: levels.length - 1, size: 1, coloring: "heatmap", showlines: true },
        line: { width: 0.6, color: "rgba(255,255,255,0.5)" },
        colorscale: "Viridis",
        reversescale: false,
        colorbar: { title: { text: "f" }, tickvals: tickIdx, ticktext: tickIdx.map((i) => fmt(levels[i], 3)), len: 0.8 },
        showlegend: false,
      },
      {
        type: "scatter",
        mode: "markers",
        name: "known minimizers",
        x: (grid.minimizers || []).map((m) => m[0]),
        y: (grid.minimizers || []).map((m) => m[1]),
        marker: { symbol: "x-thin", size: 14, line: { width: 3, color: "#ffffff" } },
        hovertemplate: "known minimizer (%{x:.4g}, %{y:.4g})<extra></extra>",
      },
    ];
    const start = startMarker();
    traces.push({
      type: "scatter",
      mode: "markers",
      name: "start",
      x: start ? [start[0]] : [],
      y: start ? [start[1]] : [],
      marker: { symbol: "star", size: 16, color: "#F0E442", line: { width: 1, color: "#000" } },
      hovertemplate: "start (%{x:.4g}, %{y:.4g})<extra></extra>",
    });
    runs.forEach((run, i) => {
      traces.push({
        type: "scatter",
        mode: "lines+markers",
        name: run.label,
        x: [],
        y: [],
        customdata: [],
        line: { color: colour(i), width: 2.5 },
        marker: { size: 4, color: colour(i) },
        hovertemplate: hoverTemplate2d,
        meta: { run: i, kind: "path" },
      });
      traces.push(currentTrace(run, i, "scatter", { size: 11, line: { width: 2, color: "#fff" } }));
    });
    const [bx, by] = grid.bounds;
    const layout = baseLayout({
      xaxis: { title: { text: state.variables[0] }, range: bx, constrain: "domain" },
      yaxis: { title: { text: state.variables[1] }, range: by },
      dragmode: false,
    });
    state.pathStart = 3;
    Plotly.react(plot, traces, layout, PLOT_CONFIG);
    bindMapClick(plot);
  }

  function drawSurface(plot, runs) {
    const grid = state.grid;
    const levels = levelsOf(grid);
    const t = levelGrid(grid, levels);
    const traces = [
      {
        type: "surface",
        name: "f",
        x: grid.x,
        y: grid.y,
        z: grid.z,
        surfacecolor: t,
        colorscale: "Viridis",
        showscale: false,
        opacity: 0.85,
        hovertemplate: "(%{x:.4g}, %{y:.4g})<br>f = %{z:.5g}<extra>click to start here</extra>",
      },
    ];
    // The start, at the height of the grid point nearest to it (for the eye only).
    const start = startMarker();
    const nearest = (axis, v) => axis.reduce((best, a, i) => (Math.abs(a - v) < Math.abs(axis[best] - v) ? i : best), 0);
    traces.push({
      type: "scatter3d",
      mode: "markers",
      name: "start",
      x: start ? [start[0]] : [],
      y: start ? [start[1]] : [],
      z: start ? [grid.z[nearest(grid.y, start[1])][nearest(grid.x, start[0])]] : [],
      marker: { symbol: "diamond", size: 6, color: "#F0E442", line: { width: 1, color: "#000" } },
      hovertemplate: "start (%{x:.4g}, %{y:.4g})<extra></extra>",
    });
    runs.forEach((run, i) => {
      traces.push({
        type: "scatter3d",
        mode: "lines",
        name: run.label,
        x: [],
        y: [],
        z: [],
        customdata: [],
        line: { color: colour(i), width: 6 },
        hovertemplate:
          "<b>%{fullData.name}</b><br>iteration %{customdata[0]}<br>point (%{x:.4g}, %{y:.4g})<br>value %{z:.6g}<br>gradient norm %{customdata[2]:.3g}<extra></extra>",
        meta: { run: i, kind: "path" },
      });
      traces.push(currentTrace(run, i, "scatter3d", { size: 5 }));
    });
    const layout = baseLayout({
      scene: {
        xaxis: { title: { text: state.variables[0] } },
        yaxis: { title: { text: state.variables[1] } },
        zaxis: { title: { text: "f" } },
      },
    });
    state.pathStart = 2;
    Plotly.react(plot, traces, layout, PLOT_CONFIG);
    bindMapClick(plot);
  }

  function drawCurve(plot, runs) {
    const grid = state.grid;
    const finite = grid.z.filter(Number.isFinite);
    const lo = Math.min(...finite);
    const hi = Math.max(...finite);
    const pad = (hi - lo || 1) * 0.08;
    const traces = [
      {
        type: "scatter",
        mode: "lines",
        name: "f",
        x: grid.x,
        y: grid.z,
        line: { color: "#444", width: 2 },
        hovertemplate: `${escapeHtml(state.variables[0])} = %{x:.4g}<br>f = %{y:.5g}<extra>click to start here</extra>`,
      },
      {
        type: "scatter",
        mode: "markers",
        name: "known minimizers",
        x: (grid.minimizers || []).map((m) => (Array.isArray(m) ? m[0] : m)),
        y: (grid.minimizers || []).map(() => lo),
        marker: { symbol: "x-thin", size: 12, line: { width: 3, color: "#000" } },
        hovertemplate: "known minimizer %{x:.4g}<extra></extra>",
      },
    ];
    runs.forEach((run, i) => {
      traces.push({
        type: "scatter",
        mode: "lines+markers",
        name: run.label,
        x: [],
        y: [],
        customdata: [],
        line: { color: colour(i), width: 1, dash: "dot" },
        marker: { size: 6, color: colour(i) },
        hovertemplate:
          "<b>%{fullData.name}</b><br>iteration %{customdata[0]}<br>point %{x:.4g}<br>value %{customdata[1]:.6g}<br>|derivative| %{customdata[2]:.3g}<extra></extra>",
        meta: { run: i, kind: "path" },
      });
      traces.push(currentTrace(run, i, "scatter", { size: 12, line: { width: 2, color: "#fff" } }));
      traces.push({
        type: "scatter",
        mode: "lines",
        name: run.label + " tangent",
        showlegend: false,
        x: [],
        y: [],
        line: { color: colour(i), width: 2 },
        hoverinfo: "skip",
        meta: { run: i, kind: "tangent" },
      });
    });
    const layout = baseLayout({
      xaxis: { title: { text: state.variables[0] }, range: grid.bounds[0] },
      yaxis: { title: { text: "f" }, range: [lo - pad, hi + pad] },
      dragmode: false,
    });
    state.pathStart = 2;
    Plotly.react(plot, traces, layout, PLOT_CONFIG);
    bindMapClick(plot);
  }

  function drawCurves(plot, plot2, runs) {
    const value = runs.map((run, i) => ({
      type: "scatter",
      mode: "lines",
      name: run.label,
      x: [],
      y: [],
      line: { color: colour(i), width: 2 },
      hovertemplate: "<b>%{fullData.name}</b><br>iteration %{x}<br>value %{y:.6g}<extra></extra>",
      meta: { run: i, kind: "value" },
    }));
    const norm = runs.map((run, i) => ({
      type: "scatter",
      mode: "lines",
      name: run.label,
      x: [],
      y: [],
      line: { color: colour(i), width: 2 },
      hovertemplate: "<b>%{fullData.name}</b><br>iteration %{x}<br>gradient norm %{y:.3g}<extra></extra>",
      meta: { run: i, kind: "grad_norm" },
    }));
    state.pathStart = 0;
    Plotly.react(plot, value, baseLayout({ title: { text: "value per iteration" }, xaxis: { title: { text: "iteration" } }, yaxis: { title: { text: "f" } } }), PLOT_CONFIG);
    Plotly.react(plot2, norm, baseLayout({ title: { text: "gradient norm per iteration" }, xaxis: { title: { text: "iteration" } }, yaxis: { title: { text: "‖∇f‖" }, type: "log" } }), PLOT_CONFIG);
  }

  // Click (or Enter on the focused map) sets the start point.
  function bindMapClick(plot) {
    if (plot.dataset.clickBound) return;
    plot.dataset.clickBound = "1";
    plot.on("plotly_click", (data) => {
      const hit = data.points && data.points[0];
      if (state.nVars > 2 || !hit) return;
      const surface = state.nVars === 2 && state.view === "surface";
      // On the 3-D surface, the grid point under the pointer (Plotly picks it).
      if (surface && !(hit.data && hit.data.type === "surface")) return;
      const layout = plot._fullLayout;
      let x = hit.x;
      let y = hit.y;
      const ev = data.event;
      if (!surface && layout && layout.xaxis && ev && typeof ev.clientX === "number") {
        const box = plot.getBoundingClientRect();
        const xa = layout.xaxis;
        const ya = layout.yaxis;
        x = xa.p2c(ev.clientX - box.left - xa._offset);
        y = ya.p2c(ev.clientY - box.top - ya._offset);
      }
      const [bx, by] = state.grid.bounds;
      const digits = (range) => Math.max(0, 3 - Math.floor(Math.log10(range[1] - range[0])));
      // Rounded to about a thousandth of the plot's range: the start the race uses.
      const point = (state.nVars === 1 ? [x] : [x, y]).map((v, i) => Number(v.toFixed(digits(i === 0 ? bx : by))));
      startInput.value = point.join(", ");
      clearFieldError("start");
      if (state.nVars === 2 && state.view === "contour") {
        Plotly.restyle(plot, { x: [[point[0]]], y: [[point[1]]] }, [2]);
      } else if (surface) {
        Plotly.restyle(plot, { x: [[point[0]]], y: [[point[1]]], z: [[hit.z]] }, [1]);
      }
      writeUrl();
      setStatus(`start set to (${startInput.value}); press Run`);
    });
  }

  function frameOf(run, k) {
    return Math.min(k, run.path.length - 1);
  }

  // Shows iteration `state.frame` of every run: paths so far, current points, the
  // gradient (2-D) or the tangent (1-D), and the numbers in the read-out.
  function showFrame() {
    const runs = runsOf();
    const plot = $("#plot");
    const k = state.frame;
    $("#iteration").value = String(k);
    $("#iteration-out").textContent = String(k);
    if (!runs.length || !plot.data) {
      $("#readout").innerHTML = "";
      return;
    }
    const readout = [];
    const xs = [];
    const ys = [];
    const zs = [];
    const cds = [];
    const idx = [];
    const annotations = [];
    const shapes = [];
    const threeD = state.nVars === 2 && state.view === "surface";
    plot.data.forEach((trace, t) => {
      if (!trace.meta || trace.meta.kind === undefined) return;
      const run = runs[trace.meta.run];
      const j = frameOf(run, k);
      const path = run.path.slice(0, j + 1);
      if (state.nVars > 2) return;
      if (trace.meta.kind === "path") {
        xs.push(path.map((p) => p[0]));
        ys.push(state.nVars === 1 ? run.values.slice(0, j + 1) : path.map((p) => p[1]));
        zs.push(run.values.slice(0, j + 1));
        cds.push(customData(run).slice(0, j + 1));
      } else if (trace.meta.kind === "current") {
        xs.push([run.path[j][0]]);
        ys.push([state.nVars === 1 ? run.values[j] : run.path[j][1]]);
        zs.push([run.values[j]]);
        cds.push([]);
      } else if (trace.meta.kind === "tangent") {
        const [lo, hi] = state.grid.bounds[0];
        const half = (hi - lo) * 0.12;
        const x0 = run.path[j][0];
        const slope = run.gradients[j][0];
        const f0 = run.values[j];
        xs.push([x0 - half, x0 + half]);
        ys.push([f0 - slope * half, f0 + slope * half]);
        zs.push([]);
        cds.push([]);
      }
      idx.push(t);
    });
    if (state.nVars > 2) drawCurvesFrame(runs, k);
    runs.forEach((run, i) => {
      const j = frameOf(run, k);
      const g = run.gradients[j];
      const swatch = `<span class="swatch" style="background:${colour(i)}"></span>`;
      if (state.nVars === 1) {
        const d = g[0];
        const v = state.variables[0];
        const move = d > 0 ? `derivative ${signed(d)} &gt; 0: decrease ${escapeHtml(v)}` : d < 0 ? `derivative ${signed(d)} &lt; 0: increase ${escapeHtml(v)}` : `derivative 0: ${escapeHtml(v)} is a stationary point, stop`;
        readout.push(`<li data-run="${i}">${swatch}<b>${escapeHtml(run.label)}</b> iteration ${j}: ${escapeHtml(v)} = ${fmt(run.path[j][0], 6)}, f = ${fmt(run.values[j], 6)}; <span class="move">${move}</span></li>`);
        const crossing = bracketShownAt(run);
        if (run.bracket && crossing !== null && j >= crossing) {
          const [a, b] = [Math.min(...run.bracket), Math.max(...run.bracket)];
          shapes.push(bracketShape([a, b], colour(i), 0.12));
          readout.push(`<li class="bracket">${swatch}the derivative changed sign between ${fmt(a, 6)} and ${fmt(b, 6)}: a minimum lies in this bracket</li>`);
        }
      } else if (state.nVars === 2) {
        readout.push(
          `<li data-run="${i}">${swatch}<b>${escapeHtml(run.label)}</b> iteration ${j}: point ${fmtPoint(run.path[j])}, f = ${fmt(run.values[j], 6)}, ∇f = <span class="gradient">${fmtPoint(g, 3)}</span>, ‖∇f‖ = ${fmt(run.grad_norms[j], 3)}</li>`,
        );
        if (!threeD) annotations.push(...gradientArrow(run.path[j], g, colour(i)));
      } else {
        readout.push(`<li data-run="${i}">${swatch}<b>${escapeHtml(run.label)}</b> iteration ${j}: f = ${fmt(run.values[j], 6)}, ‖∇f‖ = ${fmt(run.grad_norms[j], 3)}, point ${fmtPoint(run.path[j], 4)}</li>`);
      }
    });
    if (state.nVars === 1 && state.refineStep >= 0) {
      const run = runs.find((r) => r.refine && r.refine.length);
      if (run) shapes.push(bracketShape(run.refine[state.refineStep], "#000", 0.25));
    }
    if (state.nVars <= 2 && idx.length) {
      // One redraw per frame: the traces and the arrows / brackets together.
      const update = threeD ? { x: xs, y: ys, z: zs, customdata: cds } : { x: xs, y: ys, customdata: cds };
      Plotly.update(plot, update, threeD ? {} : { annotations, shapes }, idx);
    }
    $("#readout").innerHTML = `<ul>${readout.join("")}</ul>`;
  }

  // The first iteration at which the derivative has changed sign (when the bracket appears).
  function bracketShownAt(run) {
    if (!run.bracket) return null;
    for (let k = 1; k < run.gradients.length; k++) {
      if (Math.sign(run.gradients[k][0]) !== Math.sign(run.gradients[k - 1][0])) return k;
    }
    return run.path.length - 1;
  }

  function bracketShape([a, b], fill, opacity) {
    return { type: "rect", xref: "x", yref: "paper", x0: Math.min(a, b), x1: Math.max(a, b), y0: 0, y1: 1, fillcolor: fill, opacity, line: { width: 0 }, layer: "below" };
  }

  // The gradient drawn from the current iterate, scaled to a visible length, with its value.
  function gradientArrow(point, g, lineColour) {
    const norm = Math.hypot(g[0], g[1]);
    if (!(norm > 0) || !Number.isFinite(norm)) return [];
    const [bx, by] = state.grid.bounds;
    const length = 0.12;
    const tip = [point[0] + (g[0] / norm) * length * (bx[1] - bx[0]), point[1] + (g[1] / norm) * length * (by[1] - by[0])];
    return [
      {
        x: tip[0], y: tip[1], ax: point[0], ay: point[1], xref: "x", yref: "y", axref: "x", ayref: "y",
        showarrow: true, arrowhead: 2, arrowsize: 1.2, arrowwidth: 2, arrowcolor: lineColour, text: "",
      },
      {
        x: tip[0], y: tip[1], xref: "x", yref: "y", showarrow: false, text: `∇f = ${fmtPoint(g, 3)}`,
        font: { size: 11, color: lineColour }, bgcolor: "rgba(255,255,255,0.8)", xanchor: "left", yanchor: "bottom",
      },
    ];
  }

  function drawCurvesFrame(runs, k) {
    const plot = $("#plot");
    const plot2 = $("#plot2");
    const xs = [];
    const values = [];
    const norms = [];
    runs.forEach((run) => {
      const j = frameOf(run, k);
      xs.push(Array.from({ length: j + 1 }, (_, i) => i));
      values.push(run.values.slice(0, j + 1));
      norms.push(run.grad_norms.slice(0, j + 1));
    });
    const indices = runs.map((_, i) => i);
    if (plot.data) Plotly.restyle(plot, { x: xs, y: values }, indices);
    if (plot2.data) Plotly.restyle(plot2, { x: xs, y: norms }, indices);
  }

  // ------------------------------------------------------------------ animation
  // Iterations per frame; "auto" plays any race in about 150 frames.
  function speed() {
    const chosen = $("#speed").value;
    if (chosen === "auto") return Math.max(1, Math.ceil(state.nFrames / 150));
    return Number(chosen) || 1;
  }
  function setPlaying(playing) {
    state.playing = playing;
    $("#play").textContent = playing ? "Pause" : "Play";
    $("#play").setAttribute("aria-pressed", String(playing));
  }
  function tick() {
    if (!state.playing) return;
    if (state.frame >= state.nFrames - 1) {
      setPlaying(false);
      return;
    }
    state.frame = Math.min(state.frame + speed(), state.nFrames - 1);
    showFrame();
    state.timer = setTimeout(() => requestAnimationFrame(tick), 30);
  }
  function play() {
    if (!runsOf().length) return;
    if (state.frame >= state.nFrames - 1) state.frame = 0;
    setPlaying(true);
    tick();
  }
  function stop() {
    clearTimeout(state.timer);
    setPlaying(false);
  }
  $("#play").addEventListener("click", () => (state.playing ? stop() : play()));
  $("#step").addEventListener("click", () => {
    stop();
    state.frame = Math.min(state.frame + 1, state.nFrames - 1);
    showFrame();
  });
  $("#step-back").addEventListener("click", () => {
    stop();
    state.frame = Math.max(state.frame - 1, 0);
    showFrame();
  });
  $("#iteration").addEventListener("input", () => {
    stop();
    state.frame = Number($("#iteration").value);
    showFrame();
  });
  $("#refine-step").addEventListener("click", () => {
    const run = runsOf().find((r) => r.refine && r.refine.length);
    if (!run) return;
    state.refineStep = (state.refineStep + 1) % run.refine.length;
    const [a, b] = run.refine[state.refineStep];
    $("#refine-text").textContent = `refine, bisection step ${state.refineStep + 1} of ${run.refine.length} (${run.label}): the minimum lies in [${fmt(a, 8)}, ${fmt(b, 8)}]`;
    showFrame();
  });
  for (const view of ["contour", "surface"]) {
    $("#view-" + view).addEventListener("click", () => {
      state.view = view;
      $("#view-contour").setAttribute("aria-pressed", String(view === "contour"));
      $("#view-surface").setAttribute("aria-pressed", String(view === "surface"));
      const plot = $("#plot");
      Plotly.purge(plot);
      delete plot.dataset.clickBound;
      drawRace();
      writeUrl();
    });
  }

  // ------------------------------------------------------------------ training tab
  const trainForm = $("#train-form");
  const datasetSelect = $("#dataset");
  const targetSelect = $("#target");

  function fillSelect(select, values, selected, labels = {}) {
    select.innerHTML = "";
    for (const value of values) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = labels[value] || value;
      option.selected = value === selected;
      select.appendChild(option);
    }
  }

  // A shipped dataset's target is fixed; an upload's is any column of its header.
  function setColumns(columns, target, choosable) {
    fillSelect(targetSelect, choosable ? columns : [target], target);
    targetSelect.disabled = !choosable;
    setFeatures(columns.filter((c) => c !== target));
  }

  // The feature choice: all features, or one or two columns (the boundary's axes).
  const featureSelects = [$("#feature-1"), $("#feature-2")];
  function setFeatures(columns, chosen = featureSelects.map((s) => s.value)) {
    const keep = (value) => (columns.includes(value) ? value : "");
    fillSelect(featureSelects[0], ["", ...columns], keep(chosen[0]), { "": "all features" });
    fillSelect(featureSelects[1], ["", ...columns], keep(chosen[1]), { "": "none" });
    featuresChanged();
  }
  function featuresChanged() {
    featureSelects[1].disabled = !featureSelects[0].value;
    if (!featureSelects[0].value) featureSelects[1].value = "";
  }
  for (const select of featureSelects) select.addEventListener("change", featuresChanged);
  targetSelect.addEventListener("change", () => {
    if (datasetSelect.value === "__upload__" && state.upload) {
      setFeatures(state.upload.columns.filter((c) => c !== targetSelect.value));
    }
  });

  function readFeatures() {
    const [first, second] = featureSelects.map((s) => (s.disabled ? "" : s.value));
    if (!first) return null;
    if (second === first) throw new ApiError(`choose two different features (both are "${first}"), or "none" as the second`, "features");
    return second ? [first, second] : [first];
  }

  // The training optimizer's hyperparameters but lr (its own input), as in an
  // optimizer card of the functions tab.
  function trainOptimizerChanged(hyperparams = {}) {
    const box = $("#train-hps");
    box.innerHTML = "";
    const spec = state.optimizers.find((o) => o.name === $("#optimizer").value);
    if (!spec) return;
    box.append(...hpGrids(spec, hyperparams, ["lr"]));
    for (const input of $$("input[data-hp]", box)) {
      input.id = `train-hp-${input.dataset.hp}`;
      input.dataset.field = `hyperparams.${input.dataset.hp}`;
      const label = input.closest(".hp").querySelector("label");
      if (label && input.type !== "checkbox") label.htmlFor = input.id;
    }
  }
  $("#optimizer").addEventListener("change", () => {
    clearErrors(trainForm);
    trainOptimizerChanged();
    writeUrl();
  });

  function readTrainHyperparams() {
    const spec = state.optimizers.find((o) => o.name === $("#optimizer").value);
    return spec ? changedHyperparams($("#train-hps"), spec, "hyperparams") : {};
  }

  function currentDataset() {
    return state.datasets.find((d) => d.name === datasetSelect.value) || null;
  }

  function datasetChanged() {
    clearErrors(trainForm);
    if (datasetSelect.value === "__upload__" && state.upload) {
      setColumns(state.upload.columns, state.upload.columns[state.upload.columns.length - 1], true);
      $("#batch_size").max = String(Math.max(2, state.upload.n_rows));
      return;
    }
    const dataset = currentDataset();
    if (!dataset) return;
    setColumns(dataset.columns || [], dataset.target, false);
    $("#batch_size").max = String(Math.max(2, Math.min(512, dataset.n_samples)));
  }
  datasetSelect.addEventListener("change", datasetChanged);
  $("#batch_size").addEventListener("input", () => {
    $("#batch_size-out").textContent = $("#batch_size").value;
  });

  $("#csv").addEventListener("change", async () => {
    const file = $("#csv").files[0];
    if (!file) return;
    clearErrors(trainForm);
    const form = new FormData();
    form.append("file", file);
    $("#upload-info").textContent = `uploading ${file.name}…`;
    try {
      const answer = await api("api/upload", undefined, { form });
      state.upload = { ...answer, name: file.name };
      let option = $('#dataset option[value="__upload__"]');
      if (!option) {
        option = document.createElement("option");
        option.value = "__upload__";
        datasetSelect.appendChild(option);
      }
      option.textContent = `${file.name} (uploaded, ${answer.n_rows} rows)`;
      datasetSelect.value = "__upload__";
      $("#upload-info").textContent = `${file.name}: ${answer.n_rows} rows, columns ${answer.columns.join(", ")}; choose the target`;
      datasetChanged();
    } catch (error) {
      $("#upload-info").textContent = "";
      showError(trainForm, { ...error, message: error.message, field: error.field || "file" }, "file");
    }
  });

  function readTraining() {
    const body = {};
    if (datasetSelect.value === "__upload__") {
      body.upload = state.upload.upload;
      body.target = targetSelect.value;
    } else body.dataset = datasetSelect.value;
    body.model = $("#model").value;
    if ($("#loss").value && $("#loss").value !== "auto") body.loss = $("#loss").value;
    body.optimizer = $("#optimizer").value;
    const lrText = $("#lr").value.trim();
    const lr = Number(lrText);
    if (lrText && !(lr > 0)) throw new ApiError(`lr must be a number > 0 (empty: the optimizer's default), got "${lrText}"`, "lr");
    body.lr = lrText ? lr : null;
    const epochs = Number($("#epochs").value);
    if (!Number.isInteger(epochs) || epochs < 1) throw new ApiError(`epochs must be an integer >= 1, got "${$("#epochs").value}"`, "epochs");
    body.epochs = epochs;
    body.batch_size = Number($("#batch_size").value);
    body.seed = Number($("#seed").value) || 0;
    const patienceText = $("#patience").value.trim();
    const patience = Number(patienceText);
    if (patienceText && !(Number.isInteger(patience) && patience >= 1)) throw new ApiError(`patience must be an integer >= 1 (empty: no early stopping), got "${patienceText}"`, "patience");
    if (patienceText) body.patience = patience;
    body.methods = $$('input[name="methods"]', trainForm).filter((c) => c.checked).map((c) => c.value);
    if (!body.methods.length) throw new ApiError("choose at least one update method", "methods");
    const features = readFeatures();
    if (features) body.features = features;
    const hyperparams = readTrainHyperparams();
    if (Object.keys(hyperparams).length) body.hyperparams = hyperparams;
    return body;
  }

  const training = { traces: {}, rows: {}, boundary: {}, points: null, pending: [], flushTimer: null, done: new Set() };

  function setupTraining(methods) {
    const traces = [];
    training.traces = {};
    methods.forEach((method, i) => {
      const c = colour(i);
      training.traces[method] = { loss: traces.length, val: traces.length + 1 };
      traces.push({ type: "scatter", mode: "lines+markers", name: `${METHOD_LABELS[method] || method} loss`, x: [], y: [], line: { color: c, width: 2 }, marker: { size: 3 }, meta: { method, kind: "loss" } });
      traces.push({ type: "scatter", mode: "lines", name: `${METHOD_LABELS[method] || method} val_loss`, x: [], y: [], line: { color: c, width: 2, dash: "dash" }, meta: { method, kind: "val_loss" } });
    });
    Plotly.react(
      $("#loss-plot"),
      traces,
      { margin: { l: 60, r: 20, t: 45, b: 45 }, title: { text: "loss per epoch (solid: training, dashed: validation)" }, xaxis: { title: { text: "epoch" } }, yaxis: { title: { text: "loss" }, type: "log" }, legend: { orientation: "h", y: -0.2 }, hovermode: "x unified" },
      PLOT_CONFIG,
    );
    const body = $("#methods-table tbody");
    body.innerHTML = "";
    training.rows = {};
    methods.forEach((method, i) => {
      const row = document.createElement("tr");
      row.dataset.method = method;
      row.innerHTML =
        `<th scope="row"><span class="swatch" style="background:${colour(i)}"></span>${escapeHtml(METHOD_LABELS[method] || method)}</th>` +
        ["epoch", "loss", "val_loss", "metric", "updates", "per_epoch", "seconds", "status", "checkpoint"].map((c) => `<td data-col="${c}">-</td>`).join("");
      body.appendChild(row);
      training.rows[method] = row;
    });
    $("#methods-table").hidden = false;
    const boundaries = $("#boundaries");
    boundaries.innerHTML = "";
    // A place per method, in the order of the table (filled when its first boundary arrives).
    for (const method of methods) {
      const node = document.createElement("div");
      node.id = `boundary-${method}`;
      node.className = "boundary-slot";
      boundaries.appendChild(node);
    }
    training.boundary = {};
    training.points = null;
    training.pending = [];
    training.done = new Set();
  }

  function setCell(method, column, html) {
    const row = training.rows[method];
    if (row) $(`[data-col="${column}"]`, row).innerHTML = html;
  }

  // Epochs arrive faster than a browser redraws a plot: they are queued, and drawn
  // together at most ten times a second.
  function onEpoch(event) {
    if (!training.traces[event.method]) return;
    training.pending.push(event);
    if (!training.flushTimer) training.flushTimer = setTimeout(flushEpochs, 100);
  }

  function flushEpochs() {
    training.flushTimer = null;
    const events = training.pending;
    training.pending = [];
    if (!events.length) return;
    const columns = new Map(); // trace index -> [xs, ys]
    const add = (index, x, y) => {
      if (!columns.has(index)) columns.set(index, [[], []]);
      columns.get(index)[0].push(x);
      columns.get(index)[1].push(y);
    };
    const latest = {};
    for (const event of events) {
      const where = training.traces[event.method];
      add(where.loss, event.epoch, event.loss);
      if (event.val_loss !== null && event.val_loss !== undefined) add(where.val, event.epoch, event.val_loss);
      latest[event.method] = event;
    }
    const indices = Array.from(columns.keys());
    Plotly.extendTraces($("#loss-plot"), { x: indices.map((i) => columns.get(i)[0]), y: indices.map((i) => columns.get(i)[1]) }, indices);
    for (const event of Object.values(latest)) {
      setCell(event.method, "epoch", escapeHtml(event.epoch));
      setCell(event.method, "loss", escapeHtml(fmt(event.loss, 5)));
      setCell(event.method, "val_loss", escapeHtml(fmt(event.val_loss, 5)));
      const name = event.metric_name || "metric";
      const metric = event.val_metric !== undefined && event.val_metric !== null ? `val_${name} ${fmt(event.val_metric, 4)}` : `${name} ${fmt(event.metric, 4)}`;
      setCell(event.method, "metric", escapeHtml(event.metric !== null && event.metric !== undefined ? metric : "-"));
      setCell(event.method, "updates", escapeHtml(event.updates));
      setCell(event.method, "per_epoch", escapeHtml(event.epoch ? count(event.updates / event.epoch) : "-"));
      setCell(event.method, "seconds", escapeHtml(fmt(event.seconds, 3)));
      if (!training.done.has(event.method)) setCell(event.method, "status", "training");
    }
  }

  function onBoundary(event) {
    const method = event.method;
    if (event.points) training.points = event.points;
    let node = document.getElementById(`boundary-${method}`);
    if (!node || node.className !== "plot boundary-plot") {
      if (!node) {
        node = document.createElement("div");
        node.id = `boundary-${method}`;
        $("#boundaries").appendChild(node);
      }
      node.className = "plot boundary-plot";
      node.setAttribute("aria-label", `Decision boundary of ${METHOD_LABELS[method] || method}`);
    }
    const b = event.boundary;
    const traces = [];
    const points = training.points;
    const [xName, yName] = training.axes || ["", ""];
    if (b.y && b.z) {
      // One colour scale for the prediction and the points' labels (classes, or the
      // target's values), so that a point of class k sits on the colour of region k.
      const values = b.z.flat().concat(points ? points.label : []).filter(Number.isFinite);
      const range = { min: Math.min(...values), max: Math.max(...values) };
      traces.push({ type: "contour", x: b.x, y: b.y, z: b.z, zmin: range.min, zmax: range.max, colorscale: "RdBu", opacity: 0.6, showscale: false, contours: { coloring: "heatmap" }, hoverinfo: "skip", name: "prediction", meta: { kind: "boundary" } });
      if (points) {
        traces.push({
          type: "scatter", mode: "markers", x: points.x, y: points.y, name: "training rows", meta: { kind: "points" },
          marker: { size: 5, color: points.label, cmin: range.min, cmax: range.max, colorscale: "RdBu", line: { width: 0.6, color: "#000" } },
          customdata: points.label,
          hovertemplate: `${escapeHtml(xName)} %{x:.4g}<br>${escapeHtml(yName)} %{y:.4g}<br>${escapeHtml(training.target || "target")} %{customdata}<extra></extra>`,
        });
      }
    } else {
      if (points) traces.push({ type: "scatter", mode: "markers", x: points.x, y: points.y, marker: { size: 4, color: "#888" }, name: "training rows", meta: { kind: "points" } });
      traces.push({ type: "scatter", mode: "lines", x: b.x, y: b.z || b.y, line: { width: 3, color: "#D55E00" }, name: "fitted", meta: { kind: "boundary" } });
    }
    const title = `${METHOD_LABELS[method] || method}${event.epoch ? `, epoch ${event.epoch}` : ""}`;
    const layout = {
      margin: { l: 50, r: 10, t: 30, b: 40 }, title: { text: title, font: { size: 13 } }, showlegend: false, uirevision: "b",
      xaxis: { title: { text: xName, font: { size: 11 } } }, yaxis: { title: { text: yName, font: { size: 11 } } },
    };
    Plotly.react(node, traces, layout, { displayModeBar: false, responsive: true });
  }

  function onDone(event) {
    flushEpochs();
    training.done.add(event.method);
    setCell(event.method, "status", escapeHtml(event.reason || "done"));
    if (state.run) {
      const href = `api/train/${encodeURIComponent(state.run)}/checkpoint?method=${encodeURIComponent(event.method)}`;
      setCell(event.method, "checkpoint", `<a href="${href}" download="${escapeHtml(event.method)}.ckpt">download</a>`);
    }
  }

  function finishTraining(message) {
    flushEpochs();
    if (state.source) state.source.close();
    state.source = null;
    $("#stop").disabled = true;
    $("#train").disabled = false;
    setStatus(message);
  }

  async function startTraining(event) {
    if (event) event.preventDefault();
    clearErrors(trainForm);
    let body;
    try {
      body = readTraining();
    } catch (error) {
      showError(trainForm, error, "train");
      return;
    }
    $("#train").disabled = true;
    writeUrl();
    try {
      const answer = await api("api/train", body);
      state.run = answer.run;
      setupTraining(body.methods);
      training.target = body.target || (currentDataset() || {}).target || "";
      const columns = body.features || (datasetSelect.value === "__upload__" ? state.upload.columns.filter((c) => c !== body.target) : (currentDataset() || {}).columns || []);
      training.axes = columns.length === 1 ? [columns[0], training.target] : columns.slice(0, 2);
      $("#stop").disabled = false;
      setStatus("training…");
      const source = new EventSource(`api/train/${encodeURIComponent(answer.run)}/events`);
      state.source = source;
      source.onmessage = (message) => {
        const data = JSON.parse(message.data);
        if (data.end) finishTraining("training finished");
        else if (data.error) {
          showError(trainForm, new ApiError(data.error, data.field), "train");
          if (data.method) {
            training.done.add(data.method);
            setCell(data.method, "status", `error: ${escapeHtml(data.error)}`);
          }
        } else if (data.done) onDone(data);
        else if (data.boundary) onBoundary(data);
        else if (data.epoch !== undefined) onEpoch(data);
      };
      source.onerror = () => {
        if (state.source === source) finishTraining("the stream of the training run closed");
      };
    } catch (error) {
      $("#train").disabled = false;
      showError(trainForm, error, "train");
    }
  }
  trainForm.addEventListener("submit", startTraining);
  $("#stop").addEventListener("click", async () => {
    if (!state.run) return;
    $("#stop").disabled = true;
    try {
      await api(`api/train/${encodeURIComponent(state.run)}/stop`, {});
      setStatus("stopping…");
    } catch (error) {
      showError(trainForm, error, "train");
    }
  });

  // ------------------------------------------------------------------ the page state in the URL
  function writeUrl({ run } = {}) {
    if (state.loading) return;
    const params = new URLSearchParams();
    params.set("tab", state.tab || "functions");
    const fn = selectedFunction();
    if (fn) params.set("fn", fn.name);
    else params.set("expr", exprInput.value);
    params.set("x0", startInput.value);
    params.set("bounds", boundsInput.value);
    try {
      params.set("opt", JSON.stringify(readOptimizers()));
    } catch {
      /* an unreadable hyperparameter keeps the last link */
    }
    params.set("max_iter", $("#max_iter").value);
    params.set("tol", $("#tol").value);
    params.set("view", state.view);
    if (run || (state.race && runsOf().length)) params.set("run", "1");
    params.set("dataset", datasetSelect.value === "__upload__" ? "" : datasetSelect.value);
    params.set("target", targetSelect.value);
    params.set("model", $("#model").value);
    params.set("loss", $("#loss").value);
    params.set("optimizer", $("#optimizer").value);
    params.set("lr", $("#lr").value);
    params.set("epochs", $("#epochs").value);
    params.set("batch_size", $("#batch_size").value);
    params.set("patience", $("#patience").value);
    params.set("methods", $$('input[name="methods"]', trainForm).filter((c) => c.checked).map((c) => c.value).join(","));
    params.set("features", JSON.stringify(featureSelects.map((s) => s.value).filter((v) => v)));
    try {
      params.set("thp", JSON.stringify(readTrainHyperparams()));
    } catch {
      /* an unreadable hyperparameter keeps the last link */
    }
    history.replaceState(null, "", "#" + params.toString());
  }

  function readUrl() {
    const params = new URLSearchParams(location.hash.slice(1));
    const get = (key) => params.get(key);
    if (get("fn") && state.functions.some((f) => f.name === get("fn"))) fnSelect.value = get("fn");
    else if (get("expr") !== null) exprInput.value = get("expr");
    if (get("x0") !== null) startInput.value = get("x0");
    if (get("bounds") !== null) boundsInput.value = get("bounds");
    state.keepInputs = get("x0") !== null;
    if (get("max_iter")) $("#max_iter").value = get("max_iter");
    if (get("tol")) $("#tol").value = get("tol");
    if (get("view") === "surface") {
      state.view = "surface";
      $("#view-contour").setAttribute("aria-pressed", "false");
      $("#view-surface").setAttribute("aria-pressed", "true");
    }
    let optimizers = DEFAULT_OPTIMIZERS.map((name) => ({ name, hyperparams: {} }));
    if (get("opt")) {
      try {
        optimizers = JSON.parse(get("opt"));
      } catch {
        setStatus("the link's optimizer list is not readable; using the defaults");
      }
    }
    for (const o of optimizers) addOptimizer(o.name, o.hyperparams || {});
    if (get("dataset") && state.datasets.some((d) => d.name === get("dataset"))) {
      datasetSelect.value = get("dataset");
      datasetChanged();
    }
    if (get("target") && $$("option", targetSelect).some((o) => o.value === get("target"))) {
      targetSelect.value = get("target");
      targetSelect.dispatchEvent(new Event("change"));
    }
    for (const key of ["model", "loss", "optimizer", "lr", "epochs", "batch_size", "patience"]) {
      const node = document.getElementById(key);
      if (get(key) && (node.tagName !== "SELECT" || $$("option", node).some((o) => o.value === get(key)))) node.value = get(key);
    }
    let trainHyperparams = {};
    try {
      trainHyperparams = JSON.parse(get("thp") || "{}");
      const chosen = JSON.parse(get("features") || "[]");
      chosen.forEach((name, i) => {
        if (featureSelects[i] && $$("option", featureSelects[i]).some((o) => o.value === name)) featureSelects[i].value = name;
      });
      featuresChanged();
    } catch {
      setStatus("the link's training settings are not readable; using the defaults");
    }
    trainOptimizerChanged(trainHyperparams);
    $("#batch_size-out").textContent = $("#batch_size").value;
    if (get("methods") !== null) {
      const chosen = get("methods").split(",");
      for (const box of $$('input[name="methods"]', trainForm)) box.checked = chosen.includes(box.value);
    }
    return { tab: get("tab") || "functions", run: get("run") === "1" };
  }

  // ------------------------------------------------------------------ start
  async function init() {
    state.loading = true;
    setStatus("loading…");
    try {
      // The training tab's lists failing to load leaves the functions tab working.
      const datasetsAnswer = api("api/datasets").catch((error) => {
        showError(trainForm, error, "train");
        return { datasets: [] };
      });
      const [functions, optimizers, datasets] = await Promise.all([api("api/functions"), api("api/optimizers"), datasetsAnswer]);
      state.functions = functions.functions;
      state.optimizers = optimizers.optimizers;
      state.datasets = datasets.datasets;
      for (const fn of state.functions) {
        const option = document.createElement("option");
        option.value = fn.name;
        option.textContent = `${fn.name} (${fn.n_vars} variables)`;
        fnSelect.appendChild(option);
      }
      fillSelect($("#opt-add"), state.optimizers.map((o) => o.name), "adam");
      fillSelect($("#optimizer"), state.optimizers.map((o) => o.name), "sgd");
      fillSelect(datasetSelect, state.datasets.map((d) => d.name), state.datasets[0] && state.datasets[0].name, Object.fromEntries(state.datasets.map((d) => [d.name, `${d.name} (${d.n_samples} × ${d.n_features}, ${d.task})`])));
      fillSelect($("#model"), datasets.models || FALLBACK_MODELS, "auto");
      fillSelect($("#loss"), datasets.losses || FALLBACK_LOSSES, "auto");
      datasetChanged();
      const { tab, run } = readUrl();
      state.loading = false;
      selectTab(tab);
      await updateFunction();
      setStatus("");
      if (run) await runRace();
      document.body.dataset.ready = "true";
    } catch (error) {
      state.loading = false;
      setStatus(`the page could not load: ${error.message}`);
      document.body.dataset.ready = "error";
    }
  }
  init();
})();
