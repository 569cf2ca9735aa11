// Validates custom resources with @kubernetes-models/*: the ajv validator generated
// from each CRD's openAPIV3Schema (types, enums, patterns, required fields), then
// `tsc` over the objects typed with the generated interfaces, whose excess-property
// checks reject fields the CRD does not define.
//
//   node crd_validate.mjs ITEMS.json WORKDIR TSC
//
// ITEMS.json is a list of {doc, package}; WORKDIR must sit inside the directory whose
// node_modules holds the packages (ESM resolves bare imports from this file's place).
// Prints {"errors": [[...] per item], "fatal": null or a message} as JSON.
import { readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";

const [, , input, here, tsc] = process.argv;
const items = JSON.parse(readFileSync(input, "utf8"));
const errors = items.map(() => []);
const imports = [];
const decls = [];
for (const [i, it] of items.entries()) {
  const [group, version] = it.doc.apiVersion.split("/");
  const mod = `@kubernetes-models/${it.package}/${group}/${version}/${it.doc.kind}`;
  try {
    const m = await import(mod);
    new m[it.doc.kind](it.doc).validate();
  } catch (e) {
    errors[i].push(String(e.message || e).split("\n")[0]);
  }
  imports.push(`import type { I${it.doc.kind} as T${i} } from "${mod}";`);
  decls.push(`export const d${i}: T${i} = ${JSON.stringify(it.doc)};`);
}
writeFileSync(path.join(here, "objects.ts"), imports.concat(decls).join("\n") + "\n");
writeFileSync(path.join(here, "tsconfig.json"), JSON.stringify({
  compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext",
                     target: "es2022", skipLibCheck: true, types: [] },
  files: ["objects.ts"],
}));
let out = "";
try {
  execFileSync(process.execPath, [tsc, "-p", path.join(here, "tsconfig.json")], { encoding: "utf8" });
} catch (e) {
  out = (e.stdout || "") + (e.stderr || "");
}
let fatal = null;
for (const line of out.split("\n")) {
  const m = line.match(/objects\.ts\((\d+),\d+\): error (TS\d+: .*)/);
  if (!m) continue;
  const idx = Number(m[1]) - 1 - imports.length;
  if (idx >= 0 && idx < items.length) errors[idx].push(m[2]);
  else errors[0].push("tsc: " + m[2]);
}
if (out && !/objects\.ts\(\d+,\d+\): error/.test(out)) {
  fatal = "tsc did not run: " + out.slice(0, 400);
}
console.log(JSON.stringify({ errors, fatal }));
