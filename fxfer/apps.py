from django.apps import AppConfig


class FxferConfig(AppConfig):
    name = "fxfer"
    verbose_name = "fxfer"

    def ready(self) -> None:
        # On Lambda with active tracing (zappa_settings "xray_tracing"), trace every AWS call as a subsegment
        # (Powertools Tracer); elsewhere nothing is patched and the X-Ray SDK is not imported.
        from fxfer.observability import setup_tracing

        setup_tracing()
