// Rebuild AnchorRegistry.json with solc-js (npm "solc" 0.8.37), Shanghai rules for TRN.
// Usage: node plugins/trn/contracts/build.js  (needs tests/fixtures/anvil/node_modules: npm ci there)
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "../../../tests/fixtures/anvil/node_modules/solc"));
const src = fs.readFileSync(path.join(__dirname, "AnchorRegistry.sol"), "utf8");
const input = {
  language: "Solidity",
  sources: { "AnchorRegistry.sol": { content: src } },
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
const c = out.contracts["AnchorRegistry.sol"].AnchorRegistry;
const artefact = { solc: solc.version(), evmVersion: "shanghai", abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
const dest = path.join(__dirname, "..", "aigent_trn", "AnchorRegistry.json");
fs.writeFileSync(dest, JSON.stringify(artefact, null, 2) + "\n");
console.log("wrote", dest);
