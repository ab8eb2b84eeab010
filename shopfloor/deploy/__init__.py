"""Deployment helpers generated from the plant file: mosquitto ACLs and bridge configs.
The static deployment files (compose, Dockerfile, systemd units) live in deploy/."""
