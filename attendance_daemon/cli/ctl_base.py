"""What every `attendancectl` subcommand shares, box and hub: the top-level group with its connection options, one
client per invocation, and one way to call a request and print or refuse its answer."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import default_device_id
from ..mqtt.client import ApiClient, ApiError, DeviceUnavailable

CLIENT = "attendancectl"  # the `client` of the sessions it starts (their `started_by`)


def client_of(ctx: click.Context) -> ApiClient:
    o = ctx.obj
    if "client" not in o:
        try:
            o["client"] = ApiClient(o["host"], o["port"], o["device"], o["base"], o["username"], o["password"],
                                    protocol=o["protocol"], tls=o["tls"], cafile=o["cafile"], certfile=o["cert"],
                                    keyfile=o["key"], insecure=o["insecure"], leaves=o.get("leaves", ("#",)))
        except (OSError, TimeoutError, ValueError) as exc:  # ConnectionRefusedError, ssl.SSLError are OSErrors
            raise click.ClickException(f"cannot reach the MQTT broker at {o['host']}:{o['port']}: {exc}") from exc
        ctx.call_on_close(o["client"].close)
        try:  # the device's retained availability arrives at once: no need to wait out --timeout for nothing
            o["client"].require_online()
        except DeviceUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    client: ApiClient = o["client"]
    return client


def call(ctx: click.Context, command: str, payload: dict[str, Any] | None = None) -> Any:
    try:
        return client_of(ctx).request(command, {k: v for k, v in (payload or {}).items() if v is not None},
                                    timeout=ctx.obj["timeout"])["data"]
    except ApiError as exc:
        r = exc.response
        raise click.ClickException(f"{r.get('code')}: {r.get('error')}") from exc
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from exc


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def print_enrolled(data: dict[str, Any]) -> None:
    """An `enroll` answer (box or hub); exit 1 when no image was accepted, naming each rejection."""
    print_json(data)
    if not data.get("encodings_added") and not data.get("skipped"):  # skipped: the hub has those photos
        raise click.ClickException("no image was accepted: " + "; ".join(
            f"{r.get('image')}: {r.get('reason')}" for r in data.get("rejected", [])))


@click.group()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ATTENDANCE_MQTT_HOST")
@click.option("--port", default=1883, show_default=True, envvar="ATTENDANCE_MQTT_PORT")
@click.option("--device", default=default_device_id, show_default="this host's device id",
              envvar="ATTENDANCE_DEVICE", help="Device id of the daemon to drive.")
@click.option("--base-topic", "base", default="attendance", show_default=True)
@click.option("--username", envvar="ATTENDANCE_MQTT_USERNAME")
@click.option("--password", envvar="ATTENDANCE_MQTT_PASSWORD")
@click.option("--protocol", type=click.Choice(["5", "3.1.1"]), default="5", show_default=True,
              envvar="ATTENDANCE_MQTT_PROTOCOL", help="MQTT protocol version.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for a response.")
@click.option("--tls", is_flag=True, envvar="ATTENDANCE_MQTT_TLS", help="Connect with TLS (system CAs by default).")
@click.option("--cafile", envvar="ATTENDANCE_MQTT_CAFILE", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate(s) to verify the broker with (implies --tls).")
@click.option("--cert", envvar="ATTENDANCE_MQTT_CERT", type=click.Path(exists=True, dir_okay=False),
              help="Client certificate (implies --tls).")
@click.option("--key", envvar="ATTENDANCE_MQTT_KEY", type=click.Path(exists=True, dir_okay=False),
              help="Client certificate's private key.")
@click.option("--insecure", is_flag=True, help="TLS without verifying the broker's certificate (testing only).")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Control an attendance daemon over MQTT."""
    ctx.ensure_object(dict)
    ctx.obj.update(options)
