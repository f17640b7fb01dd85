"""The four staff roles, as Django groups, so the admin site and the admin API enforce the
same permissions (README, "Staff and roles").

Runs after every app's latest migration and creates the permissions itself first: on a
fresh database Django creates them only in post_migrate, after all migrations. Running it
again (or `install_roles` from the tests, after a flush) resets the four groups to these sets.

A later migration that adds models or permissions must give them to the roles too, e.g.
by calling `install_roles` again from a new migration.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# What "read everything" covers: the marketplace's own apps and the staff accounts.
# Never the JWT outstanding-token tables (they hold live refresh tokens) or sessions.
READABLE_APPS = ("agencies", "subscriptions", "portals", "leads", "audit", "auth")
# What operations runs day to day: the whole of these models, custom permissions included.
OPERATIONS_MODELS = (
    "leads.lead",
    "leads.offer",
    "leads.rotationcursor",
    "portals.portal",
    "portals.portalkey",
    "portals.reception",
    "agencies.agency",
    "agencies.device",
    "agencies.notification",
)
SUPPORT_EXTRA = ("agencies.change_agency", "leads.distribute_lead")
ROLES = ("superadmin", "operations", "support", "viewer")


def role_permissions(Permission) -> dict[str, list]:
    everything = list(Permission.objects.select_related("content_type").order_by("id"))

    def code(permission) -> str:
        return f"{permission.content_type.app_label}.{permission.codename}"

    def model(permission) -> str:
        return f"{permission.content_type.app_label}.{permission.content_type.model}"

    def readable(permission) -> bool:
        return permission.content_type.app_label in READABLE_APPS and permission.codename.startswith("view_")

    return {
        "superadmin": everything,
        "operations": [p for p in everything if readable(p) or model(p) in OPERATIONS_MODELS],
        "support": [p for p in everything if readable(p) or code(p) in SUPPORT_EXTRA],
        "viewer": [p for p in everything if readable(p)],
    }


def install_roles(apps, schema_editor=None) -> None:
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # historical app configs have none
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, permissions in role_permissions(Permission).items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agencies", "0002_devices_notifications"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("audit", "0002_auditlog_immutable"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("leads", "0003_offers_and_rotation"),
        ("portals", "0001_initial"),
        ("sessions", "0001_initial"),
        ("subscriptions", "0001_initial"),
        ("token_blacklist", "0013_alter_blacklistedtoken_options_and_more"),
    ]

    operations = [migrations.RunPython(install_roles, remove_roles)]
