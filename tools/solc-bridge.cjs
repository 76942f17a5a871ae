#!/usr/bin/env node
// A command-line front for the npm `solc` package (the official WebAssembly build) that answers
// the way a native solc binary does, so that py-solc-x and ape-solidity can drive it unchanged.
// Supported: `--version`, and `--standard-json` (input on stdin) with `--base-path`,
// `--include-path` and `--allow-paths`. Anything else exits 1 with a message, as solc would.
'use strict';

const fs = require('fs');
const path = require('path');

// The bridge is installed beside its own copy of the npm package (bin/setup does that).
const SOLC_MODULE = process.env.TRACKER_SOLC_MODULE || path.join(__dirname, 'node_modules', 'solc');

function fail(message) {
  process.stderr.write(`solc-bridge: ${message}\n`);
  process.exit(1);
}

function parseArguments(argv) {
  const options = { version: false, standardJson: false, basePath: null, includePaths: [], allowPaths: [] };
  const takesValue = new Set(['--base-path', '--include-path', '--allow-paths', '--output-dir']);
  for (let i = 0; i < argv.length; i += 1) {
    let flag = argv[i];
    let value = null;
    if (flag.includes('=')) {
      [flag, value] = [flag.slice(0, flag.indexOf('=')), flag.slice(flag.indexOf('=') + 1)];
    } else if (takesValue.has(flag)) {
      i += 1;
      if (i >= argv.length) fail(`option ${flag} needs a value`);
      value = argv[i];
    }
    switch (flag) {
      case '--version': options.version = true; break;
      case '--standard-json': options.standardJson = true; break;
      case '--base-path': options.basePath = path.resolve(value); break;
      case '--include-path': options.includePaths.push(path.resolve(value)); break;
      case '--allow-paths': options.allowPaths.push(...value.split(',').filter(Boolean).map((p) => path.resolve(p))); break;
      case '--output-dir': case '--overwrite': break; // meaningless for standard JSON on stdout
      default: fail(`unsupported option ${flag} (this bridge serves --version and --standard-json)`);
    }
  }
  return options;
}

function isInside(file, directory) {
  const relative = path.relative(directory, file);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

// Resolves an import the way solc's virtual file system does: source unit names are tried
// against the base path, then each include path; absolute names are taken as they are.
// A file is only read when it lies under the base path, an include path or an allowed path.
function makeImportCallback(options) {
  const roots = [options.basePath || process.cwd(), ...options.includePaths];
  const allowed = [...roots, ...options.allowPaths];
  return (sourceUnitName) => {
    const candidates = path.isAbsolute(sourceUnitName)
      ? [sourceUnitName]
      : roots.map((root) => path.join(root, sourceUnitName));
    for (const candidate of candidates) {
      const resolved = path.resolve(candidate);
      if (!fs.existsSync(resolved)) continue;
      if (!allowed.some((dir) => isInside(resolved, dir))) {
        return { error: `File outside of allowed directories: ${sourceUnitName}` };
      }
      return { contents: fs.readFileSync(resolved, 'utf8') };
    }
    return { error: `File not found: ${sourceUnitName} (searched ${roots.join(', ')})` };
  };
}

function main() {
  const options = parseArguments(process.argv.slice(2));
  let solc;
  try {
    solc = require(SOLC_MODULE);
  } catch (error) {
    fail(`cannot load the npm solc package at ${SOLC_MODULE}: ${error.message}`);
  }
  if (options.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!options.standardJson) fail('no input mode given (use --standard-json or --version)');
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportCallback(options) });
  process.stdout.write(output);
}

main();
