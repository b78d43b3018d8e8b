// Validates CloudNativePG and Barman Cloud resources against CloudNativePG's own API, as published on npm by
// @kubernetes-models/cloudnative-pg (generated from github.com/cloudnative-pg/cloudnative-pg/api/v1 and the
// barman-cloud API it embeds; versions: README.md beside this file).
//
//   node validate.mjs < resources.json   a JSON array of resources -> {"checked": [...], "errors": [...]}
//   node validate.mjs < batches.json     {"batches": [[...], ...]} -> {"results": [{"checked", "errors"}, ...]}
//   node validate.mjs --kinds            the apiVersion/kind pairs this script validates
// tests/deploy renders the overlays and sends their resources.
//
// Two checks per resource, both from the package:
//   1. the package's compiled JSON Schema validator (types, enums, required fields, patterns, bounds);
//   2. unknown fields: that validator lets them through (its schemas carry no `additionalProperties: false`),
//      so every key of the resource is looked up in the package's generated TypeScript types, read with the
//      TypeScript compiler: a key that the type does not declare (and that no map type allows) is an error,
//      as with `kubectl apply --validate=strict`.
// Errors are reported in the JSON output; the exit status is non-zero only if the script cannot run.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let ts; // the TypeScript compiler, loaded only when there is something to check

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = "@kubernetes-models/cloudnative-pg";

// apiVersion/kind -> the package's model, its TypeScript interface, and where in the resource it applies.
// Barman Cloud's ObjectStore isn't in the package: only its `spec.configuration` is (the same
// BarmanObjectStoreConfiguration type as CloudNativePG's in-tree barmanObjectStore); the rest of ObjectStore
// is the hand-written CRD barmancloud.cnpg.io_objectstores.yaml beside this file.
const KINDS = {
  "postgresql.cnpg.io/v1/Cluster": {
    module: `${PKG}/postgresql.cnpg.io/v1/Cluster`,
    model: "Cluster",
    type: "ICluster",
    at: [],
  },
  "postgresql.cnpg.io/v1/ScheduledBackup": {
    module: `${PKG}/postgresql.cnpg.io/v1/ScheduledBackup`,
    model: "ScheduledBackup",
    type: "IScheduledBackup",
    at: [],
  },
  "barmancloud.cnpg.io/v1/ObjectStore": {
    module: `${PKG}/github.com/cloudnative-pg/barman-cloud/pkg/api/BarmanObjectStoreConfiguration`,
    model: "BarmanObjectStoreConfiguration",
    type: "IBarmanObjectStoreConfiguration",
    at: ["spec", "configuration"],
  },
};

// --- the package's TypeScript types --------------------------------------------------------------------

async function loadTypes() {
  ts = (await import("typescript")).default;
  const entry = path.join(HERE, "__kinds__.mts");
  const names = Object.keys(KINDS);
  const text =
    names.map((k, i) => `import type { ${KINDS[k].type} as T${i} } from "${KINDS[k].module}";`).join("\n") +
    `\nexport interface Kinds {\n${names.map((k, i) => `  ${JSON.stringify(k)}: T${i};`).join("\n")}\n}\n`;
  const options = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) =>
    name === entry ? ts.createSourceFile(name, text, lang) : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => name === entry || fileExists.call(host, name);
  host.readFile = (name) => (name === entry ? text : readFile.call(host, name));
  const program = ts.createProgram([entry], options, host);
  const source = program.getSourceFile(entry);
  const problems = ts.getPreEmitDiagnostics(program, source);
  if (problems.length) {
    const text = problems.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("\n");
    throw new Error(`cannot read the types of ${PKG}:\n${text}`);
  }
  const checker = program.getTypeChecker();
  const kinds = checker.getExportsOfModule(checker.getSymbolAtLocation(source)).find((s) => s.name === "Kinds");
  const declared = checker.getDeclaredTypeOfSymbol(kinds);
  const types = {};
  for (const name of names) types[name] = checker.getTypeOfSymbol(declared.getProperty(name));
  return { checker, types };
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// Every key of `value` not declared by `type`, as JSON pointers.
function unknownFields(checker, value, type, where) {
  if (value === null || value === undefined) return [];
  type = checker.getNonNullableType(type);
  if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown | ts.TypeFlags.NonPrimitive)) return [];
  if (type.isUnion()) {
    // A union of object types: the member that fits best. Unions of primitives are the validator's business.
    const fits = type.types
      .filter((t) => !(t.flags & ts.TypeFlags.Primitive) && !(t.flags & ts.TypeFlags.Literal))
      .map((t) => unknownFields(checker, value, t, where));
    return fits.length ? fits.reduce((a, b) => (b.length < a.length ? b : a)) : [];
  }
  if (checker.isArrayType(type)) {
    if (!Array.isArray(value)) return [];
    const item = checker.getTypeArguments(type)[0];
    return value.flatMap((v, i) => unknownFields(checker, v, item, `${where}/${i}`));
  }
  if (!(type.flags & ts.TypeFlags.Object) || !isPlainObject(value)) return [];
  const map = checker.getIndexTypeOfType(type, ts.IndexKind.String);
  const found = [];
  for (const [key, sub] of Object.entries(value)) {
    const prop = type.getProperty(key);
    const at = `${where}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
    if (prop && prop.flags & ts.SymbolFlags.Property) {
      found.push(...unknownFields(checker, sub, checker.getTypeOfSymbol(prop), at));
    } else if (map) {
      found.push(...unknownFields(checker, sub, map, at));
    } else {
      found.push(at);
    }
  }
  return found;
}

// --- the package's validators ----------------------------------------------------------------------------

function describe(error) {
  const extra =
    error.keyword === "enum"
      ? ` (${error.params.allowedValues.map((v) => JSON.stringify(v)).join(", ")})`
      : error.keyword === "additionalProperties"
        ? ` (${error.params.additionalProperty})`
        : "";
  return `${error.message}${extra}`;
}

function validate(resources, models, checker, types) {
  const checked = [];
  const errors = [];
  for (const resource of resources) {
    const key = `${resource.apiVersion}/${resource.kind}`;
    const ident = `${resource.kind}/${resource?.metadata?.name}`;
    const spec = KINDS[key];
    if (!spec) {
      errors.push(`${ident}: ${key} is not a kind this validator knows (${Object.keys(KINDS).join(", ")})`);
      continue;
    }
    let part = resource;
    for (const step of spec.at) part = part?.[step];
    const prefix = spec.at.map((s) => `/${s}`).join("");
    if (part === undefined) {
      errors.push(`${ident} at ${prefix}: missing`);
      continue;
    }
    try {
      new models[key](structuredClone(part)).validate();
    } catch (err) {
      if (!Array.isArray(err?.errors)) throw err;
      for (const e of err.errors) errors.push(`${ident} at ${prefix}${e.instancePath || "/"}: ${describe(e)}`);
    }
    for (const at of unknownFields(checker, part, types[key], prefix)) {
      errors.push(`${ident} at ${at}: unknown field (not in ${PKG}'s ${spec.type})`);
    }
    checked.push(ident);
  }
  return { checked, errors };
}

async function main() {
  if (process.argv.includes("--kinds")) {
    process.stdout.write(JSON.stringify(Object.keys(KINDS)) + "\n");
    return;
  }
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const batches = Array.isArray(input) ? [input] : input.batches;
  const models = {};
  for (const [name, spec] of Object.entries(KINDS)) models[name] = (await import(spec.module))[spec.model];
  const { checker, types } = await loadTypes();
  const results = batches.map((batch) => validate(batch, models, checker, types));
  process.stdout.write(JSON.stringify(Array.isArray(input) ? results[0] : { results }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(2);
});
