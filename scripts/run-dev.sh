#!/usr/bin/env bash
# make run: serve the embedded default with a development tenant.
set -euo pipefail
bin=$1 data=$2 addr=$3 http=${4:-127.0.0.1:8080}
mkdir -p "$data"
keyfile="$data/dev-tenant.key"
if [ ! -s "$keyfile" ]; then
  "$bin/annalsd" tenant create dev --data "$data" | tail -n 1 > "$keyfile"
  chmod 600 "$keyfile"
fi
key=$(cat "$keyfile")
cat <<EOT
annals: development tenant "dev", key $key (kept in $keyfile)
  export ANNALS_ADDR=$addr ANNALS_TOKEN=$key
  log=\$($bin/annals log create | tail -n 1); printf 'hello\nworld\n' | $bin/annals write \$log; $bin/annals list \$log
annals: HTTP port http://$http/ (/healthz /readyz /metrics; docs/operations.md)
  curl -H "Authorization: Bearer $key" http://$http/v1/logs   # the JSON API, SSE tails (docs/http-api.md)
EOT
exec "$bin/annalsd" serve --data "$data" --listen "$addr" --http "$http"
