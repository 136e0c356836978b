// Handlebars.js for the SendGrid emulator (simulator/emulators/templating.py starts this once and talks to it).
//
// One JSON request per line on stdin, one JSON answer per line on stdout:
//   {"op": "render", "template": "...", "data": {...}}  -> {"ok": true, "output": "..."}
//   {"op": "variables", "template": "..."}               -> {"ok": true, "variables": [...], "helpers": [...]}
//   any failure (a syntax error, a missing helper)       -> {"ok": false, "error": "..."}
// It exits when stdin closes, so it never outlives the emulator that started it.
//
// Rendering is Handlebars.js itself, with only its built-in helpers (if, unless, each, with, lookup, log):
// SendGrid's dynamic templates are Handlebars ("Using Handlebars", SendGrid docs), and the receipt
// template uses none of the extra helpers SendGrid lists there, so a template that does fails loudly
// here ("Missing helper") instead of rendering something SendGrid would not.
"use strict";

const readline = require("node:readline");
const Handlebars = require("handlebars");

const handlebars = Handlebars.create();
const compiled = new Map(); // template source -> compiled function (a few templates, many renders)
const MAX_COMPILED = 64;

function render(template, data) {
  let fn = compiled.get(template);
  if (fn === undefined) {
    fn = handlebars.compile(template);
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value);
    compiled.set(template, fn);
  }
  return fn(data || {});
}

// The top-level variables a template reads, and the helpers it calls, from Handlebars' own parser.
// Inside #each / #with the context changes: only paths that climb back to the root (../name) count.
function variables(template) {
  const found = new Set();
  const helpers = new Set();
  const visitPath = (path, depth) => {
    if (path.type !== "PathExpression" || path.data || path.parts.length === 0) return;
    if (path.depth === depth) found.add(path.parts[0]);
  };
  const visitCall = (node, depth) => {
    const params = node.params || [];
    const pairs = node.hash ? node.hash.pairs : [];
    const isCall = params.length > 0 || pairs.length > 0;
    if (isCall) helpers.add(node.path.original);
    else visitPath(node.path, depth);
    for (const param of params) visitValue(param, depth);
    for (const pair of pairs) visitValue(pair.value, depth);
    return isCall ? node.path.original : null;
  };
  const visitValue = (value, depth) => {
    if (value.type === "SubExpression") visitCall(value, depth);
    else visitPath(value, depth);
  };
  const visitProgram = (program, depth) => {
    if (!program) return;
    for (const node of program.body) {
      if (node.type === "MustacheStatement") visitCall(node, depth);
      else if (node.type === "BlockStatement") {
        const helper = visitCall(node, depth);
        const inner = helper === "each" || helper === "with" ? depth + 1 : depth;
        visitProgram(node.program, inner);
        visitProgram(node.inverse, depth);
      } else if (node.type === "PartialStatement" || node.type === "PartialBlockStatement") {
        throw new Error("partials are not supported by SendGrid dynamic templates");
      }
    }
  };
  visitProgram(handlebars.parse(template), 0);
  return { variables: [...found].sort(), helpers: [...helpers].sort() };
}

function answer(request) {
  try {
    if (request.op === "render") return { ok: true, output: render(String(request.template), request.data) };
    if (request.op === "variables") return { ok: true, ...variables(String(request.template)) };
    return { ok: false, error: `unknown op ${JSON.stringify(request.op)}` };
  } catch (error) {
    return { ok: false, error: String(error && error.message ? error.message : error) };
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    process.stdout.write(JSON.stringify({ ok: false, error: `not JSON: ${error.message}` }) + "\n");
    return;
  }
  process.stdout.write(JSON.stringify(answer(request)) + "\n");
});
lines.on("close", () => process.exit(0));
