#!/bin/bash
# Make the secrets deploy/compose.yaml needs, once: deploy/.env (random passwords, the
# InfluxDB token, one admin API key) and deploy/secrets/mosquitto.passwd (one MQTT user
# per `user` line of mosquitto/acl, hashed by mosquitto_passwd). Refuses to overwrite
# existing secrets. Prints the admin API key once: it is stored only as its hash.
#
#   ./init-secrets.sh            # in deploy/
#   DEPLOY_DIR=/some/dir ./init-secrets.sh
set -euo pipefail
dir="${DEPLOY_DIR:-$(cd "$(dirname "$0")" && pwd)}"
env_file="$dir/.env"
passwd_file="$dir/secrets/mosquitto.passwd"

if [ -e "$env_file" ] || [ -e "$passwd_file" ]; then
  echo "init-secrets: $env_file or $passwd_file exists; delete them to start over" >&2
  exit 1
fi

random() { head -c 96 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }
var_name() { echo "MQTT_$(echo "$1" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9\n' '_')_PASSWORD"; }

hash_passwords() {
  if command -v mosquitto_passwd >/dev/null; then
    mosquitto_passwd -U "$passwd_file"
  else
    docker run --rm -v "$dir/secrets:/s" eclipse-mosquitto:2.0.20 mosquitto_passwd -U /s/mosquitto.passwd
  fi
}

umask 077
mkdir -p "$dir/secrets"
api_key="sfk_$(random 40)"
api_hash="sha256:$(printf '%s' "$api_key" | sha256sum | cut -d' ' -f1)"
{
  echo "INFLUXDB_ADMIN_PASSWORD=$(random)"
  echo "INFLUXDB_TOKEN=$(random 48)"
  echo "GRAFANA_ADMIN_PASSWORD=$(random)"
  # single quotes: docker compose takes the JSON literally
  echo "SHOPFLOOR_API_KEYS='[{\"name\": \"admin\", \"hash\": \"$api_hash\", \"role\": \"admin\"}]'"
} > "$env_file"
: > "$passwd_file"
for user in $(sed -n 's/^user //p' "$dir/mosquitto/acl"); do
  password=$(random)
  echo "$(var_name "$user")=$password" >> "$env_file"
  echo "$user:$password" >> "$passwd_file"
done
hash_passwords
echo "wrote $env_file and $passwd_file"
echo "admin API key (shown once, keep it safe): $api_key"
