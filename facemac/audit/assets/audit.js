/* facemac audit labelling page: plain file, no server. The data (template cells, faces, the MAC's guesses) is in the
   page's <script id="audit-data">; judgements live in memory until "Save" downloads the filled CSV, written in
   exactly the template's format (only attribute cells change; blank = not judged). */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("audit-data").textContent);
  const A = D.attributes, R = D.rows.length;
  const col = A.map(a => D.header.indexOf(a));
  const cells = D.rows.map(r => col.map(c => normal(r[c])));  // "1" | "0" | ""
  const history = [];
  let mode = "face", cur = {face: 0, attr: 0}, dirty = false, status = "";

  function normal(v) {
    v = String(v == null ? "" : v).trim();
    if (v === "1" || v === "1.0" || v === "+1") return "1";
    if (v === "0" || v === "0.0" || v === "-1" || v === "-1.0") return "0";
    return "";
  }
  function macYes(i, j) { return D.mac[i][j] > D.thresholds[j]; }
  const $ = id => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // ---- judgements ----
  function set(i, j, v, advance) {
    if (cells[i][j] !== v) { history.push([i, j, cells[i][j]]); cells[i][j] = v; dirty = true; }
    if (advance) move(1); else render();
  }
  function undo() {
    const h = history.pop();
    if (!h) return;
    cells[h[0]][h[1]] = h[2]; cur = {face: h[0], attr: h[1]}; dirty = true; render();
  }
  function move(step) {  // face mode: attribute after attribute, then the next face; attribute mode: face after face
    let k = mode === "face" ? cur.face * A.length + cur.attr : cur.attr * R + cur.face;
    k = Math.max(0, Math.min(R * A.length - 1, k + step));
    cur = mode === "face" ? {face: Math.floor(k / A.length), attr: k % A.length} : {face: k % R, attr: Math.floor(k / R)};
    render();
  }
  function jump(step) {  // the next face (face mode) or the next attribute (attribute mode)
    if (mode === "face") cur.face = Math.max(0, Math.min(R - 1, cur.face + step));
    else cur.attr = Math.max(0, Math.min(A.length - 1, cur.attr + step));
    render();
  }

  // ---- CSV (RFC 4180, minimal quoting like the template's writer) ----
  function quote(v) { return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  function toCsv() {
    const lines = [D.header.map(quote).join(",")];
    D.rows.forEach((r, i) => {
      const out = r.slice();
      col.forEach((c, j) => { out[c] = cells[i][j]; });
      lines.push(out.map(quote).join(","));
    });
    return lines.join("\n") + "\n";
  }
  function parseCsv(text) {
    const rows = []; let row = [], f = "", q = false;
    text = text.replace(/^\ufeff/, "");
    for (let k = 0; k < text.length; k++) {
      const ch = text[k];
      if (q) {
        if (ch === '"' && text[k + 1] === '"') { f += '"'; k++; }
        else if (ch === '"') q = false;
        else f += ch;
      } else if (ch === '"') q = true;
      else if (ch === ",") { row.push(f); f = ""; }
      else if (ch === "\n" || ch === "\r") {
        if (ch === "\r" && text[k + 1] === "\n") k++;
        row.push(f); f = ""; rows.push(row); row = [];
      } else f += ch;
    }
    if (f !== "" || row.length) { row.push(f); rows.push(row); }
    return rows.filter(r => r.length > 1 || r[0] !== "");
  }
  function save() {
    const blob = new Blob([toCsv()], {type: "text/csv"});
    const a = el("a"); a.href = URL.createObjectURL(blob); a.download = D.dataset + ".csv";
    document.body.appendChild(a); a.click(); a.remove();
    dirty = false; status = "saved " + D.dataset + ".csv (your browser's downloads folder)"; render();
  }
  function reopen(file) {
    const reader = new FileReader();
    reader.onload = () => {
      const rows = parseCsv(String(reader.result));
      if (!rows.length || rows[0].indexOf("path") < 0) { status = file.name + ": no 'path' column; not an audit CSV"; render(); return; }
      const head = rows[0].map(h => h.trim()), p = head.indexOf("path");
      const at = A.map(a => head.indexOf(a));
      const where = new Map(D.rows.map((r, i) => [r[D.header.indexOf("path")], i]));
      let used = 0, foreign = 0, judged = 0;
      rows.slice(1).forEach(r => {
        const i = where.get((r[p] || "").trim());
        if (i === undefined) { foreign++; return; }
        used++;
        at.forEach((c, j) => { if (c >= 0) { cells[i][j] = normal(r[c]); if (cells[i][j]) judged++; } });
      });
      history.length = 0; dirty = false;
      status = "opened " + file.name + ": " + used + " faces, " + judged + " judgements" +
        (foreign ? "; " + foreign + " rows of another sample ignored" : "");
      render();
    };
    reader.readAsText(file);
  }

  // ---- drawing ----
  function face(i, cls) {
    const box = el("div", "face " + (cls || ""));
    if (D.faces[i]) { const img = el("img"); img.src = D.faces[i]; img.alt = D.rows[i][0]; box.appendChild(img); }
    else box.appendChild(el("div", "missing", "image not readable"));
    return box;
  }
  function guess(i, j) {
    return el("span", "guess " + (macYes(i, j) ? "g-yes" : "g-no"),
      "MAC: " + (macYes(i, j) ? "yes" : "no") + " (" + D.mac[i][j].toFixed(2) + ")");
  }
  function buttons(i, j) {
    const wrap = el("span", "buttons");
    [["1", "yes", "1"], ["0", "no", "0"], ["", "blank", "x"]].forEach(([v, label, key]) => {
      const b = el("button", "b-" + label + (cells[i][j] === v && v !== "" ? " on" : ""), label + " [" + key + "]");
      b.dataset.face = i; b.dataset.attr = j; b.dataset.value = v;
      b.onclick = ev => { ev.stopPropagation(); cur = {face: i, attr: j}; set(i, j, v, false); };
      wrap.appendChild(b);
    });
    return wrap;
  }
  function judgement(i, j) {
    const v = cells[i][j];
    return el("span", "judged " + (v === "1" ? "j-yes" : v === "0" ? "j-no" : "j-none"),
      v === "1" ? "yes" : v === "0" ? "no" : "not judged");
  }
  function renderFace() {
    const i = cur.face, main = $("main");
    const top = el("div", "face-view");
    top.appendChild(face(i, "big"));
    const info = el("div", "info");
    info.appendChild(el("div", "path", "face " + (i + 1) + " / " + R + " · " + D.rows[i][0]));
    const table = el("table", "attrs");
    A.forEach((a, j) => {
      const tr = el("tr", j === cur.attr ? "current" : "");
      tr.dataset.attr = j;
      tr.onclick = () => { cur.attr = j; render(); };
      [el("td", "name", a), el("td"), el("td"), el("td")].forEach(td => tr.appendChild(td));
      tr.children[1].appendChild(guess(i, j)); tr.children[2].appendChild(judgement(i, j));
      tr.children[3].appendChild(buttons(i, j));
      table.appendChild(tr);
    });
    info.appendChild(table);
    top.appendChild(info);
    main.appendChild(top);
    const cur_row = table.children[cur.attr];
    if (cur_row && cur_row.scrollIntoView) cur_row.scrollIntoView({block: "nearest"});
  }
  function renderAttr() {
    const j = cur.attr, main = $("main");
    const sel = el("select"); sel.id = "attr-select";
    A.forEach((a, k) => { const o = el("option", null, a); o.value = k; if (k === j) o.selected = true; sel.appendChild(o); });
    sel.onchange = () => { cur.attr = Number(sel.value); cur.face = 0; render(); };
    const head = el("div", "attr-head");
    head.appendChild(el("span", null, "attribute: ")); head.appendChild(sel);
    const done = cells.filter(r => r[j] !== "").length;
    head.appendChild(el("span", "count", " " + done + " / " + R + " faces judged on " + A[j]));
    main.appendChild(head);
    const grid = el("div", "grid");
    for (let i = 0; i < R; i++) {
      const card = el("div", "card" + (i === cur.face ? " current" : ""));
      card.dataset.face = i;
      card.onclick = () => { cur.face = i; render(); };
      card.appendChild(face(i));
      card.appendChild(guess(i, j)); card.appendChild(judgement(i, j)); card.appendChild(buttons(i, j));
      grid.appendChild(card);
    }
    main.appendChild(grid);
    const c = grid.children[cur.face];
    if (c && c.scrollIntoView) c.scrollIntoView({block: "nearest"});
  }
  function render() {
    const main = $("main"); main.innerHTML = "";
    if (mode === "face") renderFace(); else renderAttr();
    const judged = cells.reduce((s, r) => s + r.filter(v => v !== "").length, 0);
    const full = cells.filter(r => r.every(v => v !== "")).length;
    $("progress").textContent = judged + " / " + R * A.length + " judgements · " + full + " / " + R +
      " faces complete" + (dirty ? " · unsaved changes" : "");
    $("bar").style.width = (100 * judged / (R * A.length)).toFixed(1) + "%";
    $("status").textContent = status;
    $("mode-face").classList.toggle("on", mode === "face");
    $("mode-attr").classList.toggle("on", mode === "attr");
  }
  function setMode(m) { mode = m; render(); }

  document.addEventListener("keydown", ev => {
    if (ev.target && ev.target.tagName === "SELECT" && ev.key.startsWith("Arrow")) return;  // the list's own keys
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const i = cur.face, j = cur.attr;
    const keys = {
      "1": () => set(i, j, "1", true), "y": () => set(i, j, "1", true),
      "0": () => set(i, j, "0", true), "n": () => set(i, j, "0", true),
      " ": () => set(i, j, macYes(i, j) ? "1" : "0", true),
      "x": () => set(i, j, "", true), "Backspace": () => set(i, j, "", false), "Delete": () => set(i, j, "", false),
      "u": undo, "ArrowRight": () => move(1), "ArrowDown": () => move(1), "ArrowLeft": () => move(-1),
      "ArrowUp": () => move(-1), "]": () => jump(1), "[": () => jump(-1),
      "f": () => setMode("face"), "a": () => setMode("attr"), "s": save,
    };
    const act = keys[ev.key];
    if (act) { ev.preventDefault(); act(); }
  });
  $("mode-face").onclick = () => setMode("face");
  $("mode-attr").onclick = () => setMode("attr");
  $("save").onclick = save;
  $("open").onchange = ev => { if (ev.target.files[0]) reopen(ev.target.files[0]); ev.target.value = ""; };
  window.facemacAudit = {toCsv: toCsv, cells: cells};  // for tests and the curious
  render();
})();
