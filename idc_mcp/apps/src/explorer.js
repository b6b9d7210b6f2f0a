// The IDC explorer, an MCP App: overview charts, a series grid with previews, a viewer and the
// selection tools as actions (and save_cohort), each a real tool call through the host (App.callServerTool).
// Metadata text is data: it only ever goes into textContent, never into HTML.
import {
  App,
  applyDocumentTheme,
  applyHostFonts,
  applyHostStyleVariables,
} from "@modelcontextprotocol/ext-apps/app-with-deps";

const FACET_TITLES = {
  collection: "Collection",
  modality: "Modality",
  body_part: "Body part",
  manufacturer: "Manufacturer",
  license: "License",
};
const NO_PIXELS = new Set(["SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "KO", "PR", "ANN", "REG", "FID", "RWV", "DOC", "PLAN"]);
const PREVIEWS_AT_ONCE = 3;
const PAGE_SIZE = 12;
const DOWNLOAD_DIR = "idc_explorer"; // inside the server's download root
// Where "open in IDC's viewer" may lead (the server's VIEWER_DOMAINS, checked by a test).
const VIEWER_DOMAINS = ["https://viewer.imaging.datacommons.cancer.gov"];

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};
const number = (n) => Number(n).toLocaleString("en-US");
const size = (mb) => (mb >= 1000 ? `${(mb / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 })} GB` : `${Math.round(mb).toLocaleString("en-US")} MB`);

const state = {
  base: null, // the selection the app was opened with (explore's arguments)
  filters: {}, // facet -> values the user clicked
  overview: null,
  page: 1,
  pages: 1,
  viewer: null, // { card, info, index, count, window, montage, overlay }
  previews: new Map(), // series uid -> Promise<{url, info} | {error}>
  queue: [],
  running: 0,
  sliceRequest: 0,
  viewerBusy: false, // a viewer picture is being made: card previews wait
};

const app = new App({ name: "IDC explorer", version: "1.0.0" }, {}, { autoResize: true });

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function textOf(result) {
  return (result.content || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

async function call(name, args) {
  const result = await app.callServerTool({ name, arguments: args });
  if (result.isError) throw new Error(textOf(result) || `${name} failed`);
  return result;
}

function applyHost(context) {
  if (!context) return;
  if (context.theme) applyDocumentTheme(context.theme);
  if (context.styles?.variables) applyHostStyleVariables(context.styles.variables);
  if (context.styles?.css?.fonts) applyHostFonts(context.styles.css.fonts);
  const width = context.containerDimensions?.maxWidth ?? context.containerDimensions?.width;
  if (width) document.body.style.maxWidth = `${width}px`;
}

// ---------------------------------------------------------------- overview
function selectionArgs() {
  return { selection: state.base || {}, filters: state.filters };
}

function paintOverview(view) {
  state.overview = view;
  const totals = [
    ["series", view.series, number],
    ["patients", view.patients, number],
    ["studies", view.studies, number],
    ["size", view.size_MB, size],
  ];
  $("totals").replaceChildren(
    ...totals.map(([label, value, format]) =>
      el("div", { className: "total", id: `total-${label}` }, el("b", { textContent: format(value) }), el("span", { textContent: label })),
    ),
  );
  const chips = [];
  for (const [facet, values] of Object.entries(state.filters)) {
    for (const value of values) {
      const chip = el("button", {
        type: "button",
        className: "chip",
        textContent: `${FACET_TITLES[facet]}: ${value}`,
        title: "Remove this filter",
      });
      chip.setAttribute("aria-label", `Remove filter ${FACET_TITLES[facet]} ${value}`);
      chip.dataset.facet = facet;
      chip.dataset.value = value;
      chip.addEventListener("click", () => removeFilter(facet, value));
      chips.push(chip);
    }
  }
  $("chips").replaceChildren(...chips);
  $("facets").replaceChildren(
    ...view.facets.map((f) => {
      const most = Math.max(1, ...f.bars.map((b) => b.series));
      const bars = f.bars.map((b) => {
        const bar = el("button", { type: "button", className: "bar" }, el("span", { className: "v", textContent: b.value }), el("span", { className: "n", textContent: number(b.series) }));
        bar.style.setProperty("--w", `${(100 * b.series) / most}%`);
        bar.dataset.facet = f.facet;
        bar.dataset.value = b.value;
        bar.title = `${b.value}: ${number(b.series)} series, ${size(b.size_MB)}`;
        bar.setAttribute("aria-label", `${FACET_TITLES[f.facet]} ${b.value}: ${number(b.series)} series. Narrow to it`);
        const only = f.bars.length === 1 && !f.others;
        bar.disabled = only;
        bar.addEventListener("click", () => addFilter(f.facet, b.value));
        return el("li", {}, bar);
      });
      const others = f.others ? [el("li", { className: "others", textContent: `+ ${number(f.others)} series in ${f.distinct - f.bars.length} more` })] : [];
      const section = el("section", { className: "facet" }, el("h3", { textContent: FACET_TITLES[f.facet] }), el("ol", {}, ...bars, ...others));
      section.dataset.facet = f.facet;
      return section;
    }),
  );
  status(`${number(view.series)} series`);
  requestAnimationFrame(() => {
    // When the overview reached the screen (a wall-clock time the host's can be compared with).
    document.body.dataset.paintedAt = String(performance.timeOrigin + performance.now());
    document.body.dataset.painted = String((Number(document.body.dataset.painted) || 0) + 1);
  });
}

async function refresh(reason) {
  status("Updating…");
  try {
    const result = await call("explorer_overview", selectionArgs());
    paintOverview(result.structuredContent);
    state.page = 1;
    await loadPage();
    tellModel(reason);
  } catch (error) {
    status(error.message, true);
  }
}

function addFilter(facet, value) {
  const values = state.filters[facet] || [];
  if (values.includes(value)) return;
  state.filters = { ...state.filters, [facet]: [...values, value] };
  refresh(`The user narrowed the selection to ${FACET_TITLES[facet]} = ${value}.`);
}

function removeFilter(facet, value) {
  const values = (state.filters[facet] || []).filter((v) => v !== value);
  const next = { ...state.filters };
  if (values.length) next[facet] = values;
  else delete next[facet];
  state.filters = next;
  refresh(`The user removed the filter ${FACET_TITLES[facet]} = ${value}.`);
}

function tellModel(what) {
  const view = state.overview;
  if (!view) return;
  const text =
    `${what} The explorer now shows ${number(view.series)} series, ${number(view.patients)} patients, ${size(view.size_MB)}. ` +
    `To act on exactly this selection, pass these arguments to a selection tool: ${JSON.stringify(view.selection)}`;
  app.updateModelContext({ content: [{ type: "text", text }], structuredContent: { selection: view.selection, filters: view.filters } }).catch(() => {});
}

// ---------------------------------------------------------------- series grid
async function loadPage() {
  const result = await call("explorer_series", { ...selectionArgs(), page: state.page, page_size: PAGE_SIZE });
  const data = result.structuredContent;
  state.pages = data.pages;
  $("page-label").textContent = `page ${number(data.page)} of ${number(data.pages)}`;
  $("prev").disabled = data.page <= 1;
  $("next").disabled = data.page >= data.pages;
  $("grid").replaceChildren(...data.cards.map(card));
}

function card(c) {
  const thumb = el("div", { className: "thumb", textContent: NO_PIXELS.has(c.modality) ? "no image" : "…" });
  const node = el(
    "button",
    { type: "button", className: "card" },
    thumb,
    el("span", { className: "d", textContent: c.description || "(no description)" }),
    el("span", { className: "m", textContent: `${c.modality || "?"} · ${c.body_part || "—"} · ${number(c.instances ?? 0)} inst. · ${size(c.size_MB ?? 0)}` }),
    el("span", { className: "m", textContent: `${c.collection_id} · ${c.license || "no license"}` }),
  );
  node.dataset.uid = c.series_uid;
  node.setAttribute("aria-label", `Open ${c.modality || ""} series ${c.description || c.series_uid} in the viewer`);
  node.addEventListener("click", () => openViewer(c));
  if (!NO_PIXELS.has(c.modality)) watch(thumb, c.series_uid);
  return node;
}

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    observer.unobserve(entry.target);
    const thumb = entry.target;
    preview(thumb.dataset.uid).then((got) => {
      if (got.url) thumb.replaceChildren(el("img", { src: got.url, alt: "" }));
      else thumb.textContent = "no preview";
      if (got.error) thumb.title = got.error;
    });
  }
});

function watch(thumb, uid) {
  thumb.dataset.uid = uid;
  observer.observe(thumb);
}

// A few previews at a time, each made once (cached by series).
function preview(uid) {
  if (!state.previews.has(uid)) {
    state.previews.set(uid, new Promise((resolve) => { state.queue.push({ uid, resolve }); pump(); }));
  }
  return state.previews.get(uid);
}

function pump() {
  // The viewer's picture goes first: no card preview starts while it is being made.
  while (state.running < PREVIEWS_AT_ONCE && state.queue.length && !state.viewerBusy) {
    const { uid, resolve } = state.queue.shift();
    state.running++;
    image({ series_uid: uid })
      .then(resolve, (error) => resolve({ error: error.message }))
      .finally(() => { state.running--; pump(); });
  }
}

async function image(args) {
  const result = await call("explorer_image", args);
  const block = result.content.find((c) => c.type === "image");
  return { url: `data:${block.mimeType};base64,${block.data}`, info: result.structuredContent, bytes: block.data.length };
}

// ---------------------------------------------------------------- viewer
async function openViewer(c) {
  state.viewer = { card: c, index: null, count: 1, window: "", montage: false, overlay: true, referenced: null, under: null };
  $("viewer").hidden = false;
  $("viewer-title").textContent = `${c.modality || ""} · ${c.description || c.series_uid}`;
  $("window").value = "";
  $("montage").checked = false;
  $("overlay").checked = true;
  const seg = c.modality === "SEG";
  const slide = c.modality === "SM";
  $("overlay-label").hidden = !seg;
  $("montage-label").hidden = seg || slide;
  $("window-label").hidden = slide;
  $("legend").replaceChildren();
  $("viewer").scrollIntoView({ block: "nearest" });
  if (NO_PIXELS.has(c.modality)) {
    $("viewer-img").removeAttribute("src");
    $("viewer-caption").textContent = `${c.modality} holds no image pixels: open it in IDC's viewer.`;
    $("slice-label").hidden = true;
    return;
  }
  await show({});
  tellModel(`The user opened series ${c.series_uid} (${c.modality}) in the viewer.`);
}

async function show(change) {
  const v = state.viewer;
  Object.assign(v, change);
  const request = ++state.sliceRequest;
  const started = performance.now();
  let args;
  if (v.card.modality === "SEG" && (v.overlay || !v.referenced)) {
    args = { series_uid: v.card.series_uid, window: v.window || null };
  } else if (v.card.modality === "SEG") {
    // The overlay off: the same slice of the referenced image, without the segments.
    args = { series_uid: v.referenced, kind: "slice", instance: v.under, window: v.window || null };
  } else if (v.montage) {
    args = { series_uid: v.card.series_uid, kind: "montage", window: v.window || null };
  } else {
    args = { series_uid: v.card.series_uid, kind: v.card.modality === "SM" ? "auto" : "slice", slice_index: v.index, window: v.window || null };
  }
  $("viewer-img").closest("figure").setAttribute("aria-busy", "true");
  state.viewerBusy = true;
  try {
    const got = await image(args);
    if (request !== state.sliceRequest) return; // a newer slice was asked for meanwhile
    const info = got.info;
    const img = $("viewer-img");
    img.src = got.url;
    await img.decode().catch(() => {});
    if (request !== state.sliceRequest) return;
    img.alt = `${info.modality} ${info.preview.replace("_", " ")} of series ${info.series_uid}`;
    img.dataset.bytes = String(got.bytes);
    img.dataset.request = String(request);
    img.dataset.fetched = String(info.bytes_fetched);
    img.dataset.ms = (performance.now() - started).toFixed(1); // from the request to the decoded picture
    if (info.preview === "seg_overlay") {
      v.referenced = info.referenced_series_uid;
      v.under = info.shown[1]?.sop_instance_uid;
      $("legend").replaceChildren(
        ...info.segments.map((s) => el("li", {}, Object.assign(el("i"), { style: `background:${s.colour}` }), `${s.number}: ${s.label}`)),
      );
    }
    const sliced = info.slice_count && info.slice_count > 1 && info.preview === "slice" && v.card.modality !== "SEG";
    $("slice-label").hidden = !sliced;
    if (sliced) {
      v.count = info.slice_count;
      v.index = info.slice_index;
      $("slice").max = String(info.slice_count - 1);
      $("slice").value = String(info.slice_index);
      $("slice-number").textContent = `${info.slice_index + 1} / ${info.slice_count}`;
    }
    const where = info.shown[0]?.position_mm != null && info.preview === "slice" ? ` · ${info.shown[0].position_mm.toFixed(1)} mm` : "";
    $("viewer-caption").textContent = `${info.preview.replace("_", " ")}${where} · ${info.scaling} · ${number(info.image_bytes)} bytes${info.cached ? " (cached)" : `, ${number(info.bytes_fetched)} fetched`}`;
    img.closest("figure").setAttribute("aria-busy", "false");
    document.body.dataset.shown = String(request);
  } catch (error) {
    if (request === state.sliceRequest) {
      $("viewer-caption").textContent = error.message;
      document.body.dataset.shown = String(request);
    }
  } finally {
    if (request === state.sliceRequest) {
      state.viewerBusy = false;
      pump();
    }
  }
}

function step(delta) {
  const v = state.viewer;
  if (!v || v.montage || $("slice-label").hidden) return;
  const next = Math.min(v.count - 1, Math.max(0, (v.index ?? 0) + delta));
  if (next !== v.index) show({ index: next });
}

$("slice").addEventListener("input", (e) => show({ index: Number(e.target.value) }));
$("viewer-img").addEventListener("wheel", (e) => { e.preventDefault(); step(e.deltaY > 0 ? 1 : -1); }, { passive: false });
$("viewer-img").addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowRight") { e.preventDefault(); step(1); }
  if (e.key === "ArrowUp" || e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
});
$("window").addEventListener("change", (e) => show({ window: e.target.value }));
$("montage").addEventListener("change", (e) => show({ montage: e.target.checked }));
$("overlay").addEventListener("change", (e) => show({ overlay: e.target.checked }));
$("viewer-close").addEventListener("click", () => { $("viewer").hidden = true; state.viewer = null; });
$("open-viewer").addEventListener("click", async () => {
  const v = state.viewer;
  try {
    const result = await call("get_viewer_url", { series_uid: v.card.series_uid });
    const url = result.structuredContent?.links?.[0]?.url;
    if (!url || !VIEWER_DOMAINS.some((d) => url.startsWith(`${d}/`))) throw new Error("the viewer link is not on IDC's viewer");
    const opened = await app.openLink({ url });
    $("viewer-caption").textContent = opened.isError ? `The host did not open the link: ${url}` : `Opened ${url}`;
  } catch (error) {
    $("viewer-caption").textContent = error.message;
  }
});
$("prev").addEventListener("click", () => { state.page--; loadPage().catch((e) => status(e.message, true)); });
$("next").addEventListener("click", () => { state.page++; loadPage().catch((e) => status(e.message, true)); });

// ---------------------------------------------------------------- actions
const ACTIONS = {
  licenses: {
    tool: "check_licenses",
    args: () => ({}),
    show(data) {
      const klass = data.commercial_use.replaceAll(" ", "-");
      return [
        el("p", { className: `verdict ${klass}`, textContent: `Commercial use: ${data.commercial_use}` }),
        el("p", { className: "verdict-text", textContent: data.verdict }),
        el("ul", {}, ...data.licenses.map((l) => el("li", { textContent: `${l.license}: ${number(l.series_count)} series, ${l.commercial_use}` }))),
      ];
    },
    told: (data) => `The user checked the licenses: commercial use ${data.commercial_use}. ${data.verdict}`,
  },
  size: {
    tool: "estimate_size",
    args: () => ({ download_dir: DOWNLOAD_DIR }),
    show(data) {
      const disk = data.disk;
      const free = disk ? ` Free space where it would go: ${size(disk.free_MB)}${disk.fits ? "" : ` (${size(disk.shortfall_MB)} short)`}.` : "";
      return [
        el("p", { className: `verdict ${disk && !disk.fits ? "not-allowed" : ""}`, textContent: `${number(data.series_count)} series, ${number(data.instance_count)} files, ${size(data.total_size_MB)}.${free}` }),
        el("p", { textContent: data.summary }),
      ];
    },
    told: (data) => `The user estimated the size: ${size(data.total_size_MB)}${data.disk ? (data.disk.fits ? ", it fits on disk" : ", it does NOT fit on disk") : ""}.`,
  },
  manifest: {
    tool: "export_manifest",
    args: () => ({ format: "s5cmd" }),
    show(data) {
      const text = data.content ?? "";
      return [
        el("p", { textContent: `${number(data.series_count ?? 0)} series in an s5cmd manifest${data.path ? ` written to ${data.path}` : ""}.` }),
        el("pre", { textContent: text.slice(0, 4000) }),
      ];
    },
    told: (data) => `The user exported an s5cmd manifest of ${number(data.series_count ?? 0)} series.`,
  },
  download: {
    tool: "download",
    args: () => ({ download_dir: DOWNLOAD_DIR, dry_run: true }),
    show(data) {
      const what = `${number(data.series_count)} series, ${number(data.files_total)} files, ${size(data.bytes_total / 1e6)} to ${data.destination}`;
      if (!data.dry_run) {
        return [el("p", { className: "verdict", textContent: `Downloaded ${number(data.files_downloaded)} files (${number(data.files_skipped)} already there): ${what}.` })];
      }
      const go = el("button", { type: "button", id: "confirm-download", textContent: "Download now" });
      go.addEventListener("click", () => act("download", { dry_run: false }));
      return [el("p", { textContent: `Plan: ${what}; ${size(data.free_bytes / 1e6)} free. Check the licenses first.` }), go];
    },
    told: (data) =>
      data.dry_run
        ? `The user planned a download of ${number(data.series_count)} series (dry run, nothing written yet).`
        : `The user downloaded ${number(data.series_count)} series to ${data.destination}.`,
  },
  cohort: {
    tool: "save_cohort",
    // Only emptiness is checked here: the server says which names it accepts.
    check: () => ($("cohort-name").value.trim() ? "" : "Type a name for the cohort first."),
    args: () => ({ name: $("cohort-name").value, description: cohortDescription() }),
    show(data) {
      const file = data.path.split(/[\\/]/).pop();
      return [
        el("p", { className: "verdict", textContent: `Saved cohort ${data.name}: ${number(data.member_count)} series, ${size(data.total_size_MB)}, IDC release ${data.idc_release}.` }),
        el("p", { className: "cohort-file", textContent: `File: ${file} (${data.path})` }),
        ...(data.notes || []).map((note) => el("p", { textContent: note })),
      ];
    },
    told: (data) =>
      `The user saved the selection as the cohort ${JSON.stringify(data.name)}: ${number(data.member_count)} series, file ${data.path}. ` +
      `compare_cohort(${JSON.stringify(data.name)}) checks it against a later IDC release.`,
  },
};

function cohortDescription() {
  const filters = Object.entries(state.filters).flatMap(([facet, values]) => values.map((v) => `${FACET_TITLES[facet]} = ${v}`));
  const narrowed = filters.length ? `, narrowed to ${filters.join(", ")}` : "";
  return `Saved from the IDC explorer: ${number(state.overview.series)} series${narrowed}.`.slice(0, 4000);
}

async function act(name, extra = {}) {
  const action = ACTIONS[name];
  const out = $("action-result");
  out.hidden = false;
  out.dataset.action = name;
  out.dataset.state = "running";
  const problem = action.check?.();
  if (problem) {
    out.replaceChildren(el("p", { className: "not-allowed", textContent: problem }));
    out.dataset.state = "error";
    return;
  }
  out.replaceChildren(el("p", { textContent: `${action.tool}…` }));
  try {
    const result = await call(action.tool, { ...state.overview.selection, ...action.args(), ...extra });
    const data = result.structuredContent || {};
    out.replaceChildren(...action.show(data));
    out.dataset.state = "done";
    tellModel(action.told(data));
  } catch (error) {
    out.replaceChildren(el("p", { className: "not-allowed", textContent: error.message }));
    out.dataset.state = "error";
  }
}

for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => act(button.dataset.action));
}
$("cohort-name").addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); act("cohort"); }
});

// ---------------------------------------------------------------- start
app.ontoolinput = ({ arguments: args }) => {
  state.base = args || {};
};
app.ontoolresult = (result) => {
  $("app").setAttribute("aria-busy", "false");
  if (result.isError || !result.structuredContent) {
    status(textOf(result) || "The explorer got no overview.", true);
    return;
  }
  if (!state.base) state.base = result.structuredContent.selection;
  paintOverview(result.structuredContent);
  loadPage().catch((error) => status(error.message, true));
};
app.ontoolcancelled = ({ reason }) => status(`Cancelled${reason ? `: ${reason}` : ""}`, true);
app.onhostcontextchanged = (context) => applyHost(context);

await app.connect();
applyHost(app.getHostContext());
