#!/usr/bin/env bash
# make run-distributed: the engines (make services-up), a development tenant, and every
# role of the distributed mode in one annalsd on ADDR (docs/distributed.md).
set -euo pipefail
bin=$1 addr=$2 http=${3:-127.0.0.1:8080}
keydir=.services/annals
keyfile="$keydir/dev-tenant.key"
mkdir -p "$keydir"
if [ ! -s "$keyfile" ]; then
  "$bin/annalsd" tenant create "dev-$(date +%s)" --distributed | tail -n 1 > "$keyfile.tmp"
  chmod 600 "$keyfile.tmp"
  mv "$keyfile.tmp" "$keyfile"
fi
key=$(cat "$keyfile")
cat <<EOT
annals (distributed): development tenant key $key (kept in $keyfile)
  export ANNALS_ADDR=$addr ANNALS_TOKEN=$key
  log=\$($bin/annals log create | tail -n 1); printf 'hello\nworld\n' | $bin/annals write \$log; $bin/annals list \$log
annals: HTTP port http://$http/ (/healthz /readyz /metrics; docs/operations.md)
  curl -H "Authorization: Bearer $key" http://$http/v1/logs   # the JSON API, SSE tails (docs/http-api.md)
EOT
exec "$bin/annalsd" all --distributed --listen "$addr" --http "$http"
