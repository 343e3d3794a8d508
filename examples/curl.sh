#!/usr/bin/env bash
# Submits a photo with labels to a running Librarian, the three ways the API accepts.
# usage: examples/curl.sh PHOTO [URL]
set -euo pipefail
photo=${1:?usage: examples/curl.sh PHOTO [URL]}
url=${2:-http://127.0.0.1:8080}
id=$(python3 -c 'import uuid; print(uuid.uuid4())')
type=$(file --brief --mime-type "$photo" 2>/dev/null || echo image/jpeg)

echo "# JSON body, idempotent PUT under a client-chosen id (safe to repeat)"
printf '{"image":"%s","labels":{"class":1}}' "$(base64 -w0 "$photo")" |
  curl -sS -X PUT "$url/api/v1/submissions/$id" -H 'content-type: application/json' --data-binary @-
echo

echo "# multipart form: a file part and a labels part"
curl -sS "$url/api/v1/submissions" -F "image=@$photo;type=$type" -F 'labels={"class":2}'
echo

echo "# raw image body, labels in the query string"
curl -sS "$url/api/v1/submissions?class=3&filename=$(basename "$photo")" -H "content-type: $type" --data-binary "@$photo"
echo

echo "# the stored record, and the newest records (a pipeline whose read is public:"
echo "# librarian serve --config config/local.toml; with no config reads are closed: 404/403)"
curl -sS "$url/api/v1/submissions/$id"
echo
curl -sS "$url/api/v1/submissions?limit=3"
echo
