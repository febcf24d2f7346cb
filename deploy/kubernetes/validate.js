// Checks each document of a Kubernetes YAML file against the OpenAPI schemas of
// kubernetes-models (and KEDA's CRDs): `deploy/check --kubernetes` installs them
// from npm into a temporary folder and runs this with NODE_PATH set.
const fs = require('fs');
const yaml = require('js-yaml');
function modelOf(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'keda.sh') return require(`@kubernetes-models/keda/keda.sh/${version}`)[kind];
  const path = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  return require(path)[kind];
}
let bad = 0, n = 0;
for (const doc of yaml.loadAll(fs.readFileSync(process.argv[2], 'utf8'))) {
  if (!doc) continue;
  n++;
  const Model = modelOf(doc.apiVersion, doc.kind);
  const name = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
  if (!Model) { console.log(`UNKNOWN ${doc.apiVersion} ${name}`); bad++; continue; }
  try { new Model(doc).validate(); console.log(`ok ${doc.apiVersion} ${name}`); }
  catch (e) { bad++; console.log(`INVALID ${name}: ${e.message}`); }
}
console.log(`${n} documents, ${bad} invalid`);
process.exit(bad ? 1 : 0);
