"""shopfloor: shop-floor monitoring and control (Modbus -> MQTT -> InfluxDB -> OEE/WIP -> API)."""

__version__ = "0.1.0"
