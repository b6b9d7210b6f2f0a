// A minimal MCP Apps host for the explorer's browser tests, on the extension's host side (AppBridge), as
// ext-apps' examples/basic-host does: an MCP client over streamable HTTP to the real server, the tool
// called as a chat client calls it, its ui:// resource read and shown in a sandboxed frame under the CSP
// the resource declares. Everything the app asks of the host is recorded on `window.host` for the test.
import { AppBridge, PostMessageTransport, getToolUiResourceUri } from "@modelcontextprotocol/ext-apps/app-bridge";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const HOST = { name: "idc-mcp test host", version: "1.0.0" };
const record = { calls: [], results: [], context: [], links: [], logs: [], errors: [], timings: {} };
window.host = record;

function cspOf(declared = {}) {
  const list = (domains) => (domains || []).join(" ");
  return [
    "default-src 'none'",
    "script-src 'unsafe-inline'",
    "style-src 'unsafe-inline'",
    `img-src data: ${list(declared.resourceDomains)}`,
    `connect-src ${list(declared.connectDomains) || "'none'"}`,
    `frame-src ${list(declared.frameDomains) || "'none'"}`,
  ].join("; ");
}

async function start({ tool, args, theme, width }) {
  const transport = new StreamableHTTPClientTransport(new URL("/mcp", location.origin));
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    if (message.method === "tools/call") record.calls.push({ at: performance.now(), ...message.params });
    return send(message, options);
  };
  const client = new Client(HOST, {
    capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } },
  });
  await client.connect(transport);
  const tools = new Map((await client.listTools()).tools.map((t) => [t.name, t]));
  const uri = getToolUiResourceUri(tools.get(tool));
  const resource = (await client.readResource({ uri })).contents[0];
  const csp = (resource._meta || resource.meta)?.ui?.csp;

  const frame = document.createElement("iframe");
  frame.id = "app";
  frame.setAttribute("sandbox", "allow-scripts");
  frame.style.width = `${width}px`;
  frame.style.height = "600px";
  frame.style.border = "1px solid #888";
  document.body.append(frame);

  const bridge = new AppBridge(
    client,
    HOST,
    { openLinks: {}, serverTools: {}, updateModelContext: { text: {}, structuredContent: {} }, logging: {} },
    { hostContext: { theme, displayMode: "inline", containerDimensions: { maxWidth: width } } },
  );
  bridge.onupdatemodelcontext = async (params) => { record.context.push(params); return {}; };
  bridge.onopenlink = async ({ url }) => { record.links.push(url); return {}; };
  bridge.onloggingmessage = (params) => record.logs.push(params);
  bridge.onsizechange = ({ height }) => { if (height) frame.style.height = `${Math.min(height, 4000)}px`; };
  const initialised = new Promise((resolve) => { bridge.oninitialized = resolve; });
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));

  // The host's CSP goes first in the document, so it governs everything the app's HTML holds.
  const meta = `<meta http-equiv="Content-Security-Policy" content="${cspOf(csp)}">`;
  frame.srcdoc = resource.text.replace("<head>", `<head>${meta}`);
  await initialised;
  record.timings.initialised = performance.now();

  record.timings.calledAt = performance.timeOrigin + performance.now(); // comparable across frames
  bridge.sendToolInput({ arguments: args });
  const result = await client.callTool({ name: tool, arguments: args });
  record.results.push(result);
  await bridge.sendToolResult(result);
  window.setTheme = (next) => bridge.setHostContext({ theme: next, displayMode: "inline", containerDimensions: { maxWidth: width } });
  return { resultText: result.content.map((c) => c.text || "").join("\n"), csp: cspOf(csp) };
}

window.startHost = (options) => start(options).catch((error) => { record.errors.push(String(error?.stack || error)); throw error; });
