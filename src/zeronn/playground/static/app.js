// The zeronn playground page: plain JavaScript, no framework, no build step, no network
// beyond the local server. The server (zeronn itself) trains; this page only edits the
// setup, sends it over one WebSocket, and draws the snapshots it gets back.
// The protocol is documented in zeronn/playground/app.py.
"use strict";

(() => {
  // ---------------------------------------------------------------- constants
  const FEATURES = [
    ["x1", "x\u2081"], ["x2", "x\u2082"], ["x1sq", "x\u2081\u00b2"], ["x2sq", "x\u2082\u00b2"],
    ["x1x2", "x\u2081x\u2082"], ["sinx1", "sin x\u2081"], ["sinx2", "sin x\u2082"],
  ];
  const FEATURE_NAMES = FEATURES.map((f) => f[0]);
  const ACTIVATIONS = ["relu", "tanh", "sigmoid", "identity"];
  const DATASETS = ["circle", "xor", "gauss", "spiral", "moons", "plane", "surface",
    "multiclass", "upload"];
  const REGRESSION = new Set(["plane", "surface"]);
  const MAX_LAYERS = 6;
  const MAX_UNITS = 8;
  const UPLOAD_CAP = 2 * 1024 * 1024;
  // Changes the server applies to the running network (weights kept); any other key
  // rebuilds data and network from the seed.
  const LIVE_KEYS = new Set(["learning_rate", "optimizer", "regularization",
    "regularization_rate", "batch_size"]);
  const NEG = [245, 147, 34];    // orange: negative values, class 0
  const POS = [8, 119, 189];     // blue: positive values, class 1
  const MID = [232, 234, 235];   // the neutral middle of the diverging scale
  const PALETTE = [NEG, POS, [44, 160, 44], [214, 39, 40], [148, 103, 189]];

  const defaultLayers = () => [
    { units: 4, activation: "tanh", dropout: 0, batch_norm: false },
    { units: 2, activation: "tanh", dropout: 0, batch_norm: false },
  ];
  const DEFAULTS = {
    dataset: "circle", classes: 3, multiclass_shape: "blobs", noise: 0, train_share: 0.5,
    batch_size: 10, n_points: 500,
    seed: 0, features: ["x1", "x2"], layers: defaultLayers(), learning_rate: 0.03,
    optimizer: "sgd", regularization: "none", regularization_rate: 0,
    upload_id: "", upload_x1: "", upload_x2: "", upload_target: "",
  };

  const TEXT = {
    en: {
      forward: "forward pass", loss: "loss", backward: "backward pass",
      intro: (n) => `One mini-batch of ${n} training points through the current network: ` +
        "the forward pass, the loss, then the backward pass layer by layer, under the " +
        "seed's names. The weights are not updated.",
      shape: (r, c, rs, cs) => `shape ${r} \u00d7 ${c}` +
        (r > rs || c > cs ? ` (the first ${rs} \u00d7 ${cs} shown)` : ""),
      prev: "Previous", next: "Next", loading: "Computing one mini-batch\u2026",
      title: "Backpropagation, step by step", of: "of",
    },
    ja: {
      forward: "順伝播", loss: "損失", backward: "逆伝播",
      intro: (n) => `訓練データ ${n} 点のミニバッチ1つを、いまのネットワークで順伝播し、` +
        "損失を求め、逆伝播で誤差を層ごとに戻します。名前はシードのコードと同じです。重みは更新しません。",
      shape: (r, c, rs, cs) => `形 ${r} \u00d7 ${c}` +
        (r > rs || c > cs ? `（先頭 ${rs} \u00d7 ${cs} を表示）` : ""),
      prev: "前へ", next: "次へ", loading: "ミニバッチを1つ計算しています\u2026",
      title: "誤差逆伝播を一歩ずつ", of: "/",
    },
  };

  // ---------------------------------------------------------------- state
  const state = {
    config: clone(DEFAULTS),
    session: null,
    playing: false,
    pendingPlay: null,     // the play state asked for and not yet confirmed by a snapshot
    last: null,            // the latest snapshot
    points: null,          // {train, test}: sent only with setup/reset/rewind answers
    frames: 0,             // redraws so far (read by the frame-rate benchmark)
    drawMs: 0,             // milliseconds spent redrawing, in total
    snapshots: 0,
    drawQueued: false,
    structureKey: "",
    explain: null, explainIndex: 0, lang: "en", explainOpen: false, explainEpoch: null,
    socket: null, queue: [],
    uploadColumns: null,
  };
  // Read-only handle for tests and the frame-rate benchmark.
  window.zeronnPlayground = state;

  const $ = (id) => document.getElementById(id);

  function clone(x) { return JSON.parse(JSON.stringify(x)); }

  // ---------------------------------------------------------------- messages
  let messageTimer = null;
  function showMessage(text, kind) {
    const box = $("message");
    box.textContent = text;
    box.className = "message " + (kind || "notice");
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    clearTimeout(messageTimer);
    // Notices fade on their own; an error stays until the next action.
    if (kind !== "error") messageTimer = setTimeout(() => clearMessage(), 8000);
  }
  function clearMessage() {
    const box = $("message");
    box.textContent = "";
    box.className = "message";
  }

  // ---------------------------------------------------------------- the URL
  // Every config field lives in the hash (#dataset=xor&learning_rate=0.1&layers=4:tanh,2:relu:d0.2:bn),
  // so a link reproduces the setup. A query string in the same form is read too.
  function encodeLayers(layers) {
    return layers.map((l) => {
      let s = `${l.units}:${l.activation}`;
      if (l.dropout) s += `:d${l.dropout}`;
      if (l.batch_norm) s += ":bn";
      return s;
    }).join(",");
  }
  function decodeLayers(text) {
    if (text === "" || text === "none") return [];
    return text.split(",").map((part) => {
      const bits = part.split(":");
      const layer = { units: parseInt(bits[0], 10), activation: bits[1] || "tanh",
        dropout: 0, batch_norm: false };
      for (const b of bits.slice(2)) {
        if (b === "bn") layer.batch_norm = true;
        else if (b[0] === "d") layer.dropout = parseFloat(b.slice(1));
      }
      if (!(layer.units >= 1 && layer.units <= MAX_UNITS)) throw new Error(`layer units '${bits[0]}'`);
      if (!ACTIVATIONS.includes(layer.activation)) throw new Error(`activation '${layer.activation}'`);
      if (!(layer.dropout >= 0 && layer.dropout <= 0.9)) throw new Error(`dropout '${layer.dropout}'`);
      return layer;
    }).slice(0, MAX_LAYERS);
  }
  function encodeConfig(c) {
    const p = new URLSearchParams();
    p.set("dataset", c.dataset);
    if (c.dataset === "multiclass") {
      p.set("classes", c.classes);
      p.set("multiclass_shape", c.multiclass_shape);
    }
    p.set("noise", c.noise);
    p.set("train_share", c.train_share);
    p.set("batch_size", c.batch_size);
    p.set("n_points", c.n_points);
    p.set("seed", c.seed);
    p.set("features", c.features.join(","));
    p.set("layers", c.layers.length ? encodeLayers(c.layers) : "none");
    p.set("learning_rate", c.learning_rate);
    p.set("optimizer", c.optimizer);
    p.set("regularization", c.regularization);
    p.set("regularization_rate", c.regularization_rate);
    if (c.dataset === "upload") {
      for (const k of ["upload_id", "upload_x1", "upload_x2", "upload_target"]) p.set(k, c[k]);
    }
    // Commas and colons are safe in a fragment; keep the link readable.
    return p.toString().replace(/%2C/g, ",").replace(/%3A/g, ":");
  }
  function decodeConfig(text) {
    const c = clone(DEFAULTS);
    const bad = [];
    const p = new URLSearchParams(text);
    const num = (key, lo, hi, integer) => {
      if (!p.has(key)) return;
      const v = Number(p.get(key));
      if (Number.isFinite(v) && v >= lo && v <= hi && (!integer || Number.isInteger(v))) c[key] = v;
      else bad.push(key);
    };
    const choice = (key, options) => {
      if (!p.has(key)) return;
      if (options.includes(p.get(key))) c[key] = p.get(key);
      else bad.push(key);
    };
    choice("dataset", DATASETS);
    num("classes", 3, 5, true);
    choice("multiclass_shape", ["blobs", "spiral"]);
    num("noise", 0, 50, false);
    num("train_share", 0.1, 0.9, false);
    num("batch_size", 1, 500, true);
    num("n_points", 100, 2000, true);
    num("seed", 0, 2147483647, true);
    num("learning_rate", 1e-6, 10, false);
    choice("optimizer", ["sgd", "momentum", "adam"]);
    choice("regularization", ["none", "l1", "l2"]);
    num("regularization_rate", 0, 100, false);
    if (p.has("features")) {
      const f = p.get("features").split(",").filter((x) => x !== "");
      if (f.length && f.every((x) => FEATURE_NAMES.includes(x))) c.features = FEATURE_NAMES.filter((x) => f.includes(x));
      else bad.push("features");
    }
    if (p.has("layers")) {
      try { c.layers = decodeLayers(p.get("layers")); } catch (e) { bad.push("layers"); }
    }
    for (const k of ["upload_id", "upload_x1", "upload_x2", "upload_target"]) {
      if (p.has(k)) c[k] = p.get(k);
    }
    return { config: c, bad };
  }
  function writeURL() {
    const hash = "#" + encodeConfig(state.config);
    if (location.hash !== hash) history.replaceState(null, "", location.pathname + hash);
  }
  function readURL() {
    const text = location.hash.length > 1 ? location.hash.slice(1) : location.search.slice(1);
    if (!text) return;
    const { config, bad } = decodeConfig(text);
    state.config = config;
    if (bad.length) {
      showMessage(`The link's ${bad.join(", ")} could not be read: the default is used instead.`, "error");
    }
  }

  // ---------------------------------------------------------------- the socket
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const ws = new WebSocket(url);
    state.socket = ws;
    ws.addEventListener("open", () => {
      send({ type: "setup", config: wireConfig() });
      for (const m of state.queue.splice(0)) ws.send(JSON.stringify(m));
    });
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "snapshot") onSnapshot(msg);
      else if (msg.type === "explain") onExplain(msg);
      else if (msg.type === "error") { state.pendingPlay = null; showMessage(msg.message, "error"); }
      else if (msg.type === "notice") showMessage(msg.message, "notice");
    });
    ws.addEventListener("close", () => {
      state.playing = false;
      renderPlay();
      showMessage("The connection to the playground server closed: start `zeronn playground` " +
        "again and reload this page.", "error");
    });
  }
  function send(msg) {
    const ws = state.socket;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
    else if (!ws || ws.readyState === WebSocket.CONNECTING) {
      // Only the newest setup matters; the open handler sends one anyway.
      if (msg.type !== "setup" && msg.type !== "update") state.queue.push(msg);
    }
  }
  // The config as the server takes it: upload keys only for uploaded data.
  function wireConfig() {
    const c = clone(state.config);
    if (c.dataset !== "upload") {
      delete c.upload_id; delete c.upload_x1; delete c.upload_x2; delete c.upload_target;
    }
    return c;
  }

  // Apply a change made in a control: live keys keep the weights, the rest rebuild.
  function change(partial) {
    clearMessage();
    Object.assign(state.config, partial);
    writeURL();
    if (Object.keys(partial).every((k) => LIVE_KEYS.has(k))) {
      send({ type: "update", config: partial });
    } else {
      setup();
    }
  }
  function setup() {
    if (state.config.dataset === "upload" && !state.config.upload_id) {
      showMessage("Choose a CSV file: two numeric feature columns and a target column.", "notice");
      return;
    }
    state.pendingPlay = null;
    state.playing = false;
    renderPlay();
    send({ type: "setup", config: wireConfig() });
  }

  // ---------------------------------------------------------------- controls <- config
  function renderControls() {
    const c = state.config;
    $("dataset").value = c.dataset;
    $("classes").value = String(c.classes);
    $("classes-field").hidden = c.dataset !== "multiclass";
    $("shape-field").hidden = c.dataset !== "multiclass";
    $("multiclass-shape").value = c.multiclass_shape;
    $("upload-box").hidden = c.dataset !== "upload";
    $("noise").value = c.noise;
    $("noise-value").textContent = String(c.noise);
    $("train-share").value = Math.round(c.train_share * 100);
    $("train-share-value").textContent = `${Math.round(c.train_share * 100)}%`;
    setSelect($("n-points"), c.n_points);
    $("batch-size").value = c.batch_size;
    $("seed").value = c.seed;
    setSelect($("learning-rate"), c.learning_rate);
    $("optimizer").value = c.optimizer;
    $("regularization").value = c.regularization;
    setSelect($("regularization-rate"), c.regularization_rate);
    if (c.dataset === "upload" && c.upload_id) {
      const cols = state.uploadColumns ||
        { columns: [c.upload_x1, c.upload_x2, c.upload_target], numeric: [c.upload_x1, c.upload_x2] };
      fillUploadSelects(cols);
    }
    renderNetworkEditor();
  }
  // Select the option with this numeric value, adding it when a link carries another one.
  function setSelect(select, value) {
    for (const o of select.options) {
      if (Number(o.value) === Number(value)) { select.value = o.value; return; }
    }
    const o = document.createElement("option");
    o.textContent = String(value);
    select.appendChild(o);
    select.value = o.value;
  }

  // ---------------------------------------------------------------- controls -> config
  function bindControls() {
    $("dataset").addEventListener("change", (e) => {
      const v = e.target.value;
      state.config.dataset = v;
      renderControls();
      if (v === "upload" && !state.config.upload_id) {
        writeURL();
        $("upload").focus();
        showMessage("Choose a CSV file: two numeric feature columns and a target column.", "notice");
        return;
      }
      change({ dataset: v });
    });
    $("classes").addEventListener("change", (e) => change({ classes: Number(e.target.value) }));
    $("multiclass-shape").addEventListener("change", (e) => change({ multiclass_shape: e.target.value }));
    $("noise").addEventListener("input", (e) => { $("noise-value").textContent = e.target.value; });
    $("noise").addEventListener("change", (e) => change({ noise: Number(e.target.value) }));
    $("train-share").addEventListener("input", (e) => {
      $("train-share-value").textContent = `${e.target.value}%`;
    });
    $("train-share").addEventListener("change", (e) => change({ train_share: Number(e.target.value) / 100 }));
    $("n-points").addEventListener("change", (e) => change({ n_points: Number(e.target.value) }));
    // A whole-number field: out of [lo, hi] it is put back and the message says why.
    const wholeNumber = (id, key, lo, hi, message) => {
      $(id).addEventListener("change", (e) => {
        const v = Number(e.target.value);
        if (!Number.isInteger(v) || v < lo || v > hi) {
          showMessage(message, "error");
          e.target.value = state.config[key];
          return;
        }
        change({ [key]: v });
      });
    };
    wholeNumber("batch-size", "batch_size", 1, 500,
                "The batch size is a whole number from 1 to 500.");
    wholeNumber("seed", "seed", 0, 2147483647,
                "The seed is a whole number from 0 to 2147483647, such as 0 or 42.");
    $("learning-rate").addEventListener("change", (e) => change({ learning_rate: Number(e.target.value) }));
    $("optimizer").addEventListener("change", (e) => change({ optimizer: e.target.value }));
    $("regularization").addEventListener("change", (e) => change({ regularization: e.target.value }));
    $("regularization-rate").addEventListener("change", (e) => change({ regularization_rate: Number(e.target.value) }));

    $("play").addEventListener("click", togglePlay);
    $("step").addEventListener("click", () => { clearMessage(); send({ type: "step" }); });
    $("reset").addEventListener("click", () => { clearMessage(); send({ type: "reset" }); });
    $("rewind").addEventListener("click", () => { clearMessage(); send({ type: "rewind" }); });

    $("add-layer").addEventListener("click", () => {
      if (state.config.layers.length >= MAX_LAYERS) return;
      const layers = clone(state.config.layers);
      const prev = layers[layers.length - 1];
      layers.push({ units: 2, activation: prev ? prev.activation : "tanh", dropout: 0, batch_norm: false });
      change({ layers });
      renderNetworkEditor();
    });
    $("remove-layer").addEventListener("click", () => {
      if (!state.config.layers.length) return;
      change({ layers: state.config.layers.slice(0, -1) });
      renderNetworkEditor();
    });

    $("upload").addEventListener("change", (e) => {
      const file = e.target.files && e.target.files[0];
      if (file) uploadFile(file);
    });
    for (const id of ["upload-x1", "upload-x2", "upload-target"]) {
      $(id).addEventListener("change", () => {
        const partial = {
          upload_x1: $("upload-x1").value, upload_x2: $("upload-x2").value,
          upload_target: $("upload-target").value,
        };
        if (partial.upload_x1 === partial.upload_x2) {
          showMessage("Choose two different columns for x1 and x2.", "error");
          return;
        }
        change(partial);
      });
    }

    $("explain").addEventListener("click", () => {
      if (state.explainOpen && state.explain) { closeExplain(); return; }
      openExplain();
    });
    $("explain-close").addEventListener("click", closeExplain);
    $("explain-prev").addEventListener("click", () => showStep(state.explainIndex - 1));
    $("explain-next").addEventListener("click", () => showStep(state.explainIndex + 1));
    $("lang-en").addEventListener("click", () => setLang("en"));
    $("lang-ja").addEventListener("click", () => setLang("ja"));
    $("explain-panel").addEventListener("keydown", (e) => {
      if (e.target.tagName === "SELECT" || e.target.tagName === "INPUT") return;
      if (e.key === "ArrowRight") { showStep(state.explainIndex + 1); e.preventDefault(); }
      else if (e.key === "ArrowLeft") { showStep(state.explainIndex - 1); e.preventDefault(); }
      else if (e.key === "Escape") closeExplain();
    });

    for (const id of ["export-model", "export-onnx"]) {
      $(id).addEventListener("click", (e) => {
        if (!state.session) { e.preventDefault(); showMessage("The model is not ready yet.", "notice"); }
      });
    }
    $("export-snippet").addEventListener("click", toggleSnippet);
    $("snippet-copy").addEventListener("click", copySnippet);

    // Space plays/pauses and the right arrow steps, when no control has the focus.
    document.addEventListener("keydown", (e) => {
      if (e.target !== document.body || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === " ") { togglePlay(); e.preventDefault(); }
      else if (e.key === "ArrowRight") { send({ type: "step" }); e.preventDefault(); }
    });
    window.addEventListener("hashchange", () => {
      const before = encodeConfig(state.config);
      readURL();
      if (encodeConfig(state.config) !== before) { renderControls(); setup(); }
    });
    new ResizeObserver(() => { layoutLinks(); scheduleDraw(); }).observe($("network"));
  }

  function togglePlay() {
    const want = !state.playing;
    state.playing = want;
    state.pendingPlay = want;
    renderPlay();
    send({ type: want ? "play" : "pause" });
  }
  function renderPlay() {
    const b = $("play");
    b.setAttribute("aria-pressed", state.playing ? "true" : "false");
    b.setAttribute("aria-label", state.playing ? "Pause" : "Play");
    b.querySelector(".label").textContent = state.playing ? "Pause" : "Play";
  }

  // ---------------------------------------------------------------- upload
  async function uploadFile(file) {
    clearMessage();
    if (file.size > UPLOAD_CAP) {
      showMessage(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is 2 MB: ` +
        "upload a sample of its rows.", "error");
      return;
    }
    let answer;
    let ok = false;
    try {
      const r = await fetch("/api/upload", { method: "POST", body: file,
        headers: { "Content-Type": "text/csv" } });
      ok = r.ok;
      try { answer = await r.json(); } catch (e) { answer = { error: `the server answered ${r.status}` }; }
    } catch (e) {
      answer = { error: "The upload failed: is the playground server still running?" };
    }
    if (!ok) {
      showMessage(answer.error || "The file could not be read.", "error");
      return;
    }
    const numeric = answer.numeric_columns || [];
    if (numeric.length < 2) {
      showMessage("The file needs at least two numeric columns for x1 and x2.", "error");
      return;
    }
    state.uploadColumns = { columns: answer.columns, numeric };
    const x1 = numeric[0];
    const x2 = numeric[1];
    const rest = answer.columns.filter((c) => c !== x1 && c !== x2);
    const target = rest.length ? rest[rest.length - 1] : answer.columns[answer.columns.length - 1];
    state.config.dataset = "upload";
    Object.assign(state.config, { upload_id: answer.upload_id, upload_x1: x1, upload_x2: x2,
      upload_target: target });
    $("upload-info").textContent = `${file.name}: ${answer.rows} rows, ${answer.columns.length} columns. ` +
      "Choose the two feature columns and the target.";
    renderControls();
    change({ dataset: "upload" });
  }
  function fillUploadSelects(cols) {
    const fill = (select, names, value) => {
      select.replaceChildren(...names.map((n) => {
        const o = document.createElement("option");
        o.value = n; o.textContent = n;
        return o;
      }));
      select.value = value;
    };
    const c = state.config;
    fill($("upload-x1"), cols.numeric, c.upload_x1);
    fill($("upload-x2"), cols.numeric, c.upload_x2);
    fill($("upload-target"), cols.columns, c.upload_target);
    $("upload-columns").hidden = false;
  }

  // ---------------------------------------------------------------- network editor
  // Columns: the 7 input features, each hidden layer, the output. Built from the config
  // (so a click shows at once); the snapshot fills the heatmaps when its shapes match.
  function renderNetworkEditor() {
    const c = state.config;
    const out = state.last ? state.last.neurons[state.last.neurons.length - 1].length : 1;
    const key = JSON.stringify([c.features, c.layers, out]);
    if (key === state.structureKey) return;
    state.structureKey = key;
    const n = c.layers.length;
    $("layer-count").textContent = `${n} hidden layer${n === 1 ? "" : "s"}`;
    $("add-layer").disabled = n >= MAX_LAYERS;
    $("remove-layer").disabled = n === 0;
    const cols = $("columns");
    cols.replaceChildren();

    // Input features: toggles.
    const inCol = column("Features", "input");
    for (const [name, label] of FEATURES) {
      const on = c.features.includes(name);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "feature" + (on ? " on" : "");
      b.dataset.feature = name;
      b.dataset.testid = `feature-${name}`;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.setAttribute("aria-label", `Input feature ${label}`);
      const cv = neuronCanvas(on ? `in-${name}` : null);
      // What the feature is, drawn here; the server's maps replace it for the active ones.
      drawFeature(cv, name);
      b.appendChild(cv);
      const s = document.createElement("span");
      s.textContent = label;
      b.appendChild(s);
      b.addEventListener("click", () => toggleFeature(name));
      inCol.body.appendChild(b);
    }
    cols.appendChild(inCol.el);

    c.layers.forEach((layer, i) => {
      const col = column(`Hidden ${i + 1}`, "hidden");
      const ed = document.createElement("div");
      ed.className = "layer-editor";
      const units = document.createElement("div");
      units.className = "units";
      units.append(
        smallButton("\u2212", `Remove a unit from hidden layer ${i + 1}`, layer.units <= 1,
          () => editLayer(i, { units: layer.units - 1 }), `units-minus-${i + 1}`),
        Object.assign(document.createElement("span"), { textContent: `${layer.units}` }),
        smallButton("+", `Add a unit to hidden layer ${i + 1}`, layer.units >= MAX_UNITS,
          () => editLayer(i, { units: layer.units + 1 }), `units-plus-${i + 1}`),
      );
      ed.appendChild(units);
      ed.appendChild(labelledSelect(`Activation of hidden layer ${i + 1}`, `activation-${i + 1}`,
        ACTIVATIONS.map((a) => [a, a]), layer.activation, (v) => editLayer(i, { activation: v })));
      ed.appendChild(labelledSelect(`Dropout of hidden layer ${i + 1}`, `dropout-${i + 1}`,
        [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9].map((d) => [String(d), d ? `drop ${d}` : "no dropout"]),
        String(layer.dropout || 0), (v) => editLayer(i, { dropout: Number(v) })));
      const bn = document.createElement("label");
      bn.className = "bn";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !!layer.batch_norm;
      box.dataset.testid = `batch-norm-${i + 1}`;
      box.addEventListener("change", () => editLayer(i, { batch_norm: box.checked }));
      bn.append(box, " batch norm");
      ed.appendChild(bn);
      col.head.appendChild(ed);
      for (let u = 0; u < layer.units; u++) col.body.appendChild(neuronCanvas(`h${i + 1}-${u}`));
      cols.appendChild(col.el);
    });

    const outCol = column("Output", "output");
    for (let u = 0; u < out; u++) outCol.body.appendChild(neuronCanvas(`out-${u}`));
    cols.appendChild(outCol.el);
    buildLinks();
    layoutLinks();
  }
  const FEATURE_FN = {
    x1: (x, y) => x, x2: (x, y) => y, x1sq: (x, y) => x * x, x2sq: (x, y) => y * y,
    x1x2: (x, y) => x * y, sinx1: (x, y) => Math.sin(x), sinx2: (x, y) => Math.sin(y),
  };
  function drawFeature(cv, name) {
    const n = 16;
    const vals = new Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const x = -6 + (c + 0.5) * 12 / n, y = 6 - (r + 0.5) * 12 / n;
        vals[r * n + c] = FEATURE_FN[name](x, y);
      }
    }
    let m = 1;
    for (const v of vals) if (Math.abs(v) > m) m = Math.abs(v);
    paint(cv, n, (k) => diverging(vals[k] / m));
  }
  function column(title, kind) {
    const el = document.createElement("div");
    el.className = `column ${kind}`;
    const head = document.createElement("div");
    head.className = "column-head";
    const h = document.createElement("h3");
    h.textContent = title;
    head.appendChild(h);
    const body = document.createElement("div");
    body.className = "column-body";
    el.append(head, body);
    return { el, head, body };
  }
  function neuronCanvas(id) {
    const cv = document.createElement("canvas");
    cv.width = 16; cv.height = 16;
    cv.className = "neuron";
    if (id) cv.dataset.neuron = id;
    cv.setAttribute("aria-hidden", "true");
    return cv;
  }
  function smallButton(text, label, disabled, onClick, testid) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.className = "small";
    b.disabled = disabled;
    b.dataset.testid = testid;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }
  function labelledSelect(label, testid, options, value, onChange) {
    const s = document.createElement("select");
    s.setAttribute("aria-label", label);
    s.dataset.testid = testid;
    for (const [v, t] of options) {
      const o = document.createElement("option");
      o.value = v; o.textContent = t;
      s.appendChild(o);
    }
    s.value = value;
    s.addEventListener("change", () => onChange(s.value));
    return s;
  }
  function editLayer(i, partial) {
    const layers = clone(state.config.layers);
    Object.assign(layers[i], partial);
    const focused = document.activeElement && document.activeElement.dataset.testid;
    change({ layers });
    renderNetworkEditor();
    // Keep keyboard users where they were after the rebuild.
    if (focused) {
      const again = document.querySelector(`[data-testid="${focused}"]`);
      if (again && !again.disabled) again.focus();
    }
  }
  function toggleFeature(name) {
    const f = state.config.features;
    const next = f.includes(name) ? f.filter((x) => x !== name) : FEATURE_NAMES.filter((x) => f.includes(x) || x === name);
    if (!next.length) { showMessage("Keep at least one input feature.", "error"); return; }
    change({ features: next });
    renderNetworkEditor();
    const again = document.querySelector(`[data-feature="${name}"]`);
    if (again) again.focus();
  }

  // ---------------------------------------------------------------- links (SVG)
  const SVGNS = "http://www.w3.org/2000/svg";
  let linkPaths = [];   // [layer][i][j] -> path
  function columnNodes() {
    // Per column, the elements that are the network's units (input: active features only).
    const cols = [...$("columns").children];
    return cols.map((col, k) => {
      if (k === 0) {
        return state.config.features.map((f) => col.querySelector(`[data-feature="${f}"] canvas`));
      }
      return [...col.querySelectorAll(".column-body canvas")];
    });
  }
  function buildLinks() {
    const svg = $("links");
    svg.replaceChildren();
    const nodes = columnNodes();
    linkPaths = [];
    for (let l = 0; l + 1 < nodes.length; l++) {
      const layer = [];
      for (let i = 0; i < nodes[l].length; i++) {
        const row = [];
        for (let j = 0; j < nodes[l + 1].length; j++) {
          const p = document.createElementNS(SVGNS, "path");
          p.setAttribute("class", "link");
          svg.appendChild(p);
          row.push(p);
        }
        layer.push(row);
      }
      linkPaths.push(layer);
    }
  }
  function layoutLinks() {
    const net = $("network");
    const box = net.getBoundingClientRect();
    const svg = $("links");
    svg.setAttribute("width", box.width);
    svg.setAttribute("height", box.height);
    const nodes = columnNodes();
    for (let l = 0; l < linkPaths.length; l++) {
      for (let i = 0; i < linkPaths[l].length; i++) {
        const a = nodes[l][i].getBoundingClientRect();
        for (let j = 0; j < linkPaths[l][i].length; j++) {
          const b = nodes[l + 1][j].getBoundingClientRect();
          const x1 = a.right - box.left, y1 = a.top + a.height / 2 - box.top;
          const x2 = b.left - box.left, y2 = b.top + b.height / 2 - box.top;
          const mx = (x1 + x2) / 2;
          linkPaths[l][i][j].setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
        }
      }
    }
  }

  // ---------------------------------------------------------------- drawing
  function scheduleDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    requestAnimationFrame(() => { state.drawQueued = false; draw(); });
  }
  function onSnapshot(s) {
    state.snapshots += 1;
    state.session = s.session;
    if (s.points) state.points = s.points;
    state.last = s;
    if (state.pendingPlay === null) state.playing = !!s.playing;
    else if (!!s.playing === state.pendingPlay) state.pendingPlay = null;
    renderPlay();
    setExportLinks();
    // The readouts and the pictures change at once, on every snapshot: waiting for an
    // animation frame merged snapshots that arrived close together (fewer redraws than
    // snapshots on a busy machine); a draw takes a few milliseconds.
    renderReadouts(s);
    draw();
    // An open step-through follows the network: once training stops on other weights
    // (a step, a pause, a new setup), it explains them again.
    if (state.explainOpen && !s.playing && state.pendingPlay === null &&
        (s.points || s.epoch !== state.explainEpoch)) requestExplain();
  }
  function fmt(x) {
    if (x === null || x === undefined) return "";
    if (typeof x !== "number" || !Number.isFinite(x)) return String(x);
    return String(Number(x.toPrecision(5)));
  }
  function renderReadouts(s) {
    $("epoch").textContent = String(s.epoch);
    for (const [id, v] of [["train-loss", s.train_loss], ["test-loss", s.test_loss]]) {
      $(id).textContent = fmt(v);
      $(id).dataset.value = v === null || v === undefined ? "" : String(v);
    }
    const acc = s.test_accuracy;
    $("test-accuracy").textContent = acc === null || acc === undefined ? "" : acc.toFixed(3);
    $("test-accuracy").dataset.value = acc === null || acc === undefined ? "" : String(acc);
  }
  function draw() {
    const s = state.last;
    if (!s) return;
    const t0 = performance.now();
    state.frames += 1;
    renderNetworkEditor();   // the output column's size comes from the snapshot
    drawNeurons(s);
    drawLinks(s);
    drawOutput(s);
    drawLoss(s);
    renderDiagnostics(s);
    state.drawMs += performance.now() - t0;
  }
  function mix(a, b, t) {
    return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
  }
  // t in [-1, 1] -> orange .. neutral .. blue
  function diverging(t) {
    t = Math.max(-1, Math.min(1, t));
    return t < 0 ? mix(MID, NEG, -t) : mix(MID, POS, t);
  }
  function paint(canvas, size, colourAt) {
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(size, size);
    for (let k = 0; k < size * size; k++) {
      const c = colourAt(k);
      img.data[4 * k] = c[0]; img.data[4 * k + 1] = c[1]; img.data[4 * k + 2] = c[2];
      img.data[4 * k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  function shapesMatch(s) {
    const c = state.config;
    if (!s.neurons || s.neurons.length !== c.layers.length + 2) return false;
    if (s.features.join(",") !== c.features.join(",")) return false;
    return c.layers.every((l, i) => s.neurons[i + 1].length === l.units);
  }
  function drawNeurons(s) {
    if (!shapesMatch(s)) return;
    const cols = [...$("columns").children];
    const last = s.neurons.length - 1;
    s.neurons.forEach((units, l) => {
      let canvases;
      if (l === 0) canvases = s.features.map((f) => cols[0].querySelector(`[data-feature="${f}"] canvas`));
      else canvases = [...cols[l].querySelectorAll(".column-body canvas")];
      units.forEach((values, u) => {
        const cv = canvases[u];
        if (!cv) return;
        cv.width = cv.height = 16;
        if (l === last && s.task === "classification") {
          if (s.classes > 2) paint(cv, 16, (k) => mix(MID, PALETTE[u % 5], values[k]));
          else paint(cv, 16, (k) => diverging(2 * values[k] - 1));
          return;
        }
        let m = 1;
        for (const v of values) if (Math.abs(v) > m) m = Math.abs(v);
        paint(cv, 16, (k) => diverging(values[k] / m));
      });
    });
  }
  function drawLinks(s) {
    if (!s.weights || s.weights.length !== linkPaths.length || !shapesMatch(s)) return;
    for (let l = 0; l < linkPaths.length; l++) {
      const W = s.weights[l];
      if (!W || W.length !== linkPaths[l].length) continue;
      for (let i = 0; i < linkPaths[l].length; i++) {
        for (let j = 0; j < linkPaths[l][i].length; j++) {
          const w = W[i][j];
          const p = linkPaths[l][i][j];
          p.setAttribute("stroke", w < 0 ? "rgb(245,147,34)" : "rgb(8,119,189)");
          p.setAttribute("stroke-width", (0.4 + Math.min(Math.abs(w), 4) * 1.2).toFixed(2));
        }
      }
    }
  }
  const gridCanvas = document.createElement("canvas");
  function drawOutput(s) {
    const canvas = $("output-canvas");
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    const g = s.grid;
    const [x0, x1, y0, y1] = g.extent;
    gridCanvas.width = gridCanvas.height = g.size;
    const k = s.classes;
    if (s.task === "regression") {
      paint(gridCanvas, g.size, (i) => mix(diverging(g.output[i]), [255, 255, 255], 0.25));
    } else if (k > 2) {
      const conf = g.confidence || [];
      paint(gridCanvas, g.size, (i) => {
        const c = PALETTE[(g.output[i] | 0) % 5];
        const q = conf.length ? (conf[i] - 1 / k) / (1 - 1 / k) : 1;
        return mix([255, 255, 255], c, 0.2 + 0.55 * Math.max(0, Math.min(1, q)));
      });
    } else {
      paint(gridCanvas, g.size, (i) => mix(diverging(2 * g.output[i] - 1), [255, 255, 255], 0.3));
    }
    ctx.imageSmoothingEnabled = true;
    ctx.clearRect(0, 0, W, H);
    ctx.drawImage(gridCanvas, 0, 0, W, H);
    // The axes through 0.
    ctx.strokeStyle = "rgba(0,0,0,0.12)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    const zx = (0 - x0) / (x1 - x0) * W, zy = (y1 - 0) / (y1 - y0) * H;
    ctx.moveTo(zx, 0); ctx.lineTo(zx, H); ctx.moveTo(0, zy); ctx.lineTo(W, zy);
    ctx.stroke();
    if (!state.points) return;
    const colourOf = (y) => {
      if (s.task === "regression") return diverging(y);
      if (k > 2) return PALETTE[(y | 0) % 5];
      return y >= 0.5 ? POS : NEG;
    };
    const dot = (p, test) => {
      const px = (p[0] - x0) / (x1 - x0) * W;
      const py = (y1 - p[1]) / (y1 - y0) * H;
      const c = colourOf(p[2]);
      ctx.beginPath();
      ctx.arc(px, py, test ? 3.6 : 3.2, 0, 2 * Math.PI);
      ctx.fillStyle = `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})`;
      ctx.fill();
      ctx.lineWidth = test ? 1.6 : 0.8;
      ctx.strokeStyle = test ? "#111" : "#fff";
      ctx.stroke();
    };
    for (const p of state.points.train) dot(p, false);
    for (const p of state.points.test) dot(p, true);
    renderClassLegend(s);
  }
  function renderClassLegend(s) {
    const box = $("class-legend");
    const key = `${s.task}:${s.classes}`;
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.replaceChildren();
    if (s.task === "regression") {
      box.append(swatch(NEG, "\u22121"), swatch(MID, "0"), swatch(POS, "+1 (target)"));
      return;
    }
    for (let c = 0; c < Math.max(2, s.classes); c++) box.appendChild(swatch(PALETTE[c % 5], `class ${c}`));
  }
  function swatch(c, text) {
    const s = document.createElement("span");
    s.className = "class-swatch";
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})`;
    s.append(dot, text);
    return s;
  }
  function drawLoss(s) {
    const canvas = $("loss-canvas");
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    const tr = (s.history && s.history.train_loss) || [];
    const te = (s.history && s.history.test_loss) || [];
    const n = Math.max(tr.length, te.length);
    if (n === 0) return;
    let top = 0;
    for (const v of tr.concat(te)) if (Number.isFinite(v) && v > top) top = v;
    if (top <= 0) top = 1;
    const pad = 4;
    const line = (vals, colour, dash) => {
      ctx.beginPath();
      ctx.strokeStyle = colour;
      ctx.setLineDash(dash);
      ctx.lineWidth = 1.6;
      // At most one point per pixel column.
      const stride = Math.max(1, Math.ceil(vals.length / W));
      let started = false;
      for (let i = 0; i < vals.length; i += stride) {
        const v = vals[i];
        if (!Number.isFinite(v)) continue;
        const x = n === 1 ? W / 2 : i / (n - 1) * (W - 1);
        const y = H - pad - v / top * (H - 2 * pad);
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      }
      if (vals.length && Number.isFinite(vals[vals.length - 1])) {
        const v = vals[vals.length - 1];
        ctx.lineTo(n === 1 ? W / 2 : (vals.length - 1) / (n - 1) * (W - 1), H - pad - v / top * (H - 2 * pad));
      }
      ctx.stroke();
      ctx.setLineDash([]);
    };
    line(te, "#c2410c", [4, 3]);
    line(tr, "#1f2937", []);
  }
  function renderDiagnostics(s) {
    const body = $("diagnostics").tBodies[0];
    const d = s.diagnostics || { grad_norm: [], dead_relu: [] };
    const rows = [];
    // s.layers: each hidden layer, then the output layer (layers[i] goes with weights[i]).
    const layers = s.layers || [];
    const nDense = (d.grad_norm || []).length;
    for (let l = 0; l < nDense; l++) {
      const hidden = l < nDense - 1;
      const name = hidden ? `Hidden ${l + 1}` : "Output";
      const units = layers[l] ? layers[l].units : s.neurons[s.neurons.length - 1].length;
      const act = layers[l] ? layers[l].activation
        : (s.task === "regression" ? "identity" : s.classes > 2 ? "softmax" : "sigmoid");
      const dead = hidden ? d.dead_relu[l] : null;
      const g = d.grad_norm[l];
      rows.push([name, String(units), act, typeof g === "number" ? String(Number(g.toPrecision(3))) : "\u2013",
        dead === null || dead === undefined ? "\u2013" : `${Math.round(dead * 100)}%`]);
    }
    const key = JSON.stringify(rows);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      r.forEach((v, i) => {
        const td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) td.scope = "row";
        td.textContent = v;
        tr.appendChild(td);
      });
      return tr;
    }));
  }

  // ---------------------------------------------------------------- export
  function setExportLinks() {
    if (!state.session) return;
    const base = `/api/export/${encodeURIComponent(state.session)}`;
    for (const [id, what] of [["export-model", "model"], ["export-onnx", "onnx"]]) {
      const a = $(id);
      if (a.getAttribute("href") !== `${base}/${what}`) {
        a.setAttribute("href", `${base}/${what}`);
        a.removeAttribute("aria-disabled");
      }
    }
  }
  async function toggleSnippet() {
    const box = $("snippet-box");
    if (!box.hidden) {
      box.hidden = true;
      $("export-snippet").setAttribute("aria-expanded", "false");
      return;
    }
    if (!state.session) { showMessage("The model is not ready yet.", "notice"); return; }
    try {
      const r = await fetch(`/api/export/${encodeURIComponent(state.session)}/snippet`);
      const text = await r.text();
      if (!r.ok) {
        let err = text;
        try { err = JSON.parse(text).error; } catch (e) { /* plain text */ }
        showMessage(err, "error");
        return;
      }
      $("snippet").value = text;
    } catch (e) {
      showMessage("The snippet could not be fetched: is the playground server still running?", "error");
      return;
    }
    box.hidden = false;
    $("export-snippet").setAttribute("aria-expanded", "true");
    $("snippet").focus();
    $("snippet").select();
  }
  async function copySnippet() {
    const ta = $("snippet");
    try {
      await navigator.clipboard.writeText(ta.value);
    } catch (e) {
      ta.select();
      document.execCommand("copy");
    }
    showMessage("The Python code is copied.", "notice");
  }

  // ---------------------------------------------------------------- explain
  function openExplain() {
    state.explainOpen = true;
    const panel = $("explain-panel");
    panel.hidden = false;
    $("explain").setAttribute("aria-expanded", "true");
    requestExplain();
    panel.focus();
  }
  function closeExplain() {
    state.explainOpen = false;
    $("explain-panel").hidden = true;
    $("explain").setAttribute("aria-expanded", "false");
    $("explain").focus();
  }
  function requestExplain() {
    if (state.last) state.explainEpoch = state.last.epoch;
    $("explain-intro").textContent = TEXT[state.lang].loading;
    send({ type: "explain", lang: state.lang });
  }
  function setLang(lang) {
    state.lang = lang;
    $("lang-en").setAttribute("aria-pressed", lang === "en" ? "true" : "false");
    $("lang-ja").setAttribute("aria-pressed", lang === "ja" ? "true" : "false");
    requestExplain();
  }
  function onExplain(msg) {
    const keep = state.explain ? state.explainIndex : 0;
    state.explain = msg;
    const t = TEXT[msg.lang] || TEXT.en;
    const panel = $("explain-panel");
    panel.setAttribute("lang", msg.lang === "ja" ? "ja" : "en");
    $("explain-title").textContent = t.title;
    $("explain-intro").textContent = t.intro(msg.batch_size);
    $("explain-prev").querySelector("span").textContent = t.prev;
    $("explain-next").querySelector("span").textContent = t.next;
    const list = $("explain-steps");
    list.replaceChildren();
    let phase = null;
    msg.steps.forEach((st, i) => {
      if (st.phase !== phase) {
        phase = st.phase;
        const h = document.createElement("li");
        h.className = `phase-label ${phase}`;
        h.setAttribute("aria-hidden", "true");
        h.textContent = t[phase] || phase;
        list.appendChild(h);
      }
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = `step-name ${st.phase}`;
      b.textContent = st.name;
      b.dataset.index = String(i);
      b.setAttribute("aria-label", `${st.name} (${t[st.phase] || st.phase})`);
      b.addEventListener("click", () => showStep(i));
      li.appendChild(b);
      list.appendChild(li);
    });
    showStep(Math.min(keep, msg.steps.length - 1));
  }
  function showStep(i) {
    const ex = state.explain;
    if (!ex || i < 0 || i >= ex.steps.length) return;
    state.explainIndex = i;
    const t = TEXT[ex.lang] || TEXT.en;
    const st = ex.steps[i];
    for (const b of $("explain-steps").querySelectorAll("button")) {
      if (Number(b.dataset.index) === i) b.setAttribute("aria-current", "step");
      else b.removeAttribute("aria-current");
    }
    const art = $("explain-step");
    art.replaceChildren();
    const h = document.createElement("h3");
    const code = document.createElement("code");
    code.textContent = st.name;
    const badge = document.createElement("span");
    badge.className = `badge ${st.phase}`;
    badge.textContent = t[st.phase] || st.phase;
    h.append(code, " ", badge);
    const formula = document.createElement("p");
    formula.className = "formula";
    formula.textContent = st.formula;
    const text = document.createElement("p");
    text.textContent = st.text;
    const shape = document.createElement("p");
    shape.className = "hint";
    const rows = st.values || [];
    const cols = rows.length ? rows[0].length : 0;
    const [R, C] = st.shape && st.shape.length === 2 ? st.shape : [rows.length, cols];
    shape.textContent = t.shape(R, C, rows.length, cols);
    art.append(h, formula, text, shape, valuesTable(st.name, rows));
    $("explain-pos").textContent = `${i + 1} ${t.of} ${ex.steps.length}`;
    $("explain-prev").disabled = i === 0;
    $("explain-next").disabled = i === ex.steps.length - 1;
  }
  function valuesTable(name, rows) {
    const table = document.createElement("table");
    table.className = "values";
    const cap = document.createElement("caption");
    cap.className = "visually-hidden";
    cap.textContent = `Values of ${name}`;
    table.appendChild(cap);
    const tbody = document.createElement("tbody");
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const v of r) {
        const td = document.createElement("td");
        td.textContent = typeof v === "number" ? String(v) : String(v);
        if (typeof v === "number" && v < 0) td.className = "neg";
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    return table;
  }

  // ---------------------------------------------------------------- start
  readURL();
  renderControls();
  renderPlay();
  bindControls();
  writeURL();
  connect();
})();
