"""`shopfloor alarm-webhooks PLANT`: the notification queue of the alarm component (per
webhook: pending, delivered keys kept, dead letters; the oldest dead letters), and
`--retry-dead` to send the dead letters again once the receiver is fixed. Safe while
`shopfloor alarms` runs (the queue is SQLite in WAL mode)."""

from __future__ import annotations

import time

import click

from shopfloor.shared.cli import load_or_exit


@click.command("alarm-webhooks")
@click.argument("plant_file", type=click.Path(dir_okay=False))
@click.option("--retry-dead", is_flag=True, help="Queue the dead letters again.")
@click.option("--webhook", default=None, help="Only this webhook's (with --retry-dead).")
def alarm_webhooks(plant_file: str, retry_dead: bool, webhook: str | None) -> None:
    """Show the alarm notification queue; `--retry-dead` sends dead letters again.
    docs/alarms.md, "Webhooks and escalation"."""
    plant = load_or_exit(plant_file)
    from shopfloor.alarms.notify.notifier import open_queue
    from shopfloor.alarms.notify.queue import RowState

    ids = [w.id for w in plant.notifications.webhooks]
    if webhook is not None and webhook not in ids:
        raise click.BadParameter(f"unknown webhook {webhook!r} (known: {ids})",
                                 param_hint="--webhook")
    queue = open_queue(plant.notifications)
    try:
        if retry_dead:
            click.echo(f"{queue.requeue_dead(webhook, time.time())} dead letter(s) queued "
                       "again")
        counts = queue.counts()
        for target in ids:
            click.echo(f"{target}: " + ", ".join(
                f"{counts.get((target, state), 0)} {state}" for state in RowState))
        for target, key, attempts, error in queue.dead_letters(20):
            click.echo(f"dead: {target} {key} after {attempts} attempt(s): {error}")
    finally:
        queue.close()
