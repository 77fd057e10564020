from django.apps import AppConfig


class FxferConfig(AppConfig):
    name = "fxfer"
    verbose_name = "fxfer"

    def ready(self) -> None:
        # On Lambda with active tracing (zappa_settings "xray_tracing"), trace every AWS call as a subsegment
        # (Powertools Tracer); elsewhere nothing is patched and the X-Ray SDK is not imported.
        from fxfer.observability import setup_tracing

        setup_tracing()


class TablesOnlyConfig(AppConfig):
    """An app whose models module holds PynamoDB tables and no ORM model. Django does not import it when it starts
    (a cold start whose first request reads no table, a health check, would pay for PynamoDB): the code that reads
    a table imports it, and fxfer.dynamo.all_models() imports every one (MODEL_MODULES).

    `default = False`: an apps module that imports it still has one config for Django to choose, its own (which
    says `default = True`)."""

    default = False

    def import_models(self):
        self.models = self.apps.all_models[self.label]
