from fxfer.apps import TablesOnlyConfig


class TransfersConfig(TablesOnlyConfig):
    name = "transfers"
    default = True  # the base class is not a default; this is transfers' config
