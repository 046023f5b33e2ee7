from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save, pre_save


class ChatterConfig(AppConfig):
    name = "chatter"

    def ready(self) -> None:
        from .user_contacts import user_post_save, user_pre_save

        # A user's contact follows their email however the user is saved (profile, admin, shell).
        pre_save.connect(
            user_pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="user-contact"
        )
        post_save.connect(
            user_post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="user-contact"
        )
