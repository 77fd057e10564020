from django.contrib.admin import apps as admin_apps

from fxfer.apps import TablesOnlyConfig


class ReportsConfig(TablesOnlyConfig):
    name = "reports"
    default = True


class ComplianceAdminConfig(admin_apps.AdminConfig):
    """Installs django.contrib.admin with the compliance site (reports.admin.ComplianceAdminSite) as its site.

    `default = False`: it sits beside ReportsConfig, which stays the "reports" app's own config."""

    default = False
    default_site = "reports.admin.ComplianceAdminSite"

    def ready(self):
        # The site's checks only, no autodiscover: contrib.auth's admin module would register Group, an ORM model
        # whose pages fail against DATABASES = {}. The compliance site registers no model at all.
        admin_apps.SimpleAdminConfig.ready(self)
