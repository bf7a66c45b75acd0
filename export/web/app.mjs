// Classifies the text box with MediaPipe's TextClassifier and draws the
// probabilities. Everything loads from this page's server: the MediaPipe
// bundle and its WASM files (node_modules/, from `npm ci`) and the model
// (`model.tflite` beside the page, or `?model=URL`).
import {FilesetResolver, TextClassifier} from
  "./node_modules/@mediapipe/tasks-text/text_bundle.mjs";

const WASM_DIR = new URL("./node_modules/@mediapipe/tasks-text/wasm", import.meta.url).href;
const MODEL_URL = new URL(
  new URLSearchParams(location.search).get("model") || "model.tflite", location.href).href;

const $ = (id) => document.getElementById(id);

// What the last classification showed, for scripts and tests:
// {count, text, label, categories: [{index, name, score}] in class order}.
window.kdClassifier = {count: 0};

function setStatus(text, state) {
  $("status").textContent = text;
  if (state) document.body.dataset.state = state;
}

function drawBars(categories, top) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const c of categories) {
    const row = document.createElement("div");
    row.className = c.index === top.index ? "bar-row top" : "bar-row";
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = name.title = c.name;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.display = "block";
    fill.style.width = `${(100 * Math.min(Math.max(c.score, 0), 1)).toFixed(2)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = c.score.toFixed(4);
    row.append(name, track, value);
    bars.append(row);
  }
}

function classify(classifier) {
  const text = $("text").value;
  const started = performance.now();
  const result = classifier.classify(text);
  const ms = performance.now() - started;
  // MediaPipe lists the categories by score, best first: that one is the class.
  const ranked = result.classifications[0].categories.map((c) => ({
    index: c.index,
    name: c.categoryName || c.displayName || `class ${c.index}`,
    score: c.score,
  }));
  const top = ranked[0];
  const categories = [...ranked].sort((a, b) => a.index - b.index);
  $("label").textContent = top.name;
  drawBars(categories, top);
  $("result").hidden = false;
  setStatus(`Classified in ${ms.toFixed(1)} ms.`);
  const count = window.kdClassifier.count + 1;
  window.kdClassifier = {count, text, label: top.name, categories};
}

async function load() {
  $("model-url").textContent = MODEL_URL;
  try {
    const fileset = await FilesetResolver.forTextTasks(WASM_DIR);
    const classifier = await TextClassifier.createFromOptions(fileset, {
      baseOptions: {modelAssetPath: MODEL_URL},
      maxResults: -1,  // every class, for the chart
    });
    $("classify").addEventListener("click", () => {
      try {
        classify(classifier);
      } catch (e) {
        setStatus(`Classification failed: ${e.message || e}`, "error");
      }
    });
    $("text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("classify").click();
    });
    $("classify").disabled = false;
    setStatus("Ready: type a sentence and press Classify (Ctrl+Enter).", "ready");
  } catch (e) {
    setStatus(`Could not load ${MODEL_URL}: ${e.message || e}`, "error");
  }
}

load();
