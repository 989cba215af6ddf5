// Rebuild the contract artefacts (ABI + bytecode JSON) with solc-js (npm "solc" 0.8.37),
// Shanghai rules for TRN. Deterministic: the same sources give byte-identical artefacts, and a
// test checks that the committed JSON matches.
// Usage: node plugins/trn/contracts/build.js [OUT_DIR]
//   (needs tests/fixtures/anvil/node_modules: `npm ci` there; OUT_DIR defaults to aigent_trn/)
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "../../../tests/fixtures/anvil/node_modules/solc"));

const CONTRACTS = ["AnchorRegistry", "SimpleToken", "DexRouterStandIn"];
const outDir = process.argv[2] || path.join(__dirname, "..", "aigent_trn");

for (const name of CONTRACTS) {
  const file = `${name}.sol`;
  const input = {
    language: "Solidity",
    sources: { [file]: { content: fs.readFileSync(path.join(__dirname, file), "utf8") } },
    settings: {
      evmVersion: "shanghai",
      optimizer: { enabled: true, runs: 200 },
      metadata: { bytecodeHash: "none" },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  if (out.errors && out.errors.some((e) => e.severity === "error")) {
    console.error(out.errors);
    process.exit(1);
  }
  const c = out.contracts[file][name];
  const artefact = {
    solc: solc.version(),
    evmVersion: "shanghai",
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
  };
  const dest = path.join(outDir, `${name}.json`);
  fs.writeFileSync(dest, JSON.stringify(artefact, null, 2) + "\n");
  console.log("wrote", dest);
}
