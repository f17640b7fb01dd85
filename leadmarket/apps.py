from django.apps import AppConfig


class LeadmarketConfig(AppConfig):
    name = "leadmarket"
    verbose_name = "leadmarket"

    def ready(self):
        # Connect the Celery signal handlers in every process (web and worker); `field__any`.
        from . import lookups, metrics, requestid  # noqa: F401

        requestid.install_log_record_factory()
