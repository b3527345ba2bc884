from django.apps import AppConfig


class AccountsConfig(AppConfig):
    verbose_name = "Accounts and roles"
    name = "accounts"

    def ready(self) -> None:
        from accounts import audit, signals  # noqa: F401  (connect receivers)
