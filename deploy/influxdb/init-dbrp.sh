#!/bin/bash
# Runs once, at InfluxDB 2's first start (docker-entrypoint-initdb.d), after the setup
# made the org, bucket and token: map the InfluxQL database "$SHOPFLOOR_DATABASE" (and
# its retention policy "autogen") onto the bucket, so that /query (InfluxQL) works for
# Grafana and the API. The collector also creates this mapping when it is missing.
set -euo pipefail
bucket_id=$(influx bucket list --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)
influx v1 dbrp create \
  --bucket-id "${bucket_id}" \
  --db "${SHOPFLOOR_DATABASE:-shopfloor}" \
  --rp autogen \
  --default
