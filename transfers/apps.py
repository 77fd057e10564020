from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "transfers"

    def import_models(self):
        # transfers.models holds PynamoDB tables, no ORM model: Django need not import it when it starts (a cold
        # start's health check would pay for PynamoDB); the code that reads a table imports it (fxfer.dynamo).
        self.models = self.apps.all_models[self.label]
