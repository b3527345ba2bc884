# The wire protocol's choices come from the adapter registry (a callable: a new adapter needs no
# migration), and Azure OpenAI endpoints move to their own adapter.

import endpoints.adapters
from django.db import migrations, models


def azure_to_its_adapter(apps, schema_editor):
    apps.get_model("endpoints", "Endpoint").objects.filter(kind="azureOpenAI").update(provider="azure_openai")


def azure_back_to_chat_completions(apps, schema_editor):
    apps.get_model("endpoints", "Endpoint").objects.filter(provider="azure_openai").update(provider="openai_chat")


class Migration(migrations.Migration):

    dependencies = [
        ('endpoints', '0002_upstream_failures'),
    ]

    operations = [
        migrations.AlterField(
            model_name='endpoint',
            name='provider',
            field=models.CharField(choices=endpoints.adapters.protocol_choices, default='openai_chat', help_text="provider: which client talks to it. Anthropic uses the native /v1/messages client with this endpoint's baseURL, apiKey, headers, addParams, dropParams. Endpoints of kind anthropic and azureOpenAI always use their own.", max_length=20, verbose_name='wire protocol'),
        ),
        migrations.RunPython(azure_to_its_adapter, azure_back_to_chat_completions),
    ]
