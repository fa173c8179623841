// Validate a .glb/.gltf with the Khronos glTF-Validator and print its JSON report on stdout.
// Usage: node validate_gltf.js FILE   (exit code 0 when the report has no errors, 1 otherwise, 2 on usage)
// The validator is looked up in GLTF_VALIDATOR_DIR (a node_modules folder) or the normal node paths.
"use strict";
const fs = require("fs");
const path = require("path");

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate_gltf.js FILE");
  process.exit(2);
}
const modules = process.env.GLTF_VALIDATOR_DIR;
const validator = require(modules ? path.resolve(modules, "gltf-validator") : "gltf-validator");

const bytes = new Uint8Array(fs.readFileSync(file));
validator
  .validateBytes(bytes, {
    uri: path.basename(file),
    maxIssues: 100,
    externalResourceFunction: (uri) =>
      new Promise((resolve, reject) => {
        fs.readFile(path.join(path.dirname(file), decodeURIComponent(uri)), (err, data) =>
          err ? reject(err.toString()) : resolve(new Uint8Array(data)),
        );
      }),
  })
  .then((report) => {
    console.log(JSON.stringify(report, null, 2));
    process.exit(report.issues.numErrors === 0 ? 0 : 1);
  })
  .catch((err) => {
    console.error(`validator failed: ${err}`);
    process.exit(2);
  });
