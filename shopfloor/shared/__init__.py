"""What every component shares: the plant model, the MQTT contract, the InfluxDB schema,
register decoding. Imported by edge, collector, api and dashboards; never copied."""
