"""The page `ferkit serve` shows: pick a photo or take one with the camera, see each face boxed
with its emotion and the seven probabilities as bars. Plain HTML and JavaScript, nothing fetched
from elsewhere (it works on a closed network)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ferkit: facial emotions</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 980px; margin: 1.5em auto; padding: 0 1em; color: #222; }
  h1 { font-size: 1.4em; }
  .controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin-bottom: 1em; }
  #stage { position: relative; display: inline-block; max-width: 100%; }
  #photo, #video { max-width: 100%; display: block; }
  .box { position: absolute; border: 3px solid; box-sizing: border-box; }
  .box span { position: absolute; left: -3px; top: -1.6em; padding: 0 4px; color: #000; font-size: 0.9em;
              white-space: nowrap; }
  #status { color: #555; }
  #status.error { color: #b00; }
  .face { display: inline-block; vertical-align: top; margin: 0.5em 1.5em 0.5em 0; }
  .bar { display: flex; align-items: center; font-size: 0.85em; }
  .bar .name { width: 5.5em; }
  .bar .fill { height: 0.8em; margin-right: 0.4em; }
</style>
</head>
<body>
<h1>ferkit: facial emotions</h1>
<div class="controls">
  <label>Photo: <input type="file" id="file" accept="image/*"></label>
  <button id="camera" type="button">Use the camera</button>
  <button id="snap" type="button" hidden>Take the picture</button>
  <span id="status">Choose a photo, or use the camera.</span>
</div>
<div id="stage"><img id="photo" alt=""><video id="video" autoplay playsinline hidden></video></div>
<div id="faces"></div>
<script>
const COLOURS = {angry: "#dc322f", disgust: "#859900", fear: "#6c71c4", happy: "#fabe14",
                 neutral: "#93a1a1", sad: "#268bd2", surprise: "#d33682"};
const $ = (id) => document.getElementById(id);
let stream = null;
let latest = 0;  // the newest request; an older answer arriving late is dropped

function stopCamera() {
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
  $("video").hidden = true; $("photo").hidden = false; $("snap").hidden = true;
}

function status(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

function clearBoxes() { document.querySelectorAll(".box").forEach((b) => b.remove()); $("faces").innerHTML = ""; }

function caption(face) {
  const text = face.label + " " + face.confidence.toFixed(2);
  return face.uncertain ? "uncertain (" + text + ")" : text;
}

function show(result) {
  const img = $("photo");
  const scale = img.clientWidth / result.width;
  result.faces.forEach((face, i) => {
    const [x, y, w, h] = face.box;
    const colour = face.uncertain ? "#bbb" : COLOURS[face.label];
    const box = document.createElement("div");
    box.className = "box";
    box.dataset.label = face.label;
    Object.assign(box.style, {left: x * scale + "px", top: y * scale + "px", width: w * scale + "px",
                              height: h * scale + "px", borderColor: colour});
    const tag = document.createElement("span");
    tag.textContent = (i + 1) + ": " + caption(face);
    tag.style.background = colour;
    box.appendChild(tag);
    $("stage").appendChild(box);
    const panel = document.createElement("div");
    panel.className = "face";
    panel.innerHTML = "<b>face " + (i + 1) + ": " + caption(face) + "</b>";
    for (const [name, p] of Object.entries(face.probabilities)) {
      const row = document.createElement("div");
      row.className = "bar";
      row.innerHTML = '<span class="name">' + name + '</span><span class="fill" style="width:' +
        Math.max(1, Math.round(p * 150)) + "px;background:" + COLOURS[name] + '"></span>' + p.toFixed(2);
      panel.appendChild(row);
    }
    $("faces").appendChild(panel);
  });
  status(result.faces.length === 0 ? "No face found." :
         result.faces.length + (result.faces.length === 1 ? " face." : " faces."));
}

async function predict(blob) {
  const request = ++latest;
  stopCamera();
  clearBoxes();
  status("Predicting...");
  const img = $("photo");
  img.src = URL.createObjectURL(blob);
  await img.decode().catch(() => {});
  const form = new FormData();
  form.append("image", blob, "photo");
  let response, result;
  try {
    response = await fetch("api/predict", {method: "POST", body: form});
    result = await response.json();
  } catch (e) {
    if (request === latest) status("No answer from the server: " + e.message, true);
    return;
  }
  if (request !== latest) return;
  if (!response.ok) { status(result.error || ("HTTP " + response.status), true); return; }
  show(result);
}

$("file").addEventListener("change", (e) => { if (e.target.files.length) predict(e.target.files[0]); });

$("camera").addEventListener("click", async () => {
  try { stream = await navigator.mediaDevices.getUserMedia({video: true}); }
  catch (e) { status("No camera: " + e.message, true); return; }
  clearBoxes();
  $("video").srcObject = stream; $("video").hidden = false; $("photo").hidden = true; $("snap").hidden = false;
  status("Take the picture when ready.");
});

$("snap").addEventListener("click", () => {
  const video = $("video"), canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  stopCamera();
  canvas.toBlob((blob) => predict(blob), "image/jpeg", 0.92);
});
</script>
</body>
</html>
"""
