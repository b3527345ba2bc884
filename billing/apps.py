from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_save

        from billing import signals

        post_save.connect(signals.give_start_balance, sender=get_user_model(), dispatch_uid="billing-start-balance")
        user_logged_in.connect(signals.give_start_balance_on_login, dispatch_uid="billing-start-balance-login")
