// Builds ../explorer.html: the app's script (with the ext-apps App class and its dependencies) and its
// styles inlined into one self-contained HTML file, the same bytes for the same sources and lock file.
// Usage: npm ci && npm run build   (or: node build.mjs --check, which fails if the file would change)
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
const out = here("../explorer.html");

const bundled = await build({
  entryPoints: [here("explorer.js")],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  write: false,
  legalComments: "eof",
  charset: "utf8",
});
const script = bundled.outputFiles[0].text.replaceAll("</script", "<\\/script");
const style = readFileSync(here("explorer.css"), "utf8");
const html = readFileSync(here("explorer.html"), "utf8")
  .replace("/*STYLE*/", () => style)
  .replace("/*SCRIPT*/", () => script);

if (process.argv.includes("--check")) {
  const current = readFileSync(out, "utf8");
  if (current !== html) {
    console.error("explorer.html is not the build of src/: run `npm ci && npm run build` in idc_mcp/apps/src");
    process.exit(1);
  }
  console.log("explorer.html is up to date");
} else {
  writeFileSync(out, html);
  console.log(`wrote ${out} (${html.length} bytes)`);
}
