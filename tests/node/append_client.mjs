#!/usr/bin/env node
// A Custody client written without any of the project's Python code: it builds a
// custody.v1.Event (an assay of an existing lot), signs it as a DSSE envelope,
// appends it to a node over mutual TLS and checks the receipt it gets back.
// It shows that the byte formats of DESIGN.md 3.1–3.4 and the gRPC API can be
// implemented from their specification alone.
//
// Usage:
//   node tests/node/append_client.mjs --address 127.0.0.1:PORT --ca ca.pem \
//     --cert partner.pem --key partner-key.pem --signing-key ed25519.pem \
//     --partner ID --lot LOT --event-id ID [--event-time RFC3339] [--expect-refusal]
//
// On success prints one JSON line:
//   {"index": …, "leaf_hash": base64, "checkpoint": text, "inclusion_verified": true,
//    "entry_digest": hex, "leaf": base64, "inclusion_proof": {DESIGN 3.3 JSON form}}
// With --expect-refusal the call must fail; prints {"code": …, "details": …, "reason": …}
// with the reason of the google.rpc.ErrorInfo in the grpc-status-details-bin trailer.
// Exit status: 0 as expected, 1 on any unexpected outcome, 2 on a usage error.

import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const EVENT_PAYLOAD_TYPE = 'application/vnd.custody.event.v1+protobuf';
const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';
const CALL_DEADLINE_MS = 30_000;

class Unexpected extends Error {}

function fail(message) {
  throw new Unexpected(message);
}

// --- arguments ----------------------------------------------------------------------

function parseArguments() {
  const required = ['address', 'ca', 'cert', 'key', 'signing-key', 'partner', 'lot', 'event-id'];
  const options = Object.fromEntries(required.map((name) => [name, { type: 'string' }]));
  options['event-time'] = { type: 'string' };
  options['expect-refusal'] = { type: 'boolean', default: false };
  let values;
  try {
    ({ values } = parseArgs({ options, strict: true, allowPositionals: false }));
  } catch (error) {
    usage(error.message);
  }
  const missing = required.filter((name) => values[name] === undefined);
  if (missing.length > 0) usage(`missing ${missing.map((name) => `--${name}`).join(', ')}`);
  return values;
}

function usage(message) {
  process.stderr.write(
    `append_client: ${message}\n` +
      'usage: node tests/node/append_client.mjs --address HOST:PORT --ca CA.pem ' +
      '--cert CERT.pem --key KEY.pem --signing-key ED25519.pem --partner ID --lot LOT ' +
      '--event-id ID [--event-time RFC3339] [--expect-refusal]\n',
  );
  process.exit(2);
}

// --- the payload: a custody.v1.Event built with protobufjs ----------------------------

/** A protobufjs root that resolves imports against proto/ (google/protobuf/* are bundled). */
function protoRoot(file) {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    path.isAbsolute(target) ? target : path.join(PROTO_DIR, target);
  return root.loadSync(file, { keepCase: true });
}

/** Seconds since the epoch of --event-time, or of one minute ago (never in the future). */
function eventSeconds(text) {
  if (text === undefined) return Math.floor(Date.now() / 1000) - 60;
  const millis = Date.parse(text);
  if (Number.isNaN(millis) || millis % 1000 !== 0) {
    usage(`--event-time ${text} is not an RFC 3339 time in whole seconds`);
  }
  return millis / 1000;
}

/** An assay of `lot` by the lab `partner`: the fields a well-formed Assay event needs. */
function buildEvent(root, args) {
  const Event = root.lookupType('custody.v1.Event');
  const object = {
    event_id: args['event-id'],
    event_time: { seconds: eventSeconds(args['event-time']), nanos: 0 },
    partner_id: args.partner,
    evidence: [
      {
        uri: `https://lims.example/reports/${args['event-id']}.pdf`,
        sha256: createHash('sha256').update(`report ${args['event-id']}`).digest(),
        kind: 'assay_report',
      },
    ],
    assay: {
      lot_id: args.lot,
      contents: [
        { element: 'Co', ppm: 229_000 },
        { element: 'Cu', ppm: 30_000 },
      ],
      method: 'ICP-OES',
      sample_id: `NODE-${args['event-id']}`.slice(0, 128),
    },
  };
  const problem = Event.verify(object);
  if (problem) fail(`the Event built is invalid: ${problem}`);
  return Buffer.from(Event.encode(Event.fromObject(object)).finish());
}

// --- DSSE (DESIGN 3.1) --------------------------------------------------------------

/**
 * PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, where SP is one
 * space and LEN the length in bytes (not characters) in ASCII decimal.
 */
function pae(payloadType, body) {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'ascii'),
    type,
    Buffer.from(` ${body.length} `, 'ascii'),
    body,
  ]);
}

/** The Ed25519 private key of a PKCS#8 PEM file and its raw 32-byte public key. */
function loadSigningKey(file) {
  const privateKey = createPrivateKey(readFileSync(file));
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    fail(`${file} holds a ${privateKey.asymmetricKeyType} key, not Ed25519`);
  }
  // The JWK form's "x" is the raw public key, base64url (RFC 8037).
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const rawPublicKey = Buffer.from(jwk.x, 'base64url');
  if (rawPublicKey.length !== 32) fail('an Ed25519 public key is 32 bytes');
  return { privateKey, rawPublicKey };
}

function sha256(...parts) {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

// --- the receipt (DESIGN 3.2–3.4) ---------------------------------------------------

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** RFC 9162 §2.1.3.2: does `hashes` lead from leafHash at index to root in a tree of size? */
function verifyInclusion(leafHash, index, treeSize, hashes, root) {
  // 1. The index must lie inside the tree.
  if (index >= treeSize) return false;
  // 2. fn is the leaf's index, sn the last index; r starts as the leaf hash.
  let fn = index;
  let sn = treeSize - 1n;
  let r = leafHash;
  // 3. For each p in the path:
  for (const p of hashes) {
    //   a. If sn is 0, the path is too long.
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      //   b. fn is a right child (or the last node of its level, so p is on its left):
      //      r = HASH(0x01 || p || r); then, while fn is an even non-zero index, shift
      //      fn and sn right together (skip levels where this node had no sibling).
      r = sha256(NODE_PREFIX, p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      //   c. Otherwise p is on the right: r = HASH(0x01 || r || p).
      r = sha256(NODE_PREFIX, r, p);
    }
    //   d. Go up one level.
    fn >>= 1n;
    sn >>= 1n;
  }
  // 4. The path is complete when sn reaches 0, and r must be the root.
  return sn === 0n && r.equals(root);
}

/** The body lines of a C2SP tlog-checkpoint note: origin, size, base64 root hash. */
function checkpointBody(text) {
  const [body] = text.split('\n\n', 1);
  const lines = body.split('\n');
  if (lines.length !== 3) fail(`checkpoint body has ${lines.length} lines, expected 3`);
  const [origin, sizeText, rootText] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) fail(`checkpoint size ${sizeText} is not decimal`);
  const root = Buffer.from(rootText, 'base64');
  if (root.toString('base64') !== rootText || root.length !== 32) {
    fail(`checkpoint root ${rootText} is not base64 of 32 bytes`);
  }
  return { origin, size: BigInt(sizeText), root };
}

function checkReceipt(receipt, leafType, sent) {
  if (!receipt) fail('the response carries no receipt');
  const proof = receipt.inclusion_proof;
  if (!proof) fail('the receipt carries no inclusion proof');
  const index = BigInt(receipt.index);

  // The leaf hash is recomputed from the leaf bytes as received: SHA-256(0x00 || leaf).
  const leafHash = sha256(LEAF_PREFIX, receipt.leaf);
  if (!leafHash.equals(proof.leaf_hash)) fail('the proof is not for the receipt\'s leaf');
  if (BigInt(proof.index) !== index) fail(`proof index ${proof.index} != receipt index ${index}`);

  // The leaf must hold our envelope, at the receipt's index (decoded, never re-encoded).
  const leaf = leafType.decode(receipt.leaf);
  if (BigInt(leaf.index.toString()) !== index) fail(`leaf names index ${leaf.index}`);
  const envelope = leaf.envelope;
  if (
    !envelope ||
    envelope.payload_type !== sent.payload_type ||
    !Buffer.from(envelope.payload).equals(sent.payload) ||
    envelope.signatures.length !== 1 ||
    envelope.signatures[0].keyid !== sent.signatures[0].keyid ||
    !Buffer.from(envelope.signatures[0].sig).equals(sent.signatures[0].sig)
  ) {
    fail('the receipt\'s leaf does not carry the envelope sent');
  }

  // The inclusion proof must lead from the leaf hash to the proof's root …
  const treeSize = BigInt(proof.tree_size);
  if (!verifyInclusion(leafHash, index, treeSize, proof.hashes, proof.root)) {
    fail(`inclusion proof of index ${index} in tree size ${treeSize} does not verify`);
  }
  // … and that root and size must be the checkpoint's (line 3 and line 2 of its body).
  const checkpoint = Buffer.from(receipt.checkpoint).toString('utf8');
  const body = checkpointBody(checkpoint);
  if (body.size !== treeSize) fail(`checkpoint size ${body.size} != proof tree size ${treeSize}`);
  if (!body.root.equals(proof.root)) fail('checkpoint root differs from the proof\'s root');
  return {
    index: Number(index),
    leaf_hash: leafHash.toString('base64'),
    checkpoint,
    inclusion_verified: true,
    entry_digest: sha256(pae(sent.payload_type, sent.payload)).toString('hex'),
    leaf: Buffer.from(receipt.leaf).toString('base64'),
    inclusion_proof: {
      index: Number(index),
      tree_size: Number(treeSize),
      leaf_hash: Buffer.from(proof.leaf_hash).toString('base64'),
      root: Buffer.from(proof.root).toString('base64'),
      hashes: proof.hashes.map((hash) => Buffer.from(hash).toString('base64')),
    },
  };
}

// --- refusals: google.rpc.Status in the grpc-status-details-bin trailer ---------------

// Only the fields read here, from googleapis' google/rpc/status.proto and
// error_details.proto and protobuf's any.proto.
const STATUS_ROOT = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: {
              fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } },
            },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: 'int32', id: 1 },
                message: { type: 'string', id: 2 },
                details: { rule: 'repeated', type: 'google.protobuf.Any', id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: 'string', id: 1 },
                domain: { type: 'string', id: 2 },
                metadata: { keyType: 'string', type: 'string', id: 3 },
              },
            },
          },
        },
      },
    },
  },
});

function refusalOf(error) {
  if (typeof error.code !== 'number' || !error.metadata) throw error; // not a gRPC status
  const [raw] = error.metadata.get('grpc-status-details-bin');
  if (!raw) fail(`status ${error.code} (${error.details}) carries no grpc-status-details-bin`);
  const status = STATUS_ROOT.lookupType('google.rpc.Status').decode(raw);
  if (status.code !== error.code) fail(`details say code ${status.code}, status ${error.code}`);
  const info = status.details.find((any) => any.type_url === ERROR_INFO_TYPE_URL);
  if (!info) fail(`status ${error.code} (${error.details}) carries no google.rpc.ErrorInfo`);
  const errorInfo = STATUS_ROOT.lookupType('google.rpc.ErrorInfo').decode(info.value);
  return { code: error.code, details: error.details, reason: errorInfo.reason };
}

// --- main ---------------------------------------------------------------------------

async function main() {
  const args = parseArguments();
  const payload = buildEvent(protoRoot(path.join(PROTO_DIR, 'custody/v1/event.proto')), args);
  const leafType = protoRoot(path.join(PROTO_DIR, 'custody/v1/leaf.proto')).lookupType(
    'custody.v1.LedgerLeaf',
  );

  // Sign PAE(payload_type, payload); keyid = lowercase hex SHA-256 of the raw public key.
  const { privateKey, rawPublicKey } = loadSigningKey(args['signing-key']);
  const signature = sign(null, pae(EVENT_PAYLOAD_TYPE, payload), privateKey);
  const envelope = {
    payload,
    payload_type: EVENT_PAYLOAD_TYPE,
    signatures: [{ sig: signature, keyid: sha256(rawPublicKey).toString('hex') }],
  };

  const definition = protoLoader.loadSync('custody/v1/ledger_service.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_DIR],
  });
  const { LedgerService } = grpc.loadPackageDefinition(definition).custody.v1;
  const credentials = grpc.credentials.createSsl(
    readFileSync(args.ca),
    readFileSync(args.key),
    readFileSync(args.cert),
  );
  const client = new LedgerService(args.address, credentials);
  try {
    const request = { envelope, public_keys: [rawPublicKey] };
    const deadline = new Date(Date.now() + CALL_DEADLINE_MS);
    const outcome = await new Promise((resolve) => {
      client.Append(request, { deadline }, (error, response) => resolve({ error, response }));
    });
    let result;
    if (args['expect-refusal']) {
      if (!outcome.error) {
        const index = outcome.response?.receipt?.index;
        fail(`expected a refusal, but the entry was appended at index ${index}`);
      }
      result = refusalOf(outcome.error);
    } else {
      if (outcome.error) {
        const refusal = refusalOf(outcome.error);
        fail(`Append failed: code ${refusal.code} ${refusal.reason}: ${refusal.details}`);
      }
      result = checkReceipt(outcome.response.receipt, leafType, envelope);
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    client.close();
  }
}

main().catch((error) => {
  const message = error instanceof Unexpected ? error.message : error?.stack ?? String(error);
  process.stderr.write(`append_client: ${message}\n`);
  process.exitCode = 1;
});
