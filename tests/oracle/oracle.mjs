// SurrealDB export/import oracle: the real engine (via @surrealdb/node) in-process.
//
//   node oracle.mjs export --ns NS --db DB --setup SETUP.surql --out DUMP.surql
//   node oracle.mjs import --ns NS --db DB --in DUMP.surql --out RECORDS.json
//
// Exit 0 on success; exit 1 with a message on stderr on any failure.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Surreal } from "surrealdb";
import { createNodeEngines } from "@surrealdb/node";

const USAGE =
  "usage: node oracle.mjs export --ns NS --db DB --setup SETUP.surql --out DUMP.surql\n" +
  "       node oracle.mjs import --ns NS --db DB --in DUMP.surql --out RECORDS.json";

async function open(ns, db) {
  const surreal = new Surreal({ engines: createNodeEngines() });
  await surreal.connect("mem://");
  await surreal.use({ namespace: ns, database: db });
  return surreal;
}

// Run SurrealQL text; throw if any statement failed.
async function run(surreal, text) {
  const responses = await surreal.query(text).responses();
  const errors = responses
    .map((r, i) => (r.success ? null : `statement ${i + 1}: ${r.error?.message ?? r.error}`))
    .filter(Boolean);
  if (errors.length) throw new Error(`setup failed:\n${errors.join("\n")}`);
}

// Backtick-quote an identifier (SurrealQL escapes with backslash).
const quoteIdent = (name) => "`" + name.replaceAll("\\", "\\\\").replaceAll("`", "\\`") + "`";

async function one(surreal, text, bindings) {
  const [result] = await surreal.query(text, bindings).json().collect();
  return result;
}

async function doExport({ ns, db, setup, out }) {
  const surreal = await open(ns, db);
  try {
    await run(surreal, readFileSync(setup, "utf8"));
    writeFileSync(out, await surreal.export());
  } finally {
    await surreal.close();
  }
}

async function doImport({ ns, db, in: input, out }) {
  const surreal = await open(ns, db);
  try {
    await surreal.import(readFileSync(input, "utf8"));
    const info = await one(surreal, "INFO FOR DB");
    const tables = {};
    const table_info = {};
    for (const tb of Object.keys(info.tables ?? {}).sort()) {
      const records = await one(surreal, "SELECT VALUE <string> $this FROM type::table($tb)", { tb });
      records.sort();
      tables[tb] = { count: records.length, records };
      table_info[tb] = await one(surreal, `INFO FOR TABLE ${quoteIdent(tb)}`);
    }
    writeFileSync(out, JSON.stringify({ info, tables, table_info }, null, 2) + "\n");
  } finally {
    await surreal.close();
  }
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: {
      ns: { type: "string" },
      db: { type: "string" },
      setup: { type: "string" },
      in: { type: "string" },
      out: { type: "string" },
    },
  });
  const need = cmd === "export" ? ["ns", "db", "setup", "out"] : cmd === "import" ? ["ns", "db", "in", "out"] : null;
  if (!need) throw new Error(USAGE);
  const missing = need.filter((k) => values[k] === undefined);
  if (missing.length) throw new Error(`missing --${missing.join(", --")}\n${USAGE}`);
  await (cmd === "export" ? doExport(values) : doImport(values));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`oracle: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);
