#!/bin/sh
# A connector includes only the kit's public headers: the core's contract, model and helpers.
# The server, NATS, the spool, the mailer and the app are the core's business; a connector that
# reaches into them is coupled to how the core works, not to what it promises.
# Usage: connector_includes.sh <source dir>
set -eu
root=${1:?source dir}
allowed='^gateway/(core|model|kit)/|^gateway/http/(request|verify|client|media_proxy|client_ip)\.hpp$|^gateway/pipeline/(pipeline|raw_archive)\.hpp$|^gateway/nats/direct_pipeline\.hpp$|^gateway/state/(poll_loop|lease|cursor_store|name_cache)\.hpp$|^gateway/config/(config|config_reader)\.hpp$|^gateway/consent/consent\.hpp$'
status=0
for file in $(find "$root/connectors" -name '*.cpp' -o -name '*.hpp'); do
  grep -o '#include "gateway/[^"]*"' "$file" | sed 's/#include "\(.*\)"/\1/' | while read -r header; do
    if ! echo "$header" | grep -Eq "$allowed"; then
      echo "${file#$root/}: includes $header, which is not one of the kit's public headers"
      echo "  (the kit: gateway/core, model, kit; http/request, verify, client, media_proxy;"
      echo "   pipeline/pipeline, raw_archive; nats/direct_pipeline.hpp; state/poll_loop, lease, cursor_store, name_cache;"
      echo "   config; consent)"
      exit 1
    fi
  done || status=1
done
exit $status
