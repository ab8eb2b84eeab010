"""Constants and enums used across components: data types, states, actions. A field
protocol's own enums live in its folder (Modbus tables, byte orders, transports:
`shared/protocols/modbus/enums.py`)."""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    """Value type of a point, whatever the protocol."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    DATETIME = "datetime"
    """OPC UA DateTime (read-only; published as ISO 8601 text, UTC)."""

    @property
    def is_text(self) -> bool:
        """Published as text: string, and datetime (ISO 8601, UTC)."""
        return self in (DataType.STRING, DataType.DATETIME)

    @property
    def is_unsigned_int(self) -> bool:
        return self in (DataType.UINT16, DataType.UINT32, DataType.UINT64)

    @property
    def is_integer(self) -> bool:
        return self in INTEGER_BITS

    @property
    def is_float(self) -> bool:
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    @property
    def bits(self) -> int:
        """Width in bits for numeric types (bool: 1, string: 0 = variable)."""
        return _BITS[self]

    @property
    def int_range(self) -> tuple[int, int]:
        """(lowest, highest) raw value of an integer type."""
        bits = INTEGER_BITS[self]
        if self.is_unsigned_int:
            return 0, (1 << bits) - 1
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


_BITS = {
    DataType.BOOL: 1,
    DataType.INT16: 16,
    DataType.UINT16: 16,
    DataType.INT32: 32,
    DataType.UINT32: 32,
    DataType.INT64: 64,
    DataType.UINT64: 64,
    DataType.FLOAT32: 32,
    DataType.FLOAT64: 64,
    DataType.STRING: 0,
    DataType.DATETIME: 64,
}
INTEGER_BITS = {
    DataType.INT16: 16,
    DataType.UINT16: 16,
    DataType.INT32: 32,
    DataType.UINT32: 32,
    DataType.INT64: 64,
    DataType.UINT64: 64,
}


class MachineState(StrEnum):
    """State categories that OEE time buckets are built from (see docs/oee.md)."""

    RUNNING = "running"
    SETUP = "setup"
    STOPPED = "stopped"
    IDLE = "idle"
    PLANNED_STOP = "planned_stop"
    OFFLINE = "offline"


class DeviceFailure(StrEnum):
    """Why an edge agent could not read a device. A machine whose device stays
    unreadable goes `offline` with reason `device_<failure>` (`offline_reason`): a
    fixed, bounded set, like the reasons of the plant file's state maps."""

    CONNECT = "connect"
    TIMEOUT = "timeout"
    EXCEPTION = "exception"  # the device answered with a Modbus exception
    IO = "io"
    NO_RESPONSE = "no_response"


def offline_reason(failure: DeviceFailure) -> str:
    return f"device_{failure}"


OFFLINE_REASONS = frozenset(offline_reason(f) for f in DeviceFailure)


class QueueFullPolicy(StrEnum):
    """What the edge outbox does when it holds `max_samples`."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class DatabaseApi(StrEnum):
    """Which InfluxDB write API the collector uses."""

    AUTO = "auto"
    V1 = "v1"
    V2 = "v2"


class ControlAction(StrEnum):
    """What a write of a point is for: the API's control actions. Every write carries
    one, from the API route to the edge, and the rules of shared.control_rules apply to it."""

    START = "start"
    STOP = "stop"
    SETPOINT = "setpoint"
    ALARM_ACK = "alarm_ack"
    CHANGEOVER = "changeover"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"


class AlarmState(StrEnum):
    """ISA-18.2 states of an alarm instance (docs/alarms.md)."""

    NORMAL = "normal"
    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    CLEARED_UNACK = "cleared_unack"
    SHELVED = "shelved"
    OUT_OF_SERVICE = "out_of_service"


class EventKind(StrEnum):
    """What changes an alarm: the rule engine (raise, clear) or a person."""

    RAISE = "raise"
    CLEAR = "clear"
    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"
