// facemac gallery page (facemac/faces/gallery.py): renders the page's JSON; read-only, no server, no network.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("gallery-data").textContent);
  const select = document.getElementById("attribute");
  const main = document.getElementById("faces");
  const summary = document.getElementById("summary");
  const zoom = document.getElementById("zoom");
  let size = 112;

  data.attributes.forEach((a, i) => {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = a.name;
    select.appendChild(o);
  });

  function face(f, threshold) {
    const fig = document.createElement("figure");
    fig.className = "face" + (f.p > threshold ? "" : " negative");
    fig.dataset.path = f.path;
    fig.dataset.p = String(f.p);
    const img = document.createElement("img");
    img.src = f.img;
    img.alt = f.path;
    img.loading = "lazy";
    const cap = document.createElement("figcaption");
    cap.textContent = "p = " + f.p.toFixed(3) + (f.identity ? " · " + f.identity : "");
    fig.title = f.path + "\n" + f.kinds.join(", ");
    fig.append(img, cap);
    fig.addEventListener("click", () => open(f));
    return fig;
  }

  function show(i) {
    const a = data.attributes[i];
    select.value = String(i);
    main.dataset.attribute = a.name;
    history.replaceState(null, "", "#" + encodeURIComponent(a.name));
    main.replaceChildren();
    const above = a.faces.filter((f) => f.p > a.threshold).length;
    summary.textContent = "threshold " + a.threshold.toFixed(3) +
      (a.rate === null ? "" : " · rate " + a.rate.toFixed(3)) + " · " + a.faces.length + " faces shown";
    if (!a.faces.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No face could be shown for this attribute.";
      main.appendChild(p);
    }
    a.faces.forEach((f, k) => {
      if (k === above) main.appendChild(marker(a, above, a.faces.length - above));
      main.appendChild(face(f, a.threshold));
    });
    if (above === a.faces.length && a.faces.length) main.appendChild(marker(a, above, 0));
  }

  function marker(a, pos, neg) {
    const div = document.createElement("div");
    div.className = "threshold";
    div.textContent = "threshold " + a.threshold.toFixed(3) + " — above: " + pos + " shown as positive " +
      a.name + ", below: " + neg + " shown as negative";
    return div;
  }

  function open(f) {
    zoom.querySelector("img").src = f.img;
    zoom.querySelector("figcaption").textContent = f.path + " · p = " + f.p.toFixed(4);
    zoom.hidden = false;
  }

  function step(d) {
    const n = data.attributes.length;
    show((Number(select.value) + d + n) % n);
  }

  select.addEventListener("change", () => show(Number(select.value)));
  zoom.addEventListener("click", () => { zoom.hidden = true; });
  document.addEventListener("keydown", (e) => {
    if (e.target === select && (e.key === "ArrowUp" || e.key === "ArrowDown")) return;
    if (e.key === "ArrowRight" || e.key === "]") step(1);
    else if (e.key === "ArrowLeft" || e.key === "[") step(-1);
    else if (e.key === "+" || e.key === "=") size = Math.min(320, size + 24);
    else if (e.key === "-") size = Math.max(48, size - 24);
    else if (e.key === "Escape") zoom.hidden = true;
    else if (e.key === "?") alert("← → or [ ]: previous / next attribute\n+ −: face size\nclick: enlarge, Esc: close");
    else return;
    document.body.style.setProperty("--face", size + "px");
    e.preventDefault();
  });

  const wanted = decodeURIComponent(location.hash.slice(1));
  const start = data.attributes.findIndex((a) => a.name === wanted);
  if (data.attributes.length) show(start >= 0 ? start : 0);
})();
