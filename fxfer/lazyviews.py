"""Views that URL patterns name by their dotted path and that are imported when a request first reaches them.

A cold Lambda loads the URL configuration on its first request, whatever it is. Importing every view module
then (and with them the services, selectors and forms behind them) cost a `/healthz` or a guest's first page
tens of milliseconds of imports it never used. `lazy("transfers.views.guests.link")` stands in the pattern
instead and imports `transfers.views.guests` only when it is called, or when middleware asks about the view
(`csrf_exempt`, `login_required`, ... are the real view's).

Only for function views: Django asks every callback whether it has a `view_class` while it builds its reverse
map, and the answer must not cost an import, so a lazy view never has one.
"""

from importlib import import_module


class LazyView:
    """A function view known by its dotted path, imported on first use."""

    def __init__(self, dotted: str):
        module, _, name = dotted.rpartition(".")
        self._module_name, self._name = module, name
        self._view = None
        # What Django's URL machinery reads (URLPattern.lookup_str: module and qualified name), without an import.
        self.__module__, self.__name__, self.__qualname__ = module, name, name

    def _resolved(self):
        view = self._view
        if view is None:
            view = self._view = getattr(import_module(self._module_name), self._name)
        return view

    def __call__(self, request, *args, **kwargs):
        return self._resolved()(request, *args, **kwargs)

    def __getattr__(self, attribute: str):
        # Only names the instance does not have reach here: the real view's (csrf_exempt, ...).
        if attribute.startswith("__") or attribute in {"view_class", "view_initkwargs"}:
            raise AttributeError(attribute)
        return getattr(self._resolved(), attribute)

    def __repr__(self) -> str:
        return f"<lazy view {self._module_name}.{self._name}>"


def lazy(dotted: str) -> LazyView:
    return LazyView(dotted)
