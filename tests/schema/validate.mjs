#!/usr/bin/env node
// Validates JSON documents against a JSON Schema (draft 2020-12) with Ajv in strict mode.
//
//   node tests/schema/validate.mjs [--expect-invalid] <schema.json> <path>...
//
// <path> is a .json file (one document), a directory (every *.json directly inside it, sorted),
// an .ndjson / .jsonl file (one document per non-blank line), or "-" (NDJSON on stdin).
//
// Prints one line per document: "ok <name>" or "FAIL <name>: <instancePath> <message>; ...".
// Exit status: 0 when every document is valid (with --expect-invalid: when every document is
// invalid against the schema); 1 otherwise; 2 on usage errors, an unusable schema, an unreadable
// path, or when no document at all was read — a validator that read nothing must not pass.
// A document that is not JSON is an error in both modes: --expect-invalid proves the schema
// rejects a document, which a syntax error would not show.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const USAGE = "usage: node validate.mjs [--expect-invalid] <schema.json> <path>...\n" +
  "  <path>: a .json file, a directory (its *.json files), an .ndjson/.jsonl file, or - (NDJSON on stdin)";

function usage(message) {
  if (message) process.stderr.write(`validate: ${message}\n`);
  process.stderr.write(USAGE + "\n");
  process.exit(2);
}

// Not a usage mistake, but nothing trustworthy can be reported either: exit 2 as well.
function fatal(message) {
  process.stderr.write(`validate: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  let expectInvalid = false;
  const positional = [];
  let optionsDone = false;
  for (const arg of argv) {
    if (!optionsDone && arg === "--") optionsDone = true;
    else if (!optionsDone && arg === "--expect-invalid") expectInvalid = true;
    else if (!optionsDone && (arg === "-h" || arg === "--help")) usage();
    else if (!optionsDone && arg.startsWith("--")) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length < 2) usage("need a schema and at least one path");
  return { expectInvalid, schemaPath: positional[0], paths: positional.slice(1) };
}

function stripBom(text) {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

// A document is {name, doc} or {name, parseError}.
function parseOne(name, text) {
  try {
    return { name, doc: JSON.parse(text) };
  } catch (err) {
    return { name, parseError: err.message };
  }
}

function parseNdjson(name, text) {
  const docs = [];
  stripBom(text).split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    docs.push(parseOne(`${name}:${i + 1}`, line));
  });
  return docs;
}

function readPath(path) {
  try {
    return readPathUnchecked(path);
  } catch (err) {
    fatal(`cannot read ${path === "-" ? "stdin" : path}: ${err.code ?? err.message}`);
  }
}

function readPathUnchecked(path) {
  if (path === "-") return parseNdjson("<stdin>", readFileSync(0, "utf8"));
  const st = statSync(path);
  if (st.isDirectory()) {
    return readdirSync(path, { withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(".json"))
      .map((e) => e.name)
      .sort()
      .map((n) => parseOne(join(path, n), stripBom(readFileSync(join(path, n), "utf8"))));
  }
  const ext = extname(path).toLowerCase();
  const text = readFileSync(path, "utf8");
  if (ext === ".ndjson" || ext === ".jsonl") return parseNdjson(path, text);
  return [parseOne(path, stripBom(text))];
}

function describe(err) {
  const where = err.instancePath === "" ? "/" : err.instancePath;
  let msg = err.message ?? err.keyword;
  if (err.keyword === "additionalProperties") msg += ` (${JSON.stringify(err.params.additionalProperty)})`;
  else if (err.keyword === "enum") msg += ` (${err.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")})`;
  else if (err.keyword === "const") msg += ` (${JSON.stringify(err.params.allowedValue)})`;
  return `${where} ${msg}`;
}

function loadValidator(schemaPath) {
  let schema;
  try {
    schema = JSON.parse(stripBom(readFileSync(schemaPath, "utf8")));
  } catch (err) {
    fatal(`cannot load schema ${schemaPath}: ${err.message}`);
  }
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  try {
    return ajv.compile(schema);
  } catch (err) {
    fatal(`schema ${schemaPath} does not compile: ${err.message}`);
  }
}

const { expectInvalid, schemaPath, paths } = parseArgs(process.argv.slice(2));
const validate = loadValidator(schemaPath);
const docs = paths.flatMap(readPath);
if (docs.length === 0) fatal(`no documents read from ${paths.join(" ")}`);

let valid = 0, invalid = 0, broken = 0;
for (const { name, doc, parseError } of docs) {
  if (parseError !== undefined) {
    broken++;
    console.log(`FAIL ${name}: not JSON: ${parseError}`);
    continue;
  }
  if (validate(doc)) {
    valid++;
    console.log(`ok ${name}`);
    continue;
  }
  invalid++;
  // "if" errors only say 'must match "then" schema'; the "then" failure itself is reported too.
  const errors = validate.errors.filter((e) => e.keyword !== "if");
  console.log(`FAIL ${name}: ${(errors.length ? errors : validate.errors).map(describe).join("; ")}`);
}

const passed = broken === 0 && (expectInvalid ? valid === 0 : invalid === 0);
process.stderr.write(
  `${basename(schemaPath)}: ${docs.length} document(s): ${valid} valid, ${invalid} invalid` +
  (broken ? `, ${broken} not JSON` : "") +
  (expectInvalid ? " (expected: all invalid)" : "") + ` — ${passed ? "PASS" : "FAIL"}\n`);
process.exit(passed ? 0 : 1);
