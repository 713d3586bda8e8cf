// The page over symlstm's JSON API: /api/info, /api/sample, /api/score. No framework, nothing
// loaded from elsewhere. Every rule and every number comes from the server.
"use strict";

const $ = (id) => document.getElementById(id);
const PUNCT = "，。！？；：、";
let seed = 1;

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({error: `the server answered ${resp.status}`}));
  if (!resp.ok || data.error) throw new Error(data.error || `the server answered ${resp.status}`);
  return data;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function settings() {
  return {
    form: $("form").value, tones: $("tones").value, temperature: parseFloat($("temperature").value),
    num: parseInt($("num").value, 10), candidates: parseInt($("candidates").value, 10),
    acrostic: $("acrostic").value.trim(), keywords: $("keywords").value.trim(),
    template: $("template").value.trim(), couplet: $("couplet").value.trim(), seed: seed++,
  };
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// One poem as a card: characters shaded by surprisal, tones above, faults and notes beside.
function card(row, locked) {
  const box = el("div", "poem");
  box.dataset.text = row.text;
  const lines = el("div", "lines");
  let line = el("div", "line");
  const bits = row.surprisal || [];
  [...row.text].forEach((ch, i) => {
    if (PUNCT.includes(ch)) {
      line.appendChild(el("span", "punct", ch));
      lines.appendChild(line);
      line = el("div", "line");
      return;
    }
    const ruby = el("ruby", "ch");
    ruby.dataset.index = i;
    ruby.appendChild(document.createTextNode(ch));
    ruby.appendChild(el("rt", "", row.marks ? row.marks[i] : ""));
    if (bits[i]) {
      const alpha = Math.min(bits[i][1] / 16, 1) * 0.6;
      ruby.style.background = `rgba(179, 38, 30, ${alpha.toFixed(3)})`;
      ruby.title = `${bits[i][1].toFixed(1)} bits`;
    }
    if (locked && locked.has(i)) ruby.classList.add("locked");
    ruby.addEventListener("click", () => ruby.classList.toggle("locked"));
    line.appendChild(ruby);
  });
  if (line.childNodes.length) lines.appendChild(line);
  box.appendChild(lines);
  const meta = [];
  if (row.form) meta.push(`${row.form}, ${row.pattern}, rhyme ${row.rhyme}`);
  else if (row.couplet) meta.push(`對聯: tones opposed at ${row.couplet.opposed} of ${row.couplet.positions} places` +
    (row.couplet.shared ? ", shares a character with the 上聯" : ""));
  else meta.push("not a regulated form");
  if (row.perplexity) meta.push(`perplexity ${row.perplexity.toFixed(1)}`);
  if (row.keywords) meta.push("keywords " + Object.entries(row.keywords).map(([w, hit]) => `${w} ${hit ? "✓" : "✗"}`).join(" "));
  box.appendChild(el("div", "meta", meta.join(" · ")));
  if (row.note) box.appendChild(el("p", "note", row.note));
  if (row.form) {
    const faults = el("ul", "faults");
    for (const f of row.faults) faults.appendChild(el("li", "", `line ${f.line}, character ${f.char}: ${f.rule}: ${f.detail}`));
    if (!row.faults.length) faults.appendChild(el("li", "clean", "no faults"));
    if (row.undecided.length) faults.appendChild(el("li", "", `${row.undecided.join(" and ")} undecided: ` +
      `${row.unjudged.join(" ")} not in the 平水韻 table or its supplement where a rule reads them`));
    box.appendChild(faults);
    if (row.notes.length) {
      const notes = el("ul", "notes");
      for (const n of row.notes) notes.appendChild(el("li", "", n));
      box.appendChild(notes);
    }
    const rewrite = el("button", "rewrite", "Rewrite the rest");
    rewrite.type = "button";
    rewrite.addEventListener("click", () => rewriteRest(box, rewrite));
    box.appendChild(rewrite);
  }
  return box;
}

async function busy(button, work) {
  button.disabled = true;
  showError("");
  try {
    await work();
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// Fill-in: the locked characters become a template, everything else is written anew.
function rewriteRest(box, button) {
  const locked = new Set([...box.querySelectorAll(".ch.locked")].map((c) => parseInt(c.dataset.index, 10)));
  const template = [...box.dataset.text].map((ch, i) => (PUNCT.includes(ch) || locked.has(i) ? ch : "＿")).join("");
  return busy(button, async () => {
    const body = {...settings(), num: 1, template, acrostic: "", couplet: ""};
    const data = await api("/api/sample", body);
    box.replaceWith(card(data.poems[0], locked));
  });
}

async function start() {
  const info = await api("/api/info");
  $("model").textContent = `${info.model} · ${info.vocabulary} characters`;
  for (const f of info.forms) {
    const option = el("option", "", `${f.name} (${f.id})`);
    option.value = f.id;
    if (f.aliases && f.aliases.length) option.title = `also called ${f.aliases.join(" ")}`;
    $("form").appendChild(option);
  }
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("write"), async () => {
      const data = await api("/api/sample", settings());
      $("poems").replaceChildren(...data.poems.map((row) => card(row)));
    });
  });
  $("scoring").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("score"), async () => {
      const data = await api("/api/score", {text: $("own").value});
      $("scored").replaceChildren(card(data.poem));
    });
  });
}

start().catch((err) => showError(err.message));
