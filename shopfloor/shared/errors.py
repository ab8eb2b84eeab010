"""The base of every shopfloor exception. Each component subclasses it."""

from __future__ import annotations


class ShopfloorError(Exception):
    """Base of all shopfloor errors; subclasses prefix their message with their kind."""

    prefix = "shopfloor"

    def __str__(self) -> str:
        return f"[{self.prefix}] {super().__str__()}"


class PlantFileError(ShopfloorError):
    """The plant file is unreadable or invalid. `errors` lists every problem, each as
    (path, message), e.g. ("machines.press1.points[2].address", "overlaps ...")."""

    prefix = "plant file"

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(self.render())

    def __reduce__(self) -> tuple[type[PlantFileError], tuple[str, list[tuple[str, str]]]]:
        """Picklable (an isolated load raises it in a child process)."""
        return type(self), (self.source, self.errors)

    def render(self) -> str:
        """Every error on its own line: `  path: message`."""
        lines = [f"{self.source}: {len(self.errors)} error(s)"]
        lines += [f"  {path or '<file>'}: {message}" for path, message in self.errors]
        return "\n".join(lines)


class BrokerSetupError(ShopfloorError):
    """The broker connection cannot be set up from the plant file (e.g. a TLS file that
    cannot be read), before any attempt to connect."""

    prefix = "broker"


class CodecError(ShopfloorError):
    """A value cannot be encoded into or decoded from registers."""

    prefix = "codec"


class ContractError(ShopfloorError):
    """An MQTT payload or topic does not follow the contract."""

    prefix = "contract"
